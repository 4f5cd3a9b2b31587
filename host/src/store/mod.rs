//! The durable record of accepted tasks, behind one trait so that another backend (a NATS
//! JetStream one, for a cluster) can take the embedded SQLite's place.
//!
//! The contract every backend keeps:
//! - [`TaskStore::accept`] is atomic and durable: when its future resolves `Ok`, every task
//!   given is recorded (queued), and none is if it fails. The API answers 202 only after it.
//! - [`TaskStore::requeued`], [`TaskStore::started`] and [`TaskStore::finished`] are recorded in the order they are
//!   called, after the `accept` of the same task, without the caller waiting: after a crash the
//!   store shows each task in the last state it committed, so a task may read `running` when it
//!   had finished a moment before (at-least-once: a `retry` plugin may see such a task again;
//!   a `fail` plugin sees it `interrupted`, never run twice).
//! - Reads ([`TaskStore::unfinished`], [`TaskStore::recent_finished`]) are for the start of
//!   the host, before any write.

mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};


use bytes::Bytes;

pub use sqlite::SqliteStore;

use crate::task::{Failure, FailureKind, Outcome, Task, TaskId, TaskState};

/// Why the store cannot do what was asked; the messages name the file or the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the task store at {path} is unreadable or corrupt ({cause}); move it aside to start empty, or restore it from a backup")]
    Corrupt { path: String, cause: String },
    #[error("the task store was written by a newer ignareo (schema {found}, this build reads up to {supported})")]
    NewerSchema { found: i64, supported: i64 },
    #[error("the task store failed: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("cannot record the task: {0}")]
    Write(String),
    #[error("the task store has stopped (the host is shutting down)")]
    Stopped,
}

/// A task as recorded.
#[derive(Clone, Debug)]
pub struct TaskRecord {
    pub id: TaskId,
    pub plugin: String,
    pub version: String,
    /// The id of the token that submitted it.
    pub owner: Option<String>,
    pub input: Bytes,
    pub timeout: Duration,
    pub state: TaskState,
    /// Runs started so far (the one under way included).
    pub attempts: u32,
    pub submitted_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Set once the task has ended.
    pub end: Option<TaskEnd>,
}

/// How a task ended, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEnd {
    pub state: TaskState,
    /// The failure's kind (`trap`, `memory-limit`, ...), for failed tasks.
    pub failure_kind: Option<String>,
    /// What went wrong, for every state but `succeeded`.
    pub message: Option<String>,
    pub output: Option<Bytes>,
}

impl TaskRecord {
    /// The record of a task being accepted.
    pub fn accepted(task: &Task, input: Bytes) -> Self {
        Self {
            id: task.id,
            plugin: task.plugin.clone(),
            version: task.version.to_string(),
            owner: task.owner.as_deref().map(str::to_owned),
            input,
            timeout: task.timeout,
            state: TaskState::Queued,
            attempts: task.attempts(),
            submitted_at: task.submitted_at,
            started_at: None,
            finished_at: None,
            end: None,
        }
    }

    /// How a finished task ended, as far as the record tells.
    pub fn outcome(&self) -> Outcome {
        let Some(end) = &self.end else {
            return Outcome::Interrupted("the record of this task has no end".to_owned());
        };
        let message = || end.message.clone().unwrap_or_default();
        match end.state {
            TaskState::Succeeded => Outcome::Succeeded(end.output.clone().unwrap_or_default()),
            TaskState::Failed => {
                let kind = end.failure_kind.as_deref().and_then(|k| k.parse().ok()).unwrap_or(FailureKind::TaskError);
                Outcome::Failed(Failure { kind, message: message() })
            }
            TaskState::TimedOut => {
                let ran = self.started_at.zip(self.finished_at).and_then(|(s, f)| f.duration_since(s).ok()).unwrap_or(self.timeout);
                Outcome::TimedOut { ran, inherited: false }
            }
            TaskState::Cancelled => Outcome::Cancelled,
            TaskState::Interrupted | TaskState::Queued | TaskState::Running => Outcome::Interrupted(message()),
        }
    }
}

impl TaskEnd {
    pub fn of(outcome: &Outcome) -> Self {
        let (failure_kind, output) = match outcome {
            Outcome::Failed(failure) => (Some(failure.kind.as_str().to_owned()), None),
            Outcome::Succeeded(output) => (None, Some(output.clone())),
            _ => (None, None),
        };
        let message = (outcome.state() != TaskState::Succeeded).then(|| outcome.describe());
        Self { state: outcome.state(), failure_kind, message, output }
    }
}

pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

pub trait TaskStore: Send + Sync {
    /// Records `tasks` as queued, all or none, durably before the future resolves.
    fn accept(&self, tasks: Vec<TaskRecord>) -> StoreFuture<'_>;
    /// Records that a task found running at start goes back to the queue (a retry).
    fn requeued(&self, id: TaskId);
    /// Records that a task started its `attempt`-th run.
    fn started(&self, id: TaskId, attempt: u32, at: SystemTime);
    /// Records how a task ended.
    fn finished(&self, id: TaskId, at: SystemTime, end: TaskEnd);
    /// Tasks recorded as queued or running, oldest first.
    fn unfinished(&self) -> Result<Vec<TaskRecord>, StoreError>;
    /// The `limit` most recently finished tasks, oldest first.
    fn recent_finished(&self, limit: usize) -> Result<Vec<TaskRecord>, StoreError>;
    /// Commits every write made so far and stops; later writes are refused.
    fn close(&self);
}
