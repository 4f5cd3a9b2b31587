//! Healthy throughput next to hostile plugins: `POST /v1/plugins/hello/run` with wrk, alone and
//! while the hostile set (busy loops calling the host, memory bombs, stack overflows, huge
//! outputs, log floods, spawn bombs, sleepers, session hoarders) keeps running on the host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::Paths;
use crate::process::Process;
use crate::trigger::{self, TriggerResult};

/// Hostile tasks kept in flight at once, one of each kind in turn.
pub const IN_FLIGHT: usize = 8;
/// Each hostile task's deadline (`?timeout=`).
pub const DEADLINE_S: u64 = 3;
/// The size of a `huge-output` task's output.
pub const HUGE_OUTPUT_MIB: u64 = 20;
/// Children of each `spawn-bomb` task, and the count or size every other kind is given.
const SPAWN_BOMB_CHILDREN: u64 = 3;
const OTHER_N: u64 = 1_000_000;
pub const KINDS: [&str; 8] = [
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
    /// The hostile tasks' answers by HTTP status (their errors are by design), over every run.
    pub hostile_statuses: BTreeMap<u16, u64>,
    /// Hostile requests that got no answer at all (connection refused, reset, closed).
    pub hostile_unanswered: u64,
    /// One run per kind, with all lanes running only that kind: which kind costs what.
    pub per_kind: Vec<(&'static str, TriggerResult)>,
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<HostileResult> {
    let script = trigger::post_script()?;
    let client = crate::process::client();
    let host = Process::host(&paths.host, &[]).await?;
    host.upload(&client, "hello", paths.plugin("hello")?).await?;
    host.upload_with_manifest(&client, "hostile", paths.plugin("hostile")?, "spawn = [\"hostile\"]\n").await?;
    let url = format!("{}/v1/plugins/hello/run", host.base);

    let mut result = HostileResult {
        alone: Vec::new(),
        beside_hostile: Vec::new(),
        hostile_tasks: 0,
        hostile_statuses: BTreeMap::new(),
        hostile_unanswered: 0,
        per_kind: Vec::new(),
    };
    for _ in 0..crate::scale::repetitions(repetitions) {
        result.alone.push(trigger::wrk("alone", &url, &script).await?);
        let run = beside(&client, &host.base, &KINDS, &url, &script, &mut result).await?;
        result.beside_hostile.push(run);
    }
    for kind in &KINDS {
        let run = beside(&client, &host.base, std::slice::from_ref(kind), &url, &script, &mut result).await?;
        result.per_kind.push((kind, run));
    }
    Ok(result)
}

/// What one lane saw: hostile tasks sent, their answers by status, and those unanswered.
#[derive(Default)]
struct Lane {
    tasks: u64,
    statuses: BTreeMap<u16, u64>,
    unanswered: u64,
}

/// wrk on `url` while `IN_FLIGHT` lanes keep running hostile tasks of `kinds`; what the lanes
/// saw is added to `result`.
async fn beside(
    client: &reqwest::Client,
    base: &str,
    kinds: &'static [&'static str],
    url: &str,
    script: &std::path::Path,
    result: &mut HostileResult,
) -> anyhow::Result<TriggerResult> {
    let running = Arc::new(AtomicBool::new(true));
    let storm = (0..IN_FLIGHT)
        .map(|lane| tokio::spawn(storm(client.clone(), base.to_owned(), kinds, lane, running.clone())))
        .collect::<Vec<_>>();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let run = trigger::wrk("beside the hostile set", url, script).await;
    running.store(false, Ordering::Relaxed);
    for lane in storm {
        let lane = lane.await?;
        result.hostile_tasks += lane.tasks;
        result.hostile_unanswered += lane.unanswered;
        for (status, count) in lane.statuses {
            *result.hostile_statuses.entry(status).or_default() += count;
        }
    }
    run
}

/// Runs hostile tasks of `kinds` one after another until told to stop; each ends by its
/// deadline, so a lane stops within one deadline of being told.
async fn storm(
    client: reqwest::Client,
    base: String,
    kinds: &'static [&'static str],
    lane: usize,
    running: Arc<AtomicBool>,
) -> Lane {
    let mut seen = Lane::default();
    let mut turn = lane;
    while running.load(Ordering::Relaxed) {
        let kind = kinds[turn % kinds.len()];
        let n = match kind {
            "huge-output" => HUGE_OUTPUT_MIB,
            "spawn-bomb" => SPAWN_BOMB_CHILDREN,
            _ => OTHER_N,
        };
        let request = client
            .post(format!("{base}/v1/plugins/hostile/run?timeout={DEADLINE_S}"))
            .timeout(Duration::from_secs(DEADLINE_S + 30))
            .json(&json!({"kind": kind, "n": n}));
        // The answers are errors by design: that one comes, and its status, is what matters.
        match request.send().await {
            Ok(response) => *seen.statuses.entry(response.status().as_u16()).or_default() += 1,
            Err(_) => seen.unanswered += 1,
        }
        seen.tasks += 1;
        turn += 1;
    }
    seen
}
