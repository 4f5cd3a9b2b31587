//! Guests beyond Rust, side by side in one run: the same `hello` in Rust, Python
//! (componentize-py) and JavaScript (componentize-js) instantiated and run in-process, and
//! triggered over HTTP; and the memory of sleeping Python and JavaScript tasks. Their
//! `crawler`s run in the `crawl` scenario, next to the Rust one.

use std::time::Duration;

use crate::Paths;
use crate::invoke::{self, InvokeResult};
use crate::process::Process;
use crate::sleepers::{self, SleepersResult};
use crate::trigger::{self, TriggerResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
    JavaScript,
}

pub const LANGUAGES: [Language; 3] = [Language::Rust, Language::Python, Language::JavaScript];

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::Python => "Python",
            Self::JavaScript => "JavaScript",
        }
    }

    /// The plugin name its `hello` is uploaded under.
    fn hello(self) -> &'static str {
        match self {
            Self::Rust => "hello",
            Self::Python => "hello-py",
            Self::JavaScript => "hello-js",
        }
    }
}

/// In-process invocations per repetition and language (a Python one takes milliseconds), and
/// warm-up runs before them.
const INVOCATIONS: usize = 2_000;
pub const WARMUP: usize = 200;
/// Sleeping tasks at once, each sleeping this long.
pub const SLEEPER_COUNTS: [usize; 2] = [1_000, 10_000];
const SLEEP_MS: u64 = 10_000;
/// A count is run only if the memory measured at the previous count (PSS per task) says it
/// fits in this share of the memory available when it starts.
const MEMORY_SHARE: f64 = 0.6;

pub struct GuestsResult {
    pub invoke: Vec<(Language, InvokeResult)>,
    pub trigger: Vec<(Language, TriggerResult)>,
    pub sleepers: Vec<(Language, SleepersResult)>,
    /// Counts of sleeping tasks not run, and why.
    pub skipped: Vec<String>,
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<GuestsResult> {
    let repetitions = crate::scale::repetitions(repetitions);
    let mut invoke = Vec::new();
    for repetition in 1..=repetitions {
        for language in LANGUAGES {
            eprintln!("   in-process {} hello ({repetition}/{repetitions})", language.name());
            let bytes = paths.plugin_in(language, "hello")?;
            let warmup = crate::scale::count(WARMUP);
            invoke.push((language, invoke::run_component(&bytes, crate::scale::count(INVOCATIONS), warmup).await?));
        }
    }
    let trigger = triggered(paths, repetitions).await?;
    let (sleepers, skipped) = sleeping(paths).await?;
    Ok(GuestsResult { invoke, trigger, sleepers, skipped })
}

/// wrk against `POST /v1/plugins/{hello}/run` of each language on one host, interleaved.
async fn triggered(paths: &Paths, repetitions: usize) -> anyhow::Result<Vec<(Language, TriggerResult)>> {
    let script = trigger::post_script()?;
    let client = crate::process::client();
    let host = Process::host(&paths.host, &[]).await?;
    for language in LANGUAGES {
        host.upload(&client, language.hello(), paths.plugin_in(language, "hello")?).await?;
    }
    let mut results = Vec::new();
    for _ in 0..repetitions {
        for language in LANGUAGES {
            let url = format!("{}/v1/plugins/{}/run", host.base, language.hello());
            results.push((language, trigger::wrk(language.name(), &url, &script).await?));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(results)
}

/// Python and JavaScript `sleep` tasks at each count, each count on a fresh host, while the
/// memory measured at the count before says the next fits.
async fn sleeping(paths: &Paths) -> anyhow::Result<(Vec<(Language, SleepersResult)>, Vec<String>)> {
    let counts: Vec<usize> = SLEEPER_COUNTS.iter().map(|&c| crate::scale::count(c)).collect();
    let (mut results, mut skipped) = (Vec::new(), Vec::new());
    for language in [Language::Python, Language::JavaScript] {
        let mut per_task_mib: Option<f64> = None;
        for &count in &counts {
            let available = available_mib()?;
            if let Some(per_task) = per_task_mib.filter(|per_task| per_task * count as f64 > available * MEMORY_SHARE) {
                skipped.push(format!(
                    "{count} {} tasks: at {per_task:.1} MiB a task (measured at the count before) they would need ~{:.1} GiB, more than {:.0}% of the {:.1} GiB available",
                    language.name(),
                    per_task * count as f64 / 1024.0,
                    MEMORY_SHARE * 100.0,
                    available / 1024.0
                ));
                break;
            }
            eprintln!("   {count} sleeping {} tasks", language.name());
            let result = sleepers::run(&paths.host, paths.plugin_in(language, "sleep")?, count, SLEEP_MS).await?;
            per_task_mib = Some(result.pss_per_task_mib().unwrap_or_else(|| result.per_task_mib()));
            results.push((language, result));
        }
    }
    Ok((results, skipped))
}

/// `MemAvailable` of this machine, in MiB.
fn available_mib() -> anyhow::Result<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no MemAvailable in /proc/meminfo"))?;
    Ok(kib / 1024.0)
}
