//! Fan-out crawl: 20,000 pages of a target server that answers ~2 KB of HTML after a 50 ms
//! non-blocking delay, fetched at concurrency 100 and 1,000 by what a user would pick: ignareo
//! (one `crawler` task running `fetch-all`; as many `crawler` tasks as the concurrency, each
//! fetching its share one page after another), raw tokio + reqwest, Python gevent + requests
//! and asyncio + aiohttp. Each client and the target run in processes of their own, so the
//! CPU time and peak memory of each are its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Path as UrlPath;
use axum::response::Html;
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::Paths;
use crate::process::Process;

pub const PAGES: usize = 20_000;
pub const DELAY: Duration = Duration::from_millis(50);
/// Pages each client fetches in this run.
fn pages() -> usize {
    crate::scale::count(PAGES)
}

pub const CONCURRENCIES: [usize; 2] = [100, 1_000];

const GRANT: &str = "allowed_hosts = [\"http://127.0.0.1:*\"]\nmax_concurrency = 1000\ntimeout = 600\n";
/// Room for 1,000 tasks and 1,000 requests in flight to one host, connections kept.
const HOST_CONFIG: &str = "[limits]\nmax_running_tasks = 2000\nmax_running_per_plugin = 1000\ntask_timeout_secs = 600\n\
                           [outbound]\npool_idle_per_host = 2000\n[outbound.politeness]\nmax_concurrent_per_host = 100000\n";

pub const CLIENTS: [&str; 5] = [
    "ignareo: one task, fetch-all",
    "ignareo: one task per connection, sequential",
    "tokio + reqwest (no wasm)",
    "Python gevent + requests",
    "Python asyncio + aiohttp",
];

/// One run of one client at one concurrency.
pub struct CrawlRun {
    pub client: &'static str,
    pub concurrency: usize,
    pub fetched: usize,
    pub failed: usize,
    pub elapsed_s: f64,
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
}

impl CrawlRun {
    pub fn fetches_per_sec(&self) -> f64 {
        self.fetched as f64 / self.elapsed_s
    }

    pub fn cpu_s_per_1000(&self) -> f64 {
        self.cpu_s * 1000.0 / self.fetched.max(1) as f64
    }
}

