//! Many tasks at once: N `sleep` tasks submitted as fast as the API takes them, all sleeping
//! concurrently; peak RSS of the host, time to accept, time until all finished.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::Paths;
use crate::process::Process;

/// Each live instance holds about six mappings; Linux's default cap is 65,530.
const WANTED_MAP_COUNT: u64 = 1_048_576;
const FINISH_LIMIT: Duration = Duration::from_secs(300);

pub struct SleepersResult {
    pub count: usize,
    pub sleep_ms: u64,
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    pub accept_secs: f64,
    pub finish_secs: f64,
    pub succeeded: usize,
    pub map_count_note: String,
}

pub async fn run(paths: &Paths, count: usize, sleep_ms: u64) -> anyhow::Result<Option<SleepersResult>> {
    let map_count_note = raise_map_count(count);
    let limit = count.to_string();
    let host = Process::host(&paths.host, &["--max-running-tasks", &limit, "--max-queued-tasks", &limit]).await?;
    let client = crate::process::client();
    host.upload(&client, "sleep", paths.plugin("sleep")?).await?;
    let idle_rss_mib = host.memory_mib("VmRSS")?;

    let url = format!("{}/v1/plugins/sleep/tasks", host.base);
    let input = json!({ "ms": sleep_ms });
    let started = Instant::now();
    let accepted: Vec<anyhow::Result<()>> = futures::stream::iter(0..count)
        .map(|_| {
            let request = client.post(&url).json(&input).send();
            async move {
                let response = request.await?;
                if response.status() != 202 {
                    bail!("not accepted: {}", response.text().await?);
                }
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let accept_secs = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = accepted.into_iter().find(Result::is_err) {
        bail!("a submission failed: {e}");
    }

    let ended = loop {
        let health: Value = client.get(format!("{}/healthz", host.base)).send().await?.json().await?;
        let load = &health["load"];
        if load["running"] == 0 && load["queued"] == 0 {
            break load["ended"].clone();
        }
        if started.elapsed() > FINISH_LIMIT {
            bail!("the tasks did not finish within {FINISH_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let finish_secs = started.elapsed().as_secs_f64();
    let peak_rss_mib = host.memory_mib("VmHWM")?;
    let succeeded = ended["succeeded"].as_u64().unwrap_or(0) as usize;
    Ok(Some(SleepersResult {
        count,
        sleep_ms,
        idle_rss_mib,
        peak_rss_mib,
        accept_secs,
        finish_secs,
        succeeded,
        map_count_note,
    }))
}

/// Raises `vm.max_map_count` when it is too low for `count` instances and we may (root).
fn raise_map_count(count: usize) -> String {
    let current: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let needed = count as u64 * 8 + 10_000;
    if current >= needed {
        return format!("`vm.max_map_count` was {current}, enough for {count} instances.");
    }
    match std::fs::write("/proc/sys/vm/max_map_count", WANTED_MAP_COUNT.to_string()) {
        Ok(()) => format!("`vm.max_map_count` was raised from {current} to {WANTED_MAP_COUNT} (as root, like `sysctl -w`) so that {count} instances fit."),
        Err(e) => format!("`vm.max_map_count` is {current} and could not be raised ({e}): instances beyond the cap fail to instantiate."),
    }
}
