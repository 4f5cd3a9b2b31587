//! Instantiate + run of `hello` in-process: a fresh store per invocation, as the host does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use ignareo::capabilities::context::Spawner;
use ignareo::capabilities::outbound::{Outbound, TaskOutbound};
use ignareo::config::Config;
use ignareo::manifest::{Ceilings, Manifest};
use ignareo::runtime::{Invocation, Runtime};
use ignareo::task::{Origin, Outcome, Task};

use crate::Paths;
use crate::report::percentile;

pub const WARMUP: usize = 1_000;

pub struct InvokeResult {
    pub iterations: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

/// `hello` has no imports to serve; a spawner that refuses is all it needs.
struct NoSpawn;

impl Spawner for NoSpawn {
    fn spawn(&self, _: &Task, _: &str, _: Bytes) -> Result<Arc<Task>, ignareo::runtime::SpawnError> {
        Err(ignareo::runtime::SpawnError::Rejected("spawning is not part of this benchmark".into()))
    }
}

#[expect(clippy::cast_possible_truncation, reason = "left as it is until it moves to the new host API")]
pub async fn run(paths: &Paths, iterations: usize) -> anyhow::Result<InvokeResult> {
    let config = Config::default();
    let runtime = Runtime::new(&config.limits)?;
    let component = runtime.compile(&paths.plugin("hello")?)?;
    let prepared = runtime.prepare(&component).await?;
    let ceilings = Ceilings::of(&config);
    let manifest = Manifest::parse("", &ceilings)?;
    let limits = manifest.task_limits(&ceilings);
    let plugin_outbound = Arc::new(manifest.outbound("bench", &ceilings));
    let outbound = Arc::new(Outbound::new(&config.outbound)?);
    let spawner: Arc<dyn Spawner> = Arc::new(NoSpawn);
    let input = br#"{"bench":true}"#;
    let deadline = Duration::from_secs(10);

    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARMUP + iterations {
        let task = Arc::new(Task::new("hello".into(), "bench".into(), Origin::Caller(None), deadline, 16, 1_000));
        let started = Instant::now();
        let task_outbound =
            TaskOutbound::new(outbound.clone(), plugin_outbound.clone(), task.clone(), limits.memory_bytes);
        let invocation = Invocation { task, outbound: Arc::new(task_outbound), spawner: spawner.clone() };
        let outcome = runtime.invoke(&prepared, invocation, input, deadline, limits.memory_bytes as usize).await;
        let elapsed = started.elapsed();
        if !matches!(outcome, Outcome::Succeeded(_)) {
            bail!("hello did not succeed: {}", outcome.describe());
        }
        if i >= WARMUP {
            samples.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(InvokeResult {
        iterations,
        p50_us: percentile(&samples, 0.50),
        p99_us: percentile(&samples, 0.99),
        mean_us: samples.iter().sum::<f64>() / samples.len() as f64,
    })
}
