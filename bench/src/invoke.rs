//! Instantiate + run of `hello` in-process: a fresh store per invocation, as the host does.
//! (The `guests` scenario runs the Python and JavaScript `hello` the same way.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use ignareo::capabilities::context::SpawnError;
use ignareo::capabilities::{Capabilities, Spawner};
use ignareo::config::Config;
use ignareo::manifest::{Ceilings, Manifest};
use ignareo::runtime::{Call, Runtime};
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

/// The in-process scenarios run plugins that spawn nothing; a spawner that refuses is all they need.
pub struct NoSpawn;

impl Spawner for NoSpawn {
    fn spawn(&self, _: &Task, _: &str, _: Bytes) -> Result<Arc<Task>, SpawnError> {
        Err(SpawnError::Rejected("spawning is not part of this benchmark".into()))
    }
}

pub async fn run(paths: &Paths, iterations: usize) -> anyhow::Result<InvokeResult> {
    run_component(&paths.plugin("hello")?, iterations, WARMUP).await
}

/// `iterations` invocations of a `hello` component (of any language), after `warmup` more.
pub async fn run_component(bytes: &[u8], iterations: usize, warmup: usize) -> anyhow::Result<InvokeResult> {
    let config = Config::default();
    let runtime = Runtime::new(&config.limits)?;
    let component = runtime.compile(bytes)?;
    let linked = runtime.link(&component).await?;
    let ceilings = Ceilings::of(&config);
    let plugin = Manifest::parse("", &ceilings)?.capabilities("bench", &ceilings);
    let capabilities = Capabilities::new(&config.outbound)?;
    let spawner: Arc<dyn Spawner> = Arc::new(NoSpawn);
    let input = Bytes::from_static(br#"{"bench":true}"#);
    let deadline = Duration::from_secs(10);

    let mut samples = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let task = Arc::new(Task::new("hello".into(), "bench".into(), Origin::Caller(None), deadline, 16, 1_000));
        let started = Instant::now();
        let invocation = capabilities.prepare(&plugin, task, spawner.clone());
        let outcome = runtime.invoke(&linked, invocation, Call::Run(input.clone()), deadline).await;
        let elapsed = started.elapsed();
        if !matches!(outcome, Outcome::Succeeded(_)) {
            bail!("hello did not succeed: {}", outcome.describe());
        }
        if i >= warmup {
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
