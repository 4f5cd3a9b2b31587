//! A task's life once accepted: launched on its lane, waiting for its slots (or its end while
//! queued), run, and ended exactly once, with its start and end recorded for durable tasks;
//! a panic while it runs ends it `failed` too (see `unwind`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use super::Scheduler;
use super::lanes::Lane;
use super::payloads::Input;
use super::unwind;
use crate::registry::LoadedVersion;
use crate::runtime::Call;
use crate::store::{StoreError, TaskEnd};
use crate::task::{Failure, FailureKind, Outcome, Task, TaskState};

/// What a durable task that the host's shutdown stopped reads as until the next start.
const SHUT_DOWN: &str = "the host shut down before this task ended; the next start runs it if it had not started, \
                         or applies the plugin's on_interrupt policy if it had";

impl Scheduler {
    pub(super) fn launch(&self, task: Arc<Task>, version: Arc<LoadedVersion>, input: Input) {
        self.tasks.insert(task.clone());
        let this = self.this.upgrade().expect("the scheduler outlives its tasks");
        let lane = self.lanes.for_plugin(&task.plugin);
        self.tracker.spawn_on(this.drive_to_an_end(task, version, input, lane), self.lanes.handle(lane));
    }

    /// Drives a task; should the driver itself panic, the task still ends (`failed`, and so
    /// recorded) instead of reading `running` forever. Its slots and queue place are given
    /// back as the panic drops them, a shrink of its plugin's concurrency still honoured.
    async fn drive_to_an_end(self: Arc<Self>, task: Arc<Task>, version: Arc<LoadedVersion>, input: Input, lane: Lane) {
        let Err(panic) = unwind::caught(self.clone().drive(task.clone(), version, input, lane)).await else {
            return;
        };
        tracing::error!(task = %task.id, plugin = %task.plugin, panic = %panic, "a task's driver panicked; the task ends failed");
        if !task.state().is_final() {
            let mut outcome = unwind::host_failure(&panic);
            if task.durable {
                let recorded = self.store.finished(task.id, SystemTime::now(), TaskEnd::of(&outcome)).await;
                outcome = as_recorded(&task, recorded, outcome);
            }
            task.finish(outcome);
            self.retire(&task);
        }
    }

    async fn drive(self: Arc<Self>, task: Arc<Task>, version: Arc<LoadedVersion>, input: Input, lane: Lane) {
        // A spawned task may reach its parent's deadline while still queued.
        let inherited_deadline = async {
            match task.inherited_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let place = QueuePlace(&self.queued);
        let permits = tokio::select! {
            () = task.cancellation().cancelled() => Err(Outcome::Cancelled),
            () = inherited_deadline => Err(Outcome::TimedOut { ran: Duration::ZERO, inherited: true }),
            permits = self.slots.acquire(&task.plugin, version.limits.max_concurrency, lane) => Ok(permits),
        };
        drop(place);
        self.unqueue_input(&input);
        self.refill_backlog();
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
                match self.take_input(&task, input).await {
                    Ok(call) => self.run(&task, &version, call).await,
                    Err(outcome) => outcome,
                }
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
        // A durable task's end is visible once committed, as the store tells it.
        let outcome = match recorded {
            Some(recorded) => as_recorded(&task, recorded.await, outcome),
            None => outcome,
        };
        tracing::debug!(task = %task.id, plugin = %task.plugin, outcome = %outcome.describe(), "task ended");
        // Its slots go back once its end is recorded, just before the end is visible (nothing
        // awaited in between): whoever sees the task end and submits another finds them free,
        // and no task of the plugin starts while this one still shows running for the length
        // of a commit.
        drop(permits);
        task.finish(outcome);
        self.retire(&task);
    }

    /// Runs a started task to its end, within its own deadline or the one it inherited.
    async fn run(self: &Arc<Self>, task: &Arc<Task>, version: &LoadedVersion, call: Call) -> Outcome {
        let budget = task
            .deadline()
            .map_or(task.timeout, |deadline| deadline.saturating_duration_since(tokio::time::Instant::now()));
        let invocation = self.capabilities.prepare(&version.capabilities, task.clone(), self.clone());
        let outcome = tokio::select! {
            () = task.cancellation().cancelled() => Outcome::Cancelled,
            outcome = invoked(task, self.runtime.invoke(&version.linked, invocation, call, budget)) => {
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

/// How a durable task ended, as recorded: failed, saying why, if the store could not keep
/// its output. The store's other failures leave it as it ran, its output held in memory
/// only (the next start finds it unfinished).
fn as_recorded(task: &Task, recorded: Result<(), StoreError>, outcome: Outcome) -> Outcome {
    match recorded {
        Ok(()) => {
            task.end_was_recorded();
            outcome
        }
        Err(StoreError::OutputNotKept(message)) => {
            task.end_was_recorded();
            Outcome::Failed(Failure { kind: FailureKind::ResourceLimit, message })
        }
        Err(error) => {
            tracing::warn!(task = %task.id, %error, "a task's end is not recorded; it is kept in memory only");
            outcome
        }
    }
}

/// A task's place in the queue, given back when it leaves the queue (or its driver unwinds).
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The outcome of a task's invocation; a panic in it (a host call's, the runtime's) ends the
/// task as a host error instead of unwinding through its driver.
async fn invoked(task: &Task, invocation: impl Future<Output = Outcome>) -> Outcome {
    unwind::caught(invocation).await.unwrap_or_else(|panic| {
        tracing::error!(task = %task.id, plugin = %task.plugin, panic = %panic, "a host call panicked; the task ends failed");
        unwind::host_failure(&panic)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{FailureKind, Origin};

    #[tokio::test]
    async fn an_invocation_that_panics_ends_its_task_as_a_host_error() {
        let task = Task::new("p".into(), "v1".into(), Origin::Caller(None), Duration::from_secs(1), 16, 100);
        let outcome = invoked(&task, async {
            tokio::task::yield_now().await;
            panic!("index out of bounds in a host call")
        })
        .await;
        let Outcome::Failed(failure) = outcome else { panic!("a failure, got {}", outcome.describe()) };
        assert_eq!(failure.kind, FailureKind::HostError);
        assert!(failure.message.contains("index out of bounds in a host call"), "{}", failure.message);
        assert!(matches!(invoked(&task, async { Outcome::Cancelled }).await, Outcome::Cancelled));
    }

    #[test]
    fn a_queue_place_is_given_back_even_when_its_driver_unwinds() {
        let queued = AtomicUsize::new(2);
        let unwound = std::panic::catch_unwind(|| {
            let _place = QueuePlace(&queued);
            panic!("the driver broke");
        });
        assert!(unwound.is_err());
        assert_eq!(queued.load(Ordering::Relaxed), 1);
    }
}
