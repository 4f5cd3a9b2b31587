//! Many tasks at once: N `sleep` tasks submitted in batches as fast as the API takes them, all
//! sleeping concurrently; peak RSS and page tables of the host, time to accept, time until all
//! finished. One fresh host per count and repetition.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::Paths;
use crate::process::Process;

/// Each live instance holds about six mappings; Linux's default cap is 65,530.
const WANTED_MAP_COUNT: u64 = 1_048_576;
const FINISH_LIMIT: Duration = Duration::from_mins(5);
/// Inputs per `tasks:batch` request, and requests in flight at once.
pub const BATCH: usize = 1_000;
pub const BATCHES_IN_FLIGHT: usize = 8;

pub struct SleepersResult {
    pub count: usize,
    pub sleep_ms: u64,
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    /// Most tasks the host reported running at one time (sampled every 50 ms).
    pub most_running: usize,
    /// From the first submission until every task had started (none queued).
    pub all_started_secs: f64,
    /// Highest page-table size seen while the tasks ran (not counted in RSS).
    pub peak_page_tables_mib: f64,
    /// Proportional set size once every task had started: shared pages (the plugin's data
    /// image, mapped by every task) split among the tasks that map them instead of counted
    /// once per task as RSS does.
    pub pss_all_started_mib: Option<f64>,
    pub accept_secs: f64,
    pub finish_secs: f64,
    pub succeeded: usize,
    pub map_count_note: String,
}

/// Every count `repetitions` times, each on a fresh host; results in count order.
pub async fn run_all(
    paths: &Paths,
    counts: &[usize],
    sleep_ms: u64,
    repetitions: usize,
) -> anyhow::Result<Vec<SleepersResult>> {
    let mut results = Vec::new();
    for &count in counts {
        for repetition in 1..=repetitions {
            eprintln!("   {count} sleepers ({repetition}/{repetitions})");
            results.push(run(&paths.host, paths.plugin("sleep")?, count, sleep_ms).await?);
        }
    }
    Ok(results)
}

/// `count` tasks of the `sleep` plugin `sleep_plugin` (of any language) at once.
pub async fn run(
    host_binary: &Path,
    sleep_plugin: Vec<u8>,
    count: usize,
    sleep_ms: u64,
) -> anyhow::Result<SleepersResult> {
    let map_count_note = raise_map_count(count);
    let limit = count.to_string();
    let host = Process::host(host_binary, &["--max-running-tasks", &limit, "--max-queued-tasks", &limit]).await?;
    let client = crate::process::client();
    host.upload(&client, "sleep", sleep_plugin).await?;
    let idle_rss_mib = host.memory_mib("VmRSS")?;

    let url = format!("{}/v1/plugins/sleep/tasks:batch", host.base);
    let started = Instant::now();
    let accepted: Vec<anyhow::Result<()>> = futures::stream::iter(batch_sizes(count))
        .map(|size| {
            let body = json!({ "inputs": vec![json!({ "ms": sleep_ms }); size] });
            let request = client.post(&url).json(&body).send();
            async move {
                let response = request.await?;
                if response.status() != 202 {
                    bail!("not accepted: {}", response.text().await?);
                }
                Ok(())
            }
        })
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .collect()
        .await;
    let accept_secs = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = accepted.into_iter().find(Result::is_err) {
        bail!("a submission failed: {e}");
    }

    let mut peak_page_tables_mib: f64 = 0.0;
    let mut most_running = 0;
    let mut all_started_secs = None;
    let mut pss_all_started_mib = None;
    let ended = loop {
        peak_page_tables_mib = peak_page_tables_mib.max(host.memory_mib("VmPTE")?);
        let health: Value = client.get(format!("{}/healthz", host.base)).send().await?.json().await?;
        let load = &health["load"];
        let running = usize::try_from(load["running"].as_u64().unwrap_or(0))?;
        most_running = most_running.max(running);
        if all_started_secs.is_none() && load["queued"] == 0 && running + ended_count(&load["ended"]) >= count {
            all_started_secs = Some(started.elapsed().as_secs_f64());
            if running > 0 {
                pss_all_started_mib = Some(host.proportional_set_mib()?);
            }
        }
        if running == 0 && load["queued"] == 0 {
            break load["ended"].clone();
        }
        if started.elapsed() > FINISH_LIMIT {
            bail!("the tasks did not finish within {FINISH_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let finish_secs = started.elapsed().as_secs_f64();
    let peak_rss_mib = host.memory_mib("VmHWM")?;
    let succeeded = usize::try_from(ended["succeeded"].as_u64().unwrap_or(0))?;
    Ok(SleepersResult {
        count,
        sleep_ms,
        idle_rss_mib,
        peak_rss_mib,
        peak_page_tables_mib,
        pss_all_started_mib,
        most_running,
        all_started_secs: all_started_secs.unwrap_or(finish_secs),
        accept_secs,
        finish_secs,
        succeeded,
        map_count_note,
    })
}

impl SleepersResult {
    /// Peak RSS above the idle host's, over the most tasks running at once. RSS counts a page
    /// shared by many instances (a plugin's data image) once for each.
    pub fn per_task_mib(&self) -> f64 {
        (self.peak_rss_mib - self.idle_rss_mib) / self.most_running.max(1) as f64
    }

    /// The memory each task costs the machine: PSS once all had started (shared pages split
    /// among the instances mapping them) above the idle host's RSS, over the tasks.
    pub fn pss_per_task_mib(&self) -> Option<f64> {
        self.pss_all_started_mib.map(|pss| (pss - self.idle_rss_mib).max(0.0) / self.count.max(1) as f64)
    }
}

fn ended_count(ended: &Value) -> usize {
    ended.as_object().map_or(0, |states| {
        usize::try_from(states.values().filter_map(Value::as_u64).sum::<u64>()).unwrap_or(usize::MAX)
    })
}

/// `count` split into requests of at most `BATCH` inputs.
fn batch_sizes(count: usize) -> impl Iterator<Item = usize> {
    (0..count.div_ceil(BATCH)).map(move |i| BATCH.min(count - i * BATCH))
}

/// Raises `vm.max_map_count` when it is too low for `count` instances and we may (root).
fn raise_map_count(count: usize) -> String {
    let current: u64 =
        std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let needed = count as u64 * 8 + 10_000;
    if current >= needed {
        return format!("`vm.max_map_count` was {current}, enough for {count} instances.");
    }
    match std::fs::write("/proc/sys/vm/max_map_count", WANTED_MAP_COUNT.to_string()) {
        Ok(()) => format!(
            "`vm.max_map_count` was raised from {current} to {WANTED_MAP_COUNT} (as root, like `sysctl -w`) so that {count} instances fit."
        ),
        Err(e) => format!(
            "`vm.max_map_count` is {current} and could not be raised ({e}): instances beyond the cap fail to instantiate."
        ),
    }
}
