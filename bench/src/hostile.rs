//! Healthy throughput next to hostile plugins: `POST /v1/plugins/hello/run` with wrk, alone and
//! while the hostile set (busy loops calling the host, memory bombs, stack overflows, huge
//! outputs, log floods, spawn bombs, sleepers, session hoarders) keeps running on the host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::Paths;
use crate::process::Process;
use crate::trigger::{self, TriggerResult};

/// Hostile tasks kept in flight at once, one of each kind in turn.
const IN_FLIGHT: usize = 8;
const KINDS: [&str; 8] = [
    "busy-with-host-calls",
    "memory-bomb",
    "stack-overflow",
    "huge-output",
    "log-flood",
    "spawn-bomb",
    "sleep-forever",
    "many-sessions",
];

pub struct HostileResult {
    pub alone: Vec<TriggerResult>,
    pub beside_hostile: Vec<TriggerResult>,
    pub hostile_tasks: u64,
    /// One run per kind, with all lanes running only that kind: which kind costs what.
    pub per_kind: Vec<(&'static str, TriggerResult)>,
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<HostileResult> {
    let script = trigger::post_script()?;
    let client = crate::process::client();
    let host = Process::host(&paths.host, &[]).await?;
    host.upload(&client, "hello", paths.plugin("hello")?).await?;
    host.upload(&client, "hostile", paths.plugin("hostile")?).await?;
    let url = format!("{}/v1/plugins/hello/run", host.base);

    let mut result =
        HostileResult { alone: Vec::new(), beside_hostile: Vec::new(), hostile_tasks: 0, per_kind: Vec::new() };
    for _ in 0..crate::scale::repetitions(repetitions) {
        result.alone.push(trigger::wrk("alone", &url, &script).await?);
        let (run, tasks) = beside(&client, &host.base, &KINDS, &url, &script).await?;
        result.beside_hostile.push(run);
        result.hostile_tasks += tasks;
    }
    for kind in &KINDS {
        let (run, _) = beside(&client, &host.base, std::slice::from_ref(kind), &url, &script).await?;
        result.per_kind.push((kind, run));
    }
    Ok(result)
}

/// wrk on `url` while `IN_FLIGHT` lanes keep running hostile tasks of `kinds`: the run and
/// the number of hostile tasks.
async fn beside(
    client: &reqwest::Client,
    base: &str,
    kinds: &'static [&'static str],
    url: &str,
    script: &std::path::Path,
) -> anyhow::Result<(TriggerResult, u64)> {
    let running = Arc::new(AtomicBool::new(true));
    let storm = (0..IN_FLIGHT)
        .map(|lane| tokio::spawn(storm(client.clone(), base.to_owned(), kinds, lane, running.clone())))
        .collect::<Vec<_>>();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let run = trigger::wrk("beside the hostile set", url, script).await?;
    running.store(false, Ordering::Relaxed);
    let mut tasks = 0;
    for lane in storm {
        tasks += lane.await?;
    }
    Ok((run, tasks))
}

/// Runs hostile tasks of `kinds` one after another (each with a 3 s deadline) until told to stop.
async fn storm(
    client: reqwest::Client,
    base: String,
    kinds: &'static [&'static str],
    lane: usize,
    running: Arc<AtomicBool>,
) -> u64 {
    let mut count = 0;
    let mut turn = lane;
    while running.load(Ordering::Relaxed) {
        let kind = kinds[turn % kinds.len()];
        let input = json!({"kind": kind, "n": if kind == "huge-output" { 20 } else if kind == "spawn-bomb" { 3 } else { 1_000_000 }});
        let request = client.post(format!("{base}/v1/plugins/hostile/run?timeout=3")).json(&input);
        // The answers are errors by design; only that they come matters here.
        let _ = request.send().await.map(|r| r.status());
        count += 1;
        turn += 1;
    }
    count
}
