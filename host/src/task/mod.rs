//! A task, and the vocabulary every module shares about tasks: ids, states, outcomes, events,
//! plugin names and the clock they are stamped with.
//!
//! The scheduler writes a task's status; everyone else watches it (`watch` channel), which is
//! what makes long-polls and `join` return the moment a task ends.

mod clock;
pub mod events;
mod name;
mod owner;
mod state;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use clock::{epoch_ms, from_epoch_ms, millis};
use events::{EventKind, EventLog, Level};
pub use name::{NAME_RULE, is_valid_name};
pub use owner::{OwnerRefusal, Owners};
pub use state::{Failure, FailureKind, Outcome, Status, TaskId, TaskState};

/// Where a task comes from: an API caller (by token id) or a task that spawned it.
pub enum Origin<'a> {
    Caller(Option<Arc<str>>),
    Parent(&'a Task),
}

/// What the store knew of a task before a restart.
pub struct Recorded {
    pub id: TaskId,
    pub submitted_at: SystemTime,
    /// Runs started before the restart.
    pub attempts: u32,
    pub schedule: Option<Arc<str>>,
}

/// Everything known about one task.
pub struct Task {
    pub id: TaskId,
    pub plugin: String,
    pub version: Arc<str>,
    pub parent: Option<TaskId>,
    /// The id of the token that submitted the task (or its tree's first task); `None` for
    /// the bootstrap admin token.
    pub owner: Option<Arc<str>>,
    pub depth: u32,
    pub timeout: Duration,
    /// The deadline of the task that spawned this one: no task outlives its parent's
    /// deadline, so a tree of spawned tasks ends by its first task's deadline.
    pub inherited_deadline: Option<Instant>,
    started: OnceLock<Instant>,
    pub submitted_at: SystemTime,
    pub events: EventLog,
    /// Tasks in the tree this one belongs to (it, its ancestors and their descendants),
    /// shared by all of them.
    pub tree_size: Arc<AtomicU32>,
    /// Recorded in the task store (accepted through `POST .../tasks` or by a schedule): its
    /// starts and its end are written there too.
    pub durable: bool,
    /// The schedule whose run this task is.
    pub schedule: Option<Arc<str>>,
    /// Runs started so far, counting those before a restart.
    attempts: AtomicU32,
    /// Stopped by the host's shutdown rather than by a caller: its record is left as it is,
    /// for the plugin's policy to decide at the next start.
    shut_down: AtomicBool,
    /// The output was let go to keep memory within its budget: it is read from the store.
    output_in_store: AtomicBool,
    /// The store committed how the task ended: a finished task may let go of its output.
    end_recorded: AtomicBool,
    log_lines: LogBudget,
    status: watch::Sender<Status>,
    cancel: CancellationToken,
}

/// What a finished task let go of (see [`Task::release_memory`]), to be dropped.
pub struct Released {
    _output: Option<bytes::Bytes>,
    _events: Vec<Arc<events::Event>>,
}

/// Log lines a task may write; the rest are counted, not kept, and summed up at its end.
struct LogBudget {
    max: u64,
    written: AtomicU64,
}

impl Task {
    pub fn new(
        plugin: String,
        version: Arc<str>,
        origin: Origin<'_>,
        timeout: Duration,
        events_kept: usize,
        max_log_lines: u64,
    ) -> Self {
        let (parent, owner) = match origin {
            Origin::Caller(owner) => (None, owner),
            Origin::Parent(parent) => (Some(parent), parent.owner.clone()),
        };
        let task = Self {
            id: TaskId::random(),
            plugin,
            version,
            parent: parent.map(|p| p.id),
            owner,
            depth: parent.map_or(0, |p| p.depth + 1),
            timeout,
            inherited_deadline: parent.and_then(Task::deadline),
            started: OnceLock::new(),
            submitted_at: SystemTime::now(),
            events: EventLog::new(events_kept),
            tree_size: parent.map_or_else(|| Arc::new(AtomicU32::new(1)), |p| p.tree_size.clone()),
            durable: false,
            schedule: None,
            attempts: AtomicU32::new(0),
            shut_down: AtomicBool::new(false),
            output_in_store: AtomicBool::new(false),
            end_recorded: AtomicBool::new(false),
            log_lines: LogBudget { max: max_log_lines, written: AtomicU64::new(0) },
            status: watch::Sender::new(Status {
                state: TaskState::Queued,
                started_at: None,
                finished_at: None,
                outcome: None,
            }),
            cancel: CancellationToken::new(),
        };
        task.events.push(EventKind::State { state: TaskState::Queued, error: None });
        task
    }

    /// The same task, to be recorded in the task store.
    #[must_use]
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// The same task, as a run of `schedule`.
    #[must_use]
    pub fn scheduled(mut self, schedule: Option<Arc<str>>) -> Self {
        self.schedule = schedule;
        self
    }

    /// A recorded task taken up again after a restart, under its own id, queued.
    #[must_use]
    pub fn resumed(mut self, recorded: Recorded) -> Self {
        self.id = recorded.id;
        self.submitted_at = recorded.submitted_at;
        self.durable = true;
        self.schedule = recorded.schedule;
        self.attempts = AtomicU32::new(recorded.attempts);
        self
    }

    /// The same task, ended before a restart as recorded, for the API to show.
    #[must_use]
    pub fn ended(self, started_at: Option<SystemTime>, finished_at: Option<SystemTime>, outcome: Outcome) -> Self {
        let state = outcome.state();
        let error = (state != TaskState::Succeeded).then(|| outcome.describe());
        self.status.send_modify(|s| {
            s.state = state;
            s.started_at = started_at;
            s.finished_at = finished_at;
            s.outcome = Some(outcome);
        });
        self.events.push(EventKind::State { state, error });
        self
    }

