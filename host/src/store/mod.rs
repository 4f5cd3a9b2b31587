//! The host's durable state, behind one trait so that another backend (a NATS `JetStream`
//! one, for a cluster) can take the embedded `SQLite`'s place: accepted tasks, schedules,
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
//!   made before them, without the caller waiting (it may wait for an end's commit): after a crash the store shows each task in
//!   the last state it committed, so a task may read `running` when it had finished a moment
//!   before (at-least-once: a `retry` plugin may see such a task again; a `fail` plugin sees
//!   it `interrupted`, never run twice).
//! - Reads are for the start of the host, before any write; except those of tasks, which the
//!   host makes while it runs too (what it does not keep in memory: the backlog's pages
//!   ([`Store::unfinished`]), one task ([`Store::task`]), one task's payload
//!   ([`Store::input`], [`Store::output`])), and which see every write committed before them.

mod records;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;

pub use records::{PluginRecord, RecordedBefore, ScheduleRecord, Scope, TaskEnd, TaskRecord, TokenRecord, VersionInfo};
pub use sqlite::SqliteStore;

use crate::task::TaskId;

/// Why the store cannot do what was asked; the messages name the file or the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is unreadable or corrupt ({cause}); move it aside to start empty, or restore it from a backup"
    )]
    Corrupt { path: String, cause: String },
    #[error(
        "the store at {path} was written by a newer ignareo (schema {found}, this build reads up to {supported}); \
         run that build, or restore the store from a backup of this build's"
    )]
    NewerSchema { path: String, found: i64, supported: i64 },
    /// The backend refused or failed, in its own words.
    #[error("the store failed: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot write to the store: {0}")]
    Write(String),
    /// A task's end is recorded, but not its output, which could not be written: the task is
    /// recorded as failed with this reason.
    #[error("{0}")]
    OutputNotKept(String),
    #[error("the store has stopped (the host is shutting down)")]
    Stopped,
    /// A succeeded task's end is recorded, but its output file is gone or unreadable: the
    /// task reads as interrupted, saying so.
    #[error("{0}")]
    OutputLost(String),
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
    /// Records how a task ended. The future resolves once the end is committed (the caller may
    /// drop it instead), with [`StoreError::OutputNotKept`] if the output could not be stored
    /// and the task was recorded as failed instead, saying why.
    fn finished(&self, id: TaskId, at: SystemTime, end: TaskEnd) -> StoreFuture<'_>;
    /// Where the records held now end: tasks recorded from then on are not before it, whatever
    /// the clock stamped them with.
    fn recorded_before(&self) -> Result<RecordedBefore, StoreError>;
    /// Tasks recorded before `before` as queued or running, oldest first (by submission
    /// time, then id), after `after` if given, at most `limit`; without their inputs (read
    /// each with [`Store::input`] when it starts).
    fn unfinished(
        &self,
        after: Option<(SystemTime, TaskId)>,
        before: &RecordedBefore,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError>;
    /// How many of the tasks recorded before `before` are queued or running.
    fn count_unfinished(&self, before: &RecordedBefore) -> Result<usize, StoreError>;
    /// A recorded task in whatever state, without its input and output (read them with
    /// [`Store::input`] and [`Store::output`]); `None` if no such task is recorded.
    fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError>;
    /// The `limit` most recently finished tasks, oldest first, without their inputs and
    /// outputs (read an output with [`Store::output`] when asked for).
    fn recent_finished(&self, limit: usize) -> Result<Vec<TaskRecord>, StoreError>;
    /// A recorded task's input; `None` if no such task is recorded.
    fn input(&self, id: TaskId) -> Result<Option<Bytes>, StoreError>;
    /// How a recorded task ended, its output included; `None` if no end of it is recorded
    /// (yet).
    fn output(&self, id: TaskId) -> Result<Option<TaskEnd>, StoreError>;

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
