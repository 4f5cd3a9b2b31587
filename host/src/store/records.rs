//! What the store records: tasks, schedules, plugins and tokens, as plain data. The modules
//! above build their own state from these and hand these back to be written.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::task::{Failure, FailureKind, Outcome, Task, TaskId, TaskState};

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
    /// Where the store placed the record in the order it wrote records (`SQLite`'s rowid, a
    /// stream's sequence), on a record read back from it; `None` on one not written yet.
    pub sequence: Option<u64>,
}

/// Where the records a store held at one moment end, for the backlog: the tasks recorded
/// before it were accepted by an earlier process, those recorded after it by this one. A
/// record is before it if it was written up to `sequence` and submitted before `time`: the
/// order of writing tells the two apart even when the clock steps back, and the time keeps a
/// sequence the store gives out again (`SQLite` may give a new row the rowid of a deleted one)
/// from counting a later task in by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedBefore {
    /// The moment, at the precision the store keeps times with.
    pub time: SystemTime,
    /// The sequence of the last record written by then (0 if there was none).
    pub sequence: u64,
}

impl RecordedBefore {
    /// Before anything was recorded: holds no record.
    pub const NOTHING: Self = Self { time: UNIX_EPOCH, sequence: 0 };

    /// Whether `record`, read back from the store, was recorded before this mark.
    pub fn holds(&self, record: &TaskRecord) -> bool {
        record.submitted_at < self.time && record.sequence.is_some_and(|sequence| sequence <= self.sequence)
    }
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
            sequence: None,
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

/// One uploaded version of a plugin: a component and its manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The component's sha256 without a manifest; with one, the sha256 of both.
    pub version: String,
    /// sha256 of the component bytes, hex: the name of its files.
    pub component: String,
    /// The manifest as uploaded (it may hold proxy credentials: never shown as is).
    pub manifest: Option<String>,
    pub size: u64,
    pub uploaded_at_ms: u64,
    /// Time the first compilation took.
    pub compile_ms: u64,
}

/// What a token may do: one of its scopes, as recorded and as callers name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Admin,
    Read,
    Trigger,
}

/// A stored token, without its secret.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub plugins: BTreeSet<String>,
    pub created_at_ms: u64,
    /// SHA-256 of the whole token, hex.
    #[serde(rename = "sha256")]
    #[schema(rename = "sha256")]
    pub digest: String,
}
