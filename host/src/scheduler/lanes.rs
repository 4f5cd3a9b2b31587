//! The two lanes tasks run in: the foreground, and a background lane for the tasks of
//! plugins that recently hogged the host.
//!
//! A plugin whose task reached a limit (memory, output, sessions, stack, log lines, tree size
//! or depth, its deadline) has its tasks started in the background lane until `limits.background_secs` after its last such task. The
//! background lane has task threads of its own at a lower OS priority
//! (`limits.background_nice`), so the kernel gives its guests only the CPU the foreground
//! leaves over (all of it on an otherwise idle host), and it holds at most
//! `limits.background_max_running` running slots, so short tasks of well-behaved plugins keep
//! their throughput and their slots beside code that loops, bombs memory or spawns without end.
//! A plugin that merely computes a lot within its limits stays in the foreground: the epoch
//! slicing already makes it take turns.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::Limits;
use crate::task::{FailureKind, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Foreground,
    Background,
}

pub struct Lanes {
    foreground: Executor,
    background: Executor,
    /// Until when each recently heavy plugin stays in the background lane.
    heavy_until: Mutex<HashMap<String, Instant>>,
    background_for: Duration,
}

impl Lanes {
    pub fn new(limits: &Limits) -> anyhow::Result<Self> {
        Ok(Self {
            foreground: Executor::new("ignareo-task", limits.task_threads(), None)?,
            background: Executor::new("ignareo-bg", limits.task_threads(), Some(limits.background_nice))?,
            heavy_until: Mutex::default(),
            background_for: Duration::from_secs(limits.background_secs),
        })
    }

    /// The lane a new task of `plugin` starts in.
    pub fn for_plugin(&self, plugin: &str) -> Lane {
        let mut heavy = self.heavy_until.lock();
        match heavy.get(plugin) {
            Some(until) if *until > Instant::now() => Lane::Background,
            Some(_) => {
                heavy.remove(plugin);
                Lane::Foreground
            }
            None => Lane::Foreground,
        }
    }

    /// Plugins whose tasks now start in the background lane, by name.
    pub fn background_plugins(&self) -> Vec<String> {
        let now = Instant::now();
        let heavy = self.heavy_until.lock();
        let mut plugins: Vec<String> =
            heavy.iter().filter(|(_, until)| **until > now).map(|(plugin, _)| plugin.clone()).collect();
        plugins.sort();
        plugins
    }

    pub fn handle(&self, lane: Lane) -> &tokio::runtime::Handle {
        match lane {
            Lane::Foreground => self.foreground.handle(),
            Lane::Background => self.background.handle(),
        }
    }

    /// Records how a task of `plugin` ended: ending on a limit, or having written past its
    /// log lines, sends the plugin's next tasks to the background lane.
    pub fn record(&self, plugin: &str, outcome: &Outcome, exceeded_log_lines: bool) {
        if exceeded_log_lines || ended_on_a_limit(outcome) {
            self.mark_heavy(plugin);
        }
    }

    /// A task of `plugin` reached a limit that does not end it (a refused spawn).
    pub fn mark_heavy(&self, plugin: &str) {
        let until = Instant::now() + self.background_for;
        let mut heavy = self.heavy_until.lock();
        if !heavy.contains_key(plugin) {
            tracing::info!(
                plugin,
                seconds = self.background_for.as_secs(),
                "plugin hogs the host: its tasks run in the background lane"
            );
        }
        heavy.insert(plugin.to_owned(), until);
    }
}

fn ended_on_a_limit(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::TimedOut { .. } => true,
        Outcome::Failed(failure) => matches!(failure.kind, FailureKind::MemoryLimit | FailureKind::ResourceLimit),
        Outcome::Succeeded(_) | Outcome::Cancelled | Outcome::Interrupted(_) => false,
    }
}

/// A tokio runtime for tasks; shut down without blocking when the scheduler goes.
struct Executor(Option<tokio::runtime::Runtime>);

impl Executor {
    fn new(name: &str, threads: usize, nice: Option<i32>) -> anyhow::Result<Self> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads).thread_name(name).enable_all();
        if let Some(nice) = nice {
            builder.on_thread_start(move || lower_thread_priority(nice));
        }
        let runtime = builder.build().with_context(|| format!("cannot start the {name} threads"))?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("the executor lives as long as the scheduler").handle()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Raises the calling thread's nice value (Linux keeps one per thread).
#[cfg(target_os = "linux")]
fn lower_thread_priority(nice: i32) {
    // SAFETY: plain system calls on the calling thread, with no pointers involved.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid().cast_unsigned(), nice) };
    if result != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot lower the priority of a background task thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_thread_priority(nice: i32) {
    tracing::debug!(nice, "thread priorities are set on Linux only; the background lane runs at normal priority");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Failure;

    fn lanes() -> Lanes {
        let limits = Limits { task_threads: Some(1), background_secs: 60, ..Limits::default() };
        Lanes::new(&limits).expect("the lanes' executors start")
    }

    #[tokio::test(start_paused = true)]
    async fn a_plugin_that_reaches_a_limit_runs_in_the_background_for_a_while() {
        let lanes = lanes();
        assert_eq!(lanes.for_plugin("bomb"), Lane::Foreground);
        lanes.record("bomb", &Outcome::Succeeded(bytes::Bytes::new()), false);
        assert_eq!(lanes.for_plugin("bomb"), Lane::Foreground, "succeeding is not hogging");
        let memory = Failure { kind: FailureKind::MemoryLimit, message: "too much".into() };
        lanes.record("bomb", &Outcome::Failed(memory), false);
        assert_eq!(lanes.for_plugin("bomb"), Lane::Background);
        assert_eq!(lanes.background_plugins(), ["bomb"]);
        assert_eq!(lanes.for_plugin("other"), Lane::Foreground);

        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(lanes.for_plugin("bomb"), Lane::Foreground, "back in the foreground after limits.background_secs");
        assert!(lanes.background_plugins().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_log_floods_and_refused_spawns_count_as_hogging_but_task_errors_do_not() {
        let lanes = lanes();
        let own_error = Failure { kind: FailureKind::TaskError, message: "bad input".into() };
        lanes.record("a", &Outcome::Failed(own_error), false);
        assert_eq!(lanes.for_plugin("a"), Lane::Foreground);
        lanes.record("b", &Outcome::TimedOut { ran: Duration::from_secs(1), inherited: false }, false);
        lanes.record("c", &Outcome::Succeeded(bytes::Bytes::new()), true);
        lanes.mark_heavy("d");
        assert_eq!(lanes.background_plugins(), ["b", "c", "d"]);
    }
}
