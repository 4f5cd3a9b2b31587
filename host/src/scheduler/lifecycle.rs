//! A task's life once accepted: launched on its lane, waiting for its slots (or its end while
//! queued), run, and ended exactly once, with its start and end recorded for durable tasks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::Scheduler;
use super::lanes::Lane;
use crate::registry::LoadedVersion;
use crate::store::{StoreError, TaskEnd};
use crate::task::{Failure, FailureKind, Outcome, Task, TaskState};

/// What a durable task that the host's shutdown stopped reads as until the next start.
const SHUT_DOWN: &str = "the host shut down before this task ended; the next start runs it if it had not started, \
                         or applies the plugin's on_interrupt policy if it had";

/// How a durable task ended, as recorded: failed, saying why, if the store could not keep its
/// output (the store's other failures leave it as it ran; the next start finds it unfinished).
fn as_recorded(recorded: Result<(), StoreError>, outcome: Outcome) -> Outcome {
    match recorded {
        Err(StoreError::OutputNotKept(message)) => {
            Outcome::Failed(Failure { kind: FailureKind::ResourceLimit, message })
        }
        _ => outcome,
    }
}

impl Scheduler {
    pub(super) fn launch(&self, task: Arc<Task>, version: Arc<LoadedVersion>, input: Bytes) {
        self.tasks.insert(task.clone());
        let this = self.this.upgrade().expect("the scheduler outlives its tasks");
        let lane = self.lanes.for_plugin(&task.plugin);
        self.tracker.spawn_on(this.drive(task, version, input, lane), self.lanes.handle(lane));
    }

    async fn drive(self: Arc<Self>, task: Arc<Task>, version: Arc<LoadedVersion>, input: Bytes, lane: Lane) {
        // A spawned task may reach its parent's deadline while still queued.
        let inherited_deadline = async {
            match task.inherited_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let permits = tokio::select! {
            () = task.cancellation().cancelled() => Err(Outcome::Cancelled),
            () = inherited_deadline => Err(Outcome::TimedOut { ran: Duration::ZERO, inherited: true }),
            permits = self.slots.acquire(&task.plugin, version.limits.max_concurrency, lane) => Ok(permits),
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        let outcome = match &permits {
            // A recorded task not yet started when the host began to shut down stays queued
            // in the store for the next start, rather than starting in the grace period.
            Ok(_) if task.durable && self.closed.is_cancelled() => {
                task.shut_down();
                Outcome::Cancelled
            }
            Ok(_) if task.start() => {
                if task.durable {
                    self.store.started(task.id, task.attempts(), SystemTime::now());
                }
                self.run(&task, &version, &input).await
            }
            Ok(_) => Outcome::Cancelled,
            Err(outcome) => outcome.clone(),
        };
        let (outcome, recorded) = match outcome {
            // Left as recorded: the next start takes it up.
            Outcome::Cancelled if task.durable && task.was_shut_down() => {
                (Outcome::Interrupted(SHUT_DOWN.to_owned()), None)
            }
            outcome => {
                let recorded =
                    task.durable.then(|| self.store.finished(task.id, SystemTime::now(), TaskEnd::of(&outcome)));
                (outcome, recorded)
            }
        };
        // Slots are free before the end is visible: whoever sees the task end and submits
        // another finds them free.
        if let Ok(permits) = permits {
            self.slots.release(&task.plugin, permits);
        }
        // A durable task's end is visible once committed, as the store tells it.
        let outcome = match recorded {
            Some(recorded) => as_recorded(recorded.await, outcome),
            None => outcome,
        };
        tracing::debug!(task = %task.id, plugin = %task.plugin, outcome = %outcome.describe(), "task ended");
        task.finish(outcome);
        self.retire(&task);
    }

    /// Runs a started task to its end, within its own deadline or the one it inherited.
    async fn run(self: &Arc<Self>, task: &Arc<Task>, version: &LoadedVersion, input: &[u8]) -> Outcome {
        let budget = task
            .deadline()
            .map_or(task.timeout, |deadline| deadline.saturating_duration_since(tokio::time::Instant::now()));
        let invocation = self.capabilities.prepare(&version.capabilities, task.clone(), self.clone());
        let outcome = tokio::select! {
            () = task.cancellation().cancelled() => Outcome::Cancelled,
            outcome = self.runtime.invoke(&version.linked, invocation, input, budget) => {
                self.lanes.record(&task.plugin, &outcome, task.exceeded_log_lines());
                outcome
            }
        };
        let inherited = task.deadline_is_inherited();
        // What the task's end states: its own deadline, or how long it ran before its parent's.
        let ran = if inherited { budget } else { task.timeout };
        match outcome {
            Outcome::TimedOut { .. } => Outcome::TimedOut { ran, inherited },
            // A guest that fails at its deadline (a child ending on the same deadline, a
            // request cut short by it) reached its deadline: that is how it ended.
            Outcome::Failed(_) if task.deadline().is_some_and(|deadline| tokio::time::Instant::now() >= deadline) => {
                Outcome::TimedOut { ran, inherited }
            }
            other => other,
        }
    }

    /// Counts a task that ended and keeps it among the finished ones.
    fn retire(&self, task: &Task) {
        {
            let mut ended = self.ended.lock();
            match task.state() {
                TaskState::Succeeded => ended.succeeded += 1,
                TaskState::Failed => ended.failed += 1,
                TaskState::Cancelled => ended.cancelled += 1,
                TaskState::TimedOut => ended.timed_out += 1,
                TaskState::Interrupted => ended.interrupted += 1,
                TaskState::Queued | TaskState::Running => {}
            }
        }
        self.tasks.keep_finished(task.id);
    }
}