/// The target: `GET /page/{n}` answers a page with its title after the delay, without
/// holding a thread.
pub async fn target_server(listen: &str) -> anyhow::Result<()> {
    let padding = "<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p>\n".repeat(30);
    let app = Router::new().route(
        "/page/{n}",
        get(move |UrlPath(n): UrlPath<u64>| {
            let padding = padding.clone();
            async move {
                tokio::time::sleep(DELAY).await;
                Html(format!(
                    "<!doctype html><html><head><title>Page {n}</title></head><body>\n{padding}</body></html>\n"
                ))
            }
        }),
    );
    let address: SocketAddr = listen.parse()?;
    let listener = ignareo::net::bind(address, 8192)?;
    println!("crawl target listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The raw client: every page through one reqwest client, `concurrency` at a time. Prints
/// the same JSON line as the Python clients.
pub async fn raw_client(base: &str, count: usize, concurrency: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(concurrency).build()?;
    let started = Instant::now();
    let titles: Vec<Option<String>> = futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let response = client.get(format!("{base}/page/{i}")).send().await.ok()?;
                if !response.status().is_success() {
                    return None;
                }
                let page = response.text().await.ok().filter(|page| !page.is_empty())?;
                Some(title(&page))
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    let fetched = titles.iter().flatten().count();
    let elapsed_s = started.elapsed().as_secs_f64();
    let (cpu_s, peak_rss_mib) = own_usage();
    println!(
        "{}",
        json!({"fetched": fetched, "failed": count - fetched, "elapsed_s": elapsed_s, "cpu_s": cpu_s, "peak_rss_mib": peak_rss_mib})
    );
    Ok(())
}

/// A page's title, whitespace collapsed: what the `crawler` plugin keeps of every page, so
/// that every client does the same work.
fn title(page: &str) -> String {
    let lower = page.to_ascii_lowercase();
    let Some(open) = lower.find("<title") else { return String::new() };
    let Some(start) = lower[open..].find('>').map(|at| open + at + 1) else { return String::new() };
    let Some(len) = lower[start..].find("</title") else { return String::new() };
    page[start..start + len].split_whitespace().collect::<Vec<_>>().join(" ")
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<Vec<CrawlRun>> {
    let target = start_target().await?;
    let venv = python_venv()?;
    let mut runs = Vec::new();
    for concurrency in CONCURRENCIES {
        let host = start_host(paths).await?;
        for _ in 0..crate::scale::repetitions(repetitions) {
            runs.push(ignareo_fetch_all(&host, &target.base, concurrency).await?);
            runs.push(ignareo_sequential_tasks(&host, &target.base, concurrency).await?);
        }
        drop(host);
        for _ in 0..crate::scale::repetitions(repetitions) {
            let exe = std::env::current_exe()?;
            runs.push(
                client_process(CLIENTS[2], concurrency, Command::new(&exe).arg("raw-crawl"), &target.base).await?,
            );
            let python = venv.join("bin/python");
            let gevent = python_script("crawl_gevent.py");
            runs.push(client_process(CLIENTS[3], concurrency, Command::new(&python).arg(&gevent), &target.base).await?);
            let aiohttp = python_script("crawl_aiohttp.py");
            runs.push(
                client_process(CLIENTS[4], concurrency, Command::new(&python).arg(&aiohttp), &target.base).await?,
            );
        }
    }
    Ok(runs)
}

async fn start_target() -> anyhow::Result<Process> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["crawl-target", "127.0.0.1:0"]);
    Process::spawn(command).await
}

async fn start_host(paths: &Paths) -> anyhow::Result<Process> {
    let config = std::env::temp_dir().join(format!("ignareo-bench-crawl-{}.toml", std::process::id()));
    std::fs::write(&config, HOST_CONFIG)?;
    let host = Process::host(&paths.host, &["--config", config.to_str().context("a UTF-8 temp path")?]).await?;
    host.upload_with_manifest(&crate::process::client(), "crawler", paths.plugin("crawler")?, GRANT).await?;
    Ok(host)
}

fn urls(base: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{base}/page/{i}")).collect()
}

/// One `crawler` task fetching every page with `fetch-all`.
async fn ignareo_fetch_all(host: &Process, target: &str, concurrency: usize) -> anyhow::Result<CrawlRun> {
    let client = crate::process::client();
    let input = json!({"urls": urls(target, 0..pages()), "concurrency": concurrency});
    let cpu_before = process_cpu_s(host.pid()?)?;
    let started = Instant::now();
    let response = client.post(format!("{}/v1/plugins/crawler/run", host.base)).json(&input).send().await?;
    if !response.status().is_success() {
        bail!("the crawler task failed: {}", response.text().await?);
    }
    let output: Value = response.json().await?;
    let elapsed_s = started.elapsed().as_secs_f64();
    let fetched = output["fetched"].as_u64().context("the crawler answers fetched")? as usize;
    Ok(CrawlRun {
        client: CLIENTS[0],
        concurrency,
        fetched,
        failed: pages() - fetched,
        elapsed_s,
        cpu_s: process_cpu_s(host.pid()?)? - cpu_before,
        peak_rss_mib: host.memory_mib("VmHWM")?,
    })
}

/// `concurrency` `crawler` tasks, submitted in one batch, each fetching its share of the pages
/// one after another.
async fn ignareo_sequential_tasks(host: &Process, target: &str, concurrency: usize) -> anyhow::Result<CrawlRun> {
    let client = crate::process::client();
    let share = pages() / concurrency;
    let inputs: Vec<Value> =
        (0..concurrency).map(|t| json!({"urls": urls(target, t * share..(t + 1) * share), "concurrency": 1})).collect();
    let cpu_before = process_cpu_s(host.pid()?)?;
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/plugins/crawler/tasks:batch", host.base))
        .json(&json!({"inputs": inputs}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the batch was refused: {}", response.text().await?);
    }
    let accepted: Value = response.json().await?;
    let ids: Vec<String> = accepted["ids"]
        .as_array()
        .context("the batch answers ids")?
        .iter()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    let mut fetched = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    for id in ids {
        loop {
            let task: Value = client.get(format!("{}/v1/tasks/{id}?wait=30", host.base)).send().await?.json().await?;
            match task["state"].as_str() {
                Some("queued" | "running") if Instant::now() < deadline => continue,
                Some("succeeded") => fetched += task["output"]["fetched"].as_u64().unwrap_or(0) as usize,
                _ => bail!("a crawler task did not succeed: {task}"),
            }
            break;
        }
    }
    Ok(CrawlRun {
        client: CLIENTS[1],
        concurrency,
        fetched,
        failed: pages() - fetched,
        elapsed_s: started.elapsed().as_secs_f64(),
        cpu_s: process_cpu_s(host.pid()?)? - cpu_before,
        peak_rss_mib: host.memory_mib("VmHWM")?,
    })
}

/// A client in a process of its own, which prints its figures as one JSON line.
async fn client_process(
    client: &'static str,
    concurrency: usize,
    command: &mut Command,
    target: &str,
) -> anyhow::Result<CrawlRun> {
    let output = tokio::time::timeout(
        Duration::from_secs(600),
        command.args([target, &pages().to_string(), &concurrency.to_string()]).kill_on_drop(true).output(),
    )
    .await
    .with_context(|| format!("{client} did not finish within 600 s"))??;
    if !output.status.success() {
        bail!("{client} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let figures: HashMap<String, Value> =
        serde_json::from_slice(&output.stdout).with_context(|| format!("{client} printed no figures"))?;
    let number =
        |key: &str| figures.get(key).and_then(Value::as_f64).with_context(|| format!("{client} printed no {key}"));
    Ok(CrawlRun {
        client,
        concurrency,
        fetched: number("fetched")? as usize,
        failed: number("failed")? as usize,
        elapsed_s: number("elapsed_s")?,
        cpu_s: number("cpu_s")?,
        peak_rss_mib: number("peak_rss_mib")?,
    })
}

fn python_script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

/// The virtual environment bench/run made with the Python clients' packages.
fn python_venv() -> anyhow::Result<std::path::PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-venv");
    if !venv.join("bin/python").exists() {
        bail!("{} is missing: bench/run installs bench/python/requirements.txt there", venv.display());
    }
    Ok(venv)
}

/// User + system CPU seconds a process has used so far.
fn process_cpu_s(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').context("a /proc stat line")?.1.split_whitespace().collect();
    let ticks: f64 =
        fields.get(11).context("utime")?.parse::<f64>()? + fields.get(12).context("stime")?.parse::<f64>()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / per_second)
}

/// This process's CPU seconds (user + system) and peak resident memory (MiB).
fn own_usage() -> (f64, f64) {
    // SAFETY: getrusage writes into the struct given, which is zeroed and owned here.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (seconds(usage.ru_utime) + seconds(usage.ru_stime), usage.ru_maxrss as f64 / 1024.0)
}
