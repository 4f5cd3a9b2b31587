//! The chaos proxy's own cost and the accuracy of its speed limit.
//!
//! - Overhead: wrk (64 keep-alive connections) against the plain server directly, and through
//!   `ignareo chaos-proxy --upstream` with no fault configured (`--latency 0`, no speed limit).
//! - Speed: four parallel 2 MiB downloads through the proxy at `--speed`; the aggregate rate
//!   next to the configured one.

use std::time::Instant;

use anyhow::bail;
use tokio::process::Command;

use crate::Paths;
use crate::process::Process;
use crate::trigger::{self, TriggerResult};

const SPEEDS: [u64; 2] = [1_000_000, 4_000_000];
pub const DOWNLOADS: usize = 4;
pub const DOWNLOAD_BYTES: usize = 2 * 1024 * 1024;

pub struct ChaosResult {
    pub direct: Vec<TriggerResult>,
    pub through: Vec<TriggerResult>,
    /// (configured bytes/s, measured bytes/s) per run.
    pub speed: Vec<(u64, f64)>,
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<ChaosResult> {
    let script = trigger::post_script()?;
    let plain = trigger::start_plain_server().await?;
    let open = start_proxy(paths, &plain.base, &["--latency", "0"]).await?;
    let mut result = ChaosResult { direct: Vec::new(), through: Vec::new(), speed: Vec::new() };
    for _ in 0..crate::scale::repetitions(repetitions) {
        result.direct.push(trigger::wrk("direct", &format!("{}/v1/plugins/hello/run", plain.base), &script).await?);
        result
            .through
            .push(trigger::wrk("through chaos-proxy", &format!("{}/v1/plugins/hello/run", open.base), &script).await?);
    }
    drop(open);
    for speed in SPEEDS {
        let limited = start_proxy(paths, &plain.base, &["--speed", &speed.to_string()]).await?;
        for _ in 0..crate::scale::repetitions(repetitions) {
            result.speed.push((speed, download(&limited.base).await?));
        }
    }
    Ok(result)
}

async fn start_proxy(paths: &Paths, upstream: &str, args: &[&str]) -> anyhow::Result<Process> {
    let mut command = Command::new(&paths.host);
    command.args(["chaos-proxy", "--listen", "127.0.0.1:0", "--upstream", upstream]).args(args);
    command.env("IGNAREO_LOG", "warn");
    Process::spawn(command).await
}

/// Four parallel downloads through the proxy: the aggregate bytes per second.
async fn download(proxy: &str) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let url = format!("{proxy}/bytes/{DOWNLOAD_BYTES}");
    let started = Instant::now();
    let sizes = futures::future::join_all(
        (0..DOWNLOADS).map(|_| async { client.get(&url).send().await?.bytes().await.map(|b| b.len()) }),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let total: usize = sizes.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().sum();
    if total != DOWNLOADS * DOWNLOAD_BYTES {
        bail!("the downloads were incomplete: {total} bytes");
    }
    Ok(total as f64 / elapsed)
}
