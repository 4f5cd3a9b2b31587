//! The host's durable state, behind one trait so that another backend (a NATS JetStream
//! one, for a cluster) can take the embedded SQLite's place: accepted tasks, schedules,
//! plugins (which versions exist, which is live, their manifests; the component bytes and
//! compiled artifacts are files, content-addressed, see the registry) and tokens.
//!
//! The contract every backend keeps:
//! - Every write whose method returns a [`StoreFuture`] is atomic and durable when the future
//!   resolves `Ok`, and not made at all if it fails: [`Store::accept`] (every task given is
//!   recorded, queued, or none), and the definitions of schedules, plugins and tokens. The API
//!   answers only after them.
//! - A scheduled task's run is recorded in the same transaction as the task: after a crash a
//!   schedule shows a run if and only if its task exists, so a run is never lost nor doubled.
//! - [`Store::requeued`], [`Store::started`], [`Store::finished`] and
//!   [`Store::schedule_skipped`] are recorded in the order they are called, after the writes
//!   made before them, without the caller waiting: after a crash the store shows each task in
//!   the last state it committed, so a task may read `running` when it had finished a moment
//!   before (at-least-once: a `retry` plugin may see such a task again; a `fail` plugin sees
//!   it `interrupted`, never run twice).
//! - Reads are for the start of the host, before any write.

mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

pub use sqlite::SqliteStore;

use crate::auth::TokenRecord;
use crate::registry::VersionInfo;
use crate::task::{Failure, FailureKind, Outcome, Task, TaskId, TaskState};

/// Why the store cannot do what was asked; the messages name the file or the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is unreadable or corrupt ({cause}); move it aside to start empty, or restore it from a backup"
    )]
    Corrupt { path: String, cause: String },
    #[error("the store was written by a newer ignareo (schema {found}, this build reads up to {supported})")]
    NewerSchema { found: i64, supported: i64 },
    #[error("the store failed: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("cannot write to the store: {0}")]
    Write(String),
    #[error("the store has stopped (the host is shutting down)")]
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
    /// The schedule that started it, whose run it is.
    pub schedule: Option<String>,
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
            schedule: task.schedule.as_deref().map(str::to_owned),
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
                let ran = self
                    .started_at
                    .zip(self.finished_at)
                    .and_then(|(s, f)| f.duration_since(s).ok())
                    .unwrap_or(self.timeout);
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

/// A schedule as recorded: its definition and what it has done.
#[derive(Clone, Debug)]
pub struct ScheduleRecord {
    pub name: String,
    pub plugin: String,
    pub input: Bytes,
    /// A cron expression, or else
    pub cron: Option<String>,
    /// the time between runs.
    pub interval: Option<Duration>,
    /// The timeout of each run; the plugin's if unset.
    pub timeout: Option<Duration>,
    /// Whether a run may start while the previous one has not ended.
    pub overlap: bool,
    pub paused: bool,
    /// The id of the token that made it; its runs are that token's tasks.
    pub owner: Option<String>,
    pub created_at: SystemTime,
    /// When it was last defined or resumed: runs are due after this.
    pub since: SystemTime,
    /// When it last ran or skipped a run.
    pub last_run_at: Option<SystemTime>,
    pub last_task: Option<TaskId>,
    pub runs: u64,
    pub skipped: u64,
}

/// A plugin as recorded: its versions (oldest first) and which one is live.
#[derive(Clone, Debug)]
pub struct PluginRecord {
    pub name: String,
    pub live: String,
    pub versions: Vec<VersionInfo>,
}

pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

pub trait Store: Send + Sync {
    /// Records `tasks` as queued, all or none, durably before the future resolves; with
    /// them, the run of each one's schedule.
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

    /// Records a schedule's definition: a new schedule, or a new definition of one whose
    /// runs and skips are kept.
    fn put_schedule(&self, schedule: ScheduleRecord) -> StoreFuture<'_>;
    fn delete_schedule(&self, name: String) -> StoreFuture<'_>;
    /// Records that a schedule skipped a run at `at`, its previous run not having ended.
    fn schedule_skipped(&self, name: String, at: SystemTime);
    fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// Records a plugin's versions and which one is live, replacing what was recorded.
    fn put_plugin(&self, plugin: PluginRecord) -> StoreFuture<'_>;
    fn delete_plugin(&self, name: String) -> StoreFuture<'_>;
    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError>;

    fn put_token(&self, token: TokenRecord) -> StoreFuture<'_>;
    fn delete_token(&self, id: String) -> StoreFuture<'_>;
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Commits every write made so far and stops; later writes are refused.
    fn close(&self);
}
