//! Restart: a host with 50 plugins is stopped (SIGTERM) and started again on the same data
//! directory; how long until it listens, every plugin live from its compiled artifact.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Paths;
use crate::process::Process;

pub const PLUGINS: usize = 50;
/// The plugins the 50 are made from, each copy made distinct (see [`distinct`]).
pub const SOURCES: [&str; 6] = ["hello", "crawler", "fetch_title", "sleep", "spawner", "chatter"];

pub struct RestartResult {
    pub plugins: usize,
    pub component_bytes: usize,
    /// Seconds from spawning the process to its listening line, per start.
    pub ready_secs: Vec<f64>,
    /// Compilations after each start (0: artifacts reused).
    pub compilations: Vec<u64>,
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<RestartResult> {
    let data_dir = std::env::temp_dir().join(format!("ignareo-bench-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let client = crate::process::client();
    let host = Process::host_in(&paths.host, &data_dir, &[]).await?;
    let mut component_bytes = 0;
    for i in 0..PLUGINS {
        let bytes = distinct(paths.plugin(SOURCES[i % SOURCES.len()])?, i);
        component_bytes += bytes.len();
        host.upload(&client, &format!("plugin-{i:02}"), bytes).await?;
    }
    host.terminate().await?;

    let mut result =
        RestartResult { plugins: PLUGINS, component_bytes, ready_secs: Vec::new(), compilations: Vec::new() };
    for _ in 0..crate::scale::repetitions(repetitions) {
        let started = Instant::now();
        let host = Process::host_in(&paths.host, &data_dir, &[]).await?;
        result.ready_secs.push(started.elapsed().as_secs_f64());
        let health: serde_json::Value = client.get(format!("{}/healthz", host.base)).send().await?.json().await?;
        if health["plugins"] != PLUGINS {
            bail!("{} plugins after the restart, not {PLUGINS}: {health}", health["plugins"]);
        }
        result.compilations.push(health["compilations"].as_u64().context("no compilations in /healthz")?);
        host.terminate().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(result)
}

/// The component with a custom section naming copy `n`: still the same code, but another
/// component (another hash, another compiled artifact).
fn distinct(mut component: Vec<u8>, n: usize) -> Vec<u8> {
    let name = format!("ignareo-bench-copy-{n}");
    let mut payload = vec![u8::try_from(name.len()).unwrap_or(u8::MAX)];
    payload.extend_from_slice(name.as_bytes());
    component.push(0); // custom section
    component.push(u8::try_from(payload.len()).unwrap_or(u8::MAX));
    component.extend_from_slice(&payload);
    component
}
