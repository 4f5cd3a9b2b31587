//! The words every module shares about a task: its id, its lifecycle states, and how it
//! ended (in words a plugin author can act on).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A task's id: 122 random bits, so ids cannot be guessed. Ordered only to break ties in
/// listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    /// The host stopped while the task ran, and the plugin's policy is not to run it again.
    Interrupted,
}

impl TaskState {
    const ALL: [Self; 7] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
        Self::Interrupted,
    ];

    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed-out",
            Self::Interrupted => "interrupted",
        }
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| format!("unknown task state {s:?}"))
    }
}

/// What went wrong, in words a plugin author can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The task rejected its input.
    InvalidInput,
    /// The task returned an error of its own.
    TaskError,
    /// The guest trapped (panic, unreachable, out of bounds, stack overflow, ...).
    Trap,
    /// The guest tried to grow its memory past the per-task limit.
    MemoryLimit,
    /// The host could not start the task.
    Instantiate,
    /// The task hit a per-task limit other than memory (call stack, output size, sessions);
    /// the message names it.
    ResourceLimit,
    /// The host itself failed while running the task (a panic in a host call): a bug of the
    /// host's, not the plugin's; the message says what failed.
    HostError,
}

impl FailureKind {
    const ALL: [Self; 7] = [
        Self::InvalidInput,
        Self::TaskError,
        Self::Trap,
        Self::MemoryLimit,
        Self::Instantiate,
        Self::ResourceLimit,
        Self::HostError,
    ];

    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid-input",
            Self::TaskError => "task-error",
            Self::Trap => "trap",
            Self::MemoryLimit => "memory-limit",
            Self::Instantiate => "instantiate",
            Self::ResourceLimit => "resource-limit",
            Self::HostError => "host-error",
        }
    }
}

impl FromStr for FailureKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| format!("unknown failure kind {s:?}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// How a task ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    Succeeded(Bytes),
    Failed(Failure),
    /// Ran out of time after running this long; `inherited` when the deadline was the one
    /// of the task that spawned it.
    TimedOut {
        ran: Duration,
        inherited: bool,
    },
    Cancelled,
    /// The host stopped while the task ran; the reason says what became of it.
    Interrupted(String),
}

impl Outcome {
    pub fn state(&self) -> TaskState {
        match self {
            Self::Succeeded(_) => TaskState::Succeeded,
            Self::Failed(_) => TaskState::Failed,
            Self::TimedOut { .. } => TaskState::TimedOut,
            Self::Cancelled => TaskState::Cancelled,
            Self::Interrupted(_) => TaskState::Interrupted,
        }
    }

    /// One line for logs and events.
    pub fn describe(&self) -> String {
        match self {
            Self::Succeeded(output) => format!("succeeded with {} bytes of output", output.len()),
            Self::Failed(f) => f.message.clone(),
            Self::TimedOut { ran, inherited: false } => format!("exceeded its deadline of {} ms", ran.as_millis()),
            Self::TimedOut { ran, inherited: true } => {
                format!("reached the deadline of the task that spawned it after running {} ms", ran.as_millis())
            }
            Self::Cancelled => "cancelled".to_owned(),
            Self::Interrupted(reason) => reason.clone(),
        }
    }
}

/// A task's status at one moment.
#[derive(Clone, Debug)]
pub struct Status {
    pub state: TaskState,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub outcome: Option<Outcome>,
}
