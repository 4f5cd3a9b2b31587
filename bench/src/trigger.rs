//! Trigger throughput: wrk against `POST /v1/plugins/hello/run` on the host, and against a plain
//! axum handler answering the same bytes.

use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use bytes::Bytes;
use tokio::process::Command;

use crate::Paths;
use crate::process::Process;

/// `{TOKEN}` stands for the host's admin token (the plain server ignores it).
const WRK_SCRIPT: &str = r#"wrk.method = "POST"
wrk.body = '{"user":"bench","n":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
"#;

/// wrk's threads and keep-alive connections in every load of the benchmark.
const WRK_THREADS: u32 = 2;
pub const CONNECTIONS: u32 = 64;

pub struct TriggerResult {
    pub server: &'static str,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Connections that failed (connect, read, write, timeout).
    pub socket_errors: u64,
}

/// The baseline: axum answering `{"hello": <body>}` without WebAssembly; also `GET /bytes/{n}`,
/// n zero bytes, for downloads.
pub async fn plain_server(listen: &str) -> anyhow::Result<()> {
    let app = Router::new().route("/bytes/{n}", get(|Path(n): Path<usize>| async move { vec![0u8; n] })).route(
        "/v1/plugins/hello/run",
        post(|body: Bytes| async move {
            let mut out = Vec::with_capacity(body.len() + 10);
            out.extend_from_slice(b"{\"hello\":");
            out.extend_from_slice(&body);
            out.push(b'}');
            ([("content-type", "application/json")], out)
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("plain axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The wrk script that POSTs the trigger body.
pub fn post_script() -> anyhow::Result<std::path::PathBuf> {
    let script = std::env::temp_dir().join("ignareo-bench-post.lua");
    std::fs::write(&script, WRK_SCRIPT.replace("{TOKEN}", crate::process::TOKEN))?;
    Ok(script)
}

/// The plain server, started as a child process.
pub async fn start_plain_server() -> anyhow::Result<Process> {
    let mut plain = Command::new(std::env::current_exe()?);
    plain.arg("plain-server");
    Process::spawn(plain).await
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<Vec<TriggerResult>> {
    let script = post_script()?;
    let client = crate::process::client();
    let host = Process::host(&paths.host, &[]).await?;
    host.upload(&client, "hello", paths.plugin("hello")?).await?;
    let plain = start_plain_server().await?;

    let mut results = Vec::new();
    for _ in 0..crate::scale::repetitions(repetitions) {
        for (server, process) in [("ignareo", &host), ("plain axum", &plain)] {
            let url = format!("{}/v1/plugins/hello/run", process.base);
            results.push(wrk(server, &url, &script).await?);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(results)
}

/// wrk's arguments before the script and the URL.
fn wrk_args() -> [String; 4] {
    [
        format!("-t{WRK_THREADS}"),
        format!("-c{CONNECTIONS}"),
        crate::scale::wrk_duration().to_owned(),
        "--latency".into(),
    ]
}

/// The wrk command line of every load, as the report quotes it.
pub fn wrk_command() -> String {
    format!("wrk {}", wrk_args().join(" "))
}

pub async fn wrk(server: &'static str, url: &str, script: &std::path::Path) -> anyhow::Result<TriggerResult> {
    let output = Command::new("wrk")
        .args(wrk_args())
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .await
        .context("cannot run wrk (bench/run installs it with apt-get)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()));
    let requests_per_sec = field("Requests/sec:").context("no Requests/sec in wrk output")?.parse()?;
    Ok(TriggerResult {
        server,
        requests_per_sec,
        p50_ms: millis(&field("50%").context("no 50% latency")?)?,
        p99_ms: millis(&field("99%").context("no 99% latency")?)?,
        errors: field("Non-2xx or 3xx responses:").map_or(Ok(0), |v| v.parse())?,
        socket_errors: field("Socket errors:")
            .map_or(0, |v| v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum()),
    })
}

/// wrk prints latencies as `512.00us`, `1.23ms` or `1.01s`.
fn millis(value: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(v) = value.strip_suffix("us") {
        (v, 1e-3)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1e3)
    } else {
        bail!("unexpected wrk latency {value:?}")
    };
    Ok(number.parse::<f64>()? * factor)
}
