//! A task as the API shows it, and the errors a task's outcome answers.

use axum::http::StatusCode;
use base64::Engine as _;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::ApiError;
use crate::task::{Failure, FailureKind, Outcome, Status, Task, TaskId, TaskState, epoch_ms, millis};

/// The API error a synchronous run answers when its task did not succeed.
pub(super) fn outcome_error(outcome: &Outcome) -> ApiError {
    let (status, code) = match outcome {
        Outcome::Failed(Failure { kind: FailureKind::InvalidInput, .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
        }
        Outcome::Failed(Failure { kind: FailureKind::TaskError, .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "task_failed")
        }
        Outcome::Failed(Failure { kind: FailureKind::Trap, .. }) => (StatusCode::BAD_GATEWAY, "task_trapped"),
        Outcome::Failed(Failure { kind: FailureKind::MemoryLimit, .. }) => (StatusCode::BAD_GATEWAY, "memory_limit"),
        Outcome::Failed(Failure { kind: FailureKind::Instantiate, .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, "instantiate_failed")
        }
        Outcome::Failed(Failure { kind: FailureKind::ResourceLimit, .. }) => {
            (StatusCode::BAD_GATEWAY, "resource_limit")
        }
        Outcome::Failed(Failure { kind: FailureKind::HostError, .. }) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "host_error")
        }
        Outcome::TimedOut { .. } => (StatusCode::GATEWAY_TIMEOUT, "timed_out"),
        Outcome::Cancelled => (StatusCode::CONFLICT, "cancelled"),
        Outcome::Interrupted(_) => (StatusCode::SERVICE_UNAVAILABLE, "interrupted"),
        Outcome::Succeeded(_) => (StatusCode::OK, "ok"),
    };
    ApiError::new(status, code, outcome.describe())
}

#[derive(Serialize, ToSchema)]
struct ErrorView {
    kind: &'static str,
    message: String,
}

/// A task as the API shows it; its output is passed through as the task returned it, not
/// parsed into a tree.
#[derive(Serialize, ToSchema)]
pub struct TaskView<'a> {
    #[schema(value_type = String, format = Uuid)]
    id: TaskId,
    plugin: String,
    version: String,
    state: TaskState,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    parent: Option<TaskId>,
    /// The schedule whose run this task is.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<String>,
    submitted_at_ms: u64,
    started_at_ms: Option<u64>,
    finished_at_ms: Option<u64>,
    duration_ms: Option<u64>,
    timeout_ms: u64,
    /// Runs started, restarts of the host included (more than 1 only for plugins with
    /// `on_interrupt = "retry"`).
    attempts: u32,
    /// Output that is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    output: Option<&'a RawValue>,
    /// Output that is not JSON, base64-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    output_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorView>,
}

impl<'a> TaskView<'a> {
    /// The view of `task`, with `output` if it succeeded (see [`Scheduler::output`]).
    ///
    /// [`Scheduler::output`]: crate::scheduler::Scheduler::output
    pub(super) fn of(task: &Task, output: Option<&'a [u8]>) -> Self {
        let Status { state, started_at, finished_at, outcome } = task.status();
        let (mut json, mut output_base64, mut error) = (None, None, None);
        match &outcome {
            Some(Outcome::Succeeded(_)) => {
                let bytes = output.unwrap_or_default();
                match serde_json::from_slice::<&RawValue>(bytes) {
                    Ok(raw) => json = Some(raw),
                    Err(_) => output_base64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                }
            }
            Some(other) => error = Some(ErrorView { kind: error_kind(other), message: other.describe() }),
            None => {}
        }
        Self {
            id: task.id,
            plugin: task.plugin.clone(),
            version: task.version.to_string(),
            state,
            parent: task.parent,
            schedule: task.schedule.as_deref().map(str::to_owned),
            submitted_at_ms: epoch_ms(task.submitted_at),
            started_at_ms: started_at.map(epoch_ms),
            finished_at_ms: finished_at.map(epoch_ms),
            duration_ms: started_at.zip(finished_at).map(|(s, f)| f.duration_since(s).map_or(0, millis)),
            timeout_ms: millis(task.timeout),
            attempts: task.attempts(),
            output: json,
            output_base64,
            error,
        }
    }
}

impl TaskView<'static> {
    /// The view of a task that succeeded but whose output the store no longer has: it reads
    /// as interrupted, saying why, never as a task with an empty output.
    pub(super) fn output_lost(task: &Task, why: String) -> Self {
        let mut view = TaskView::of(task, None);
        view.state = TaskState::Interrupted;
        view.output = None;
        view.output_base64 = None;
        view.error = Some(ErrorView { kind: "interrupted", message: why });
        view
    }
}

fn error_kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Failed(f) => f.kind.as_str(),
        Outcome::TimedOut { .. } => "timeout",
        Outcome::Cancelled => "cancelled",
        Outcome::Interrupted(_) => "interrupted",
        Outcome::Succeeded(_) => "none",
    }
}