    /// The same task, ended before a restart, its output (if any) left in the store.
    #[must_use]
    pub fn output_left_in_store(self) -> Self {
        self.output_in_store.store(true, Ordering::Release);
        self.end_recorded.store(true, Ordering::Release);
        self
    }

    /// The store committed how this task ended (see `end_recorded`).
    pub fn end_was_recorded(&self) {
        self.end_recorded.store(true, Ordering::Release);
    }

    /// Whether the store has how this task ended: if not, its output exists only in memory.
    pub fn end_recorded(&self) -> bool {
        self.end_recorded.load(Ordering::Acquire)
    }

    /// Whether a succeeded task's output is to be read from the store, not from its outcome.
    pub fn output_in_store(&self) -> bool {
        self.output_in_store.load(Ordering::Acquire)
    }

    /// The output of a succeeded task, as long as it is held in memory.
    pub fn output(&self) -> Option<bytes::Bytes> {
        match &self.status.borrow().outcome {
            Some(Outcome::Succeeded(output)) if !self.output_in_store() => Some(output.clone()),
            _ => None,
        }
    }

    /// What the task holds in memory that a finished task may let go: its output and its
    /// events.
    pub fn releasable_bytes(&self) -> usize {
        self.output().map_or(0, |output| output.len()) + self.events.bytes()
    }

    /// Lets go of a finished task's output if the store has it (see `end_recorded`) and of
    /// its events but the first and the final one, handing them back for the caller to drop.
    #[must_use = "drop what was released after releasing any lock held"]
    pub fn release_memory(&self) -> Released {
        let mut output = None;
        if self.end_recorded() {
            self.status.send_if_modified(|s| {
                if let Some(Outcome::Succeeded(kept)) = &mut s.outcome {
                    // Under the status lock: a reader that finds the mark unset reads the
                    // output before it is taken.
                    self.output_in_store.store(true, Ordering::Release);
                    output = Some(std::mem::take(kept));
                }
                false
            });
        }
        Released { _output: output, _events: self.events.keep_ends_only() }
    }

    /// Runs started so far, counting those before a restart.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Stops the task because the host shuts down (see `shut_down`).
    pub fn shut_down(&self) {
        self.shut_down.store(true, Ordering::Relaxed);
        self.cancel.cancel();
    }

    pub fn was_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub fn state(&self) -> TaskState {
        self.status.borrow().state
    }

    pub fn finished_at(&self) -> Option<SystemTime> {
        self.status.borrow().finished_at
    }

    /// Marks the task running; false if it was cancelled while queued.
    pub fn start(&self) -> bool {
        let started = self.status.send_if_modified(|s| {
            if s.state != TaskState::Queued {
                return false;
            }
            s.state = TaskState::Running;
            s.started_at = Some(SystemTime::now());
            true
        });
        let _ = self.started.set(Instant::now());
        if started {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            self.events.push(EventKind::State { state: TaskState::Running, error: None });
        }
        started
    }

    /// When the task must have ended: its timeout from its start, and never later than the
    /// deadline it inherited. Before it starts, only the inherited deadline is known.
    pub fn deadline(&self) -> Option<Instant> {
        let own = self.started.get().map(|started| *started + self.timeout);
        match (own, self.inherited_deadline) {
            (Some(own), Some(inherited)) => Some(own.min(inherited)),
            (own, inherited) => own.or(inherited),
        }
    }

    /// Whether the deadline the task runs against is the one it inherited from the task that
    /// spawned it, which comes before its own.
    pub fn deadline_is_inherited(&self) -> bool {
        match (self.started.get(), self.inherited_deadline) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(started), Some(inherited)) => inherited < *started + self.timeout,
        }
    }

    /// Whether the task wrote more log lines than it may keep.
    pub fn exceeded_log_lines(&self) -> bool {
        self.log_lines.written.load(Ordering::Relaxed) > self.log_lines.max
    }

    /// A log line of the guest's, kept while the task is within `limits.max_log_lines`.
    pub fn log(&self, level: Level, message: String) {
        if self.log_lines.written.fetch_add(1, Ordering::Relaxed) < self.log_lines.max {
            self.events.push(EventKind::Log { level, message });
        }
    }

    /// Records the outcome, once; later calls are ignored.
    pub fn finish(&self, outcome: Outcome) {
        let state = outcome.state();
        let error = (state != TaskState::Succeeded).then(|| outcome.describe());
        let finished = self.status.send_if_modified(|s| {
            if s.state.is_final() {
                return false;
            }
            s.state = state;
            s.finished_at = Some(SystemTime::now());
            s.outcome = Some(outcome);
            true
        });
        if finished {
            let dropped = self.log_lines.written.load(Ordering::Relaxed).saturating_sub(self.log_lines.max);
            if dropped > 0 {
                let message = format!(
                    "{dropped} more log lines were dropped: the task wrote past limits.max_log_lines ({})",
                    self.log_lines.max
                );
                self.events.push(EventKind::Log { level: Level::Warn, message });
            }
            self.events.push(EventKind::State { state, error });
        }
    }

    /// Asks the task to stop. Its driver ends a queued task at once (after giving back its
    /// queue slot, so the slot is free by the time the task reads as cancelled), and a running
    /// one at its next await point (or epoch tick).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Waits until the task has ended, then returns its status.
    pub async fn finished(&self) -> Status {
        let mut rx = self.status.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = rx.wait_for(|s| s.state.is_final()).await;
        self.status()
    }
}
