//! Durable submission: `POST /v1/plugins/hello/tasks`, answered 202 once the task is committed
//! to the task store, with wrk, for each `[store] synchronous` setting; beside `POST .../run`,
//! which is not recorded.

use crate::Paths;
use crate::process::Process;
use crate::trigger::{self, TriggerResult};

/// (label, `[store] synchronous`, route)
const VARIANTS: [(&str, &str, &str); 3] = [
    ("run (not recorded)", "full", "run"),
    ("tasks, synchronous = \"full\"", "full", "tasks"),
    ("tasks, synchronous = \"normal\"", "normal", "tasks"),
];

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<Vec<TriggerResult>> {
    let script = trigger::post_script()?;
    let client = crate::process::client();
    let mut results = Vec::new();
    for (label, synchronous, route) in VARIANTS {
        let config = std::env::temp_dir().join(format!("ignareo-bench-store-{synchronous}.toml"));
        // Room for everything wrk can submit in 10 s, so the queue limit does not answer 429.
        std::fs::write(
            &config,
            format!("[limits]\nmax_queued_tasks = 1000000\n[store]\nsynchronous = \"{synchronous}\"\n"),
        )?;
        let host = Process::host(&paths.host, &["--config", config.to_str().unwrap_or_default()]).await?;
        host.upload(&client, "hello", paths.plugin("hello")?).await?;
        let url = format!("{}/v1/plugins/hello/{route}", host.base);
        for _ in 0..crate::scale::repetitions(repetitions) {
            results.push(trigger::wrk(label, &url, &script).await?);
        }
    }
    Ok(results)
}

pub fn labels() -> impl Iterator<Item = &'static str> {
    VARIANTS.into_iter().map(|(label, _, _)| label)
}
