//! Tasks: run synchronously, submit asynchronously, look up (with long-polling), list,
//! stream events (SSE), cancel.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Body, PluginName, Query, TaskIdParam};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::auth::{Caller, Forbidden};
use crate::task::events::{Event, Subscription};
use crate::task::{Failure, FailureKind, Outcome, Status, Task, TaskId, TaskState};

/// How long `DELETE /v1/tasks/{id}` waits for the task to stop before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
const DEFAULT_LIST_LIMIT: usize = 100;
const MAX_LIST_LIMIT: usize = 1_000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// Seconds this task may run, at most the plugin's limit; that limit if absent.
    #[param(minimum = 1)]
    timeout: Option<u64>,
}

/// Run a task and answer its output.
#[utoipa::path(post, path = "/v1/plugins/{name}/run", operation_id = "run_task", tag = "tasks", params(("name" = String, Path, description = "Plugin name: 1-64 of a-z, 0-9, - and _, starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", max_length = 64), SubmitQuery), request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "The task's input: JSON for plugins that parse it, or any bytes; may be empty"),
    responses(
        (status = 200, description = "The task's output: JSON, or bytes", content(
            (serde_json::Value = "application/json"), (String = "application/octet-stream"))),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 409, description = "Cancelled while running", body = ErrorBody),
        (status = 422, description = "The plugin refused its input or returned an error", body = ErrorBody),
        (status = 429, description = "The queue is full (Retry-After)", body = ErrorBody),
        (status = 502, description = "The plugin trapped or hit a limit", body = ErrorBody),
        (status = 503, description = "Cannot instantiate now, or shutting down (Retry-After)", body = ErrorBody),
        (status = 504, description = "The task ran past its deadline", body = ErrorBody),
        (status = "4XX", description = "Refused; the error names the reason", body = ErrorBody),
    ))]
pub async fn run(
    caller: Caller,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    Query(query): Query<SubmitQuery>,
    Body(input): Body,
) -> Result<Response, ApiError> {
    caller.require_trigger(&name)?;
    let timeout = task_timeout(&state, &query)?;
    let task = state.scheduler.submit(&name, input, timeout, caller.token_id)?;
    let status = task.finished().await;
    match status.outcome {
        Some(Outcome::Succeeded(output)) => {
            let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&output).is_ok() {
                "application/json"
            } else {
                "application/octet-stream"
            };
            let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], output).into_response();
            identify(&mut response, &task);
            Ok(response)
        }
        Some(outcome) => Err(outcome_error(&outcome).with_task(task.id)),
        None => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the task ended without an outcome")
            .with_task(task.id)),
    }
}

/// Accept a task to run in the background.
#[utoipa::path(post, path = "/v1/plugins/{name}/tasks", operation_id = "submit_task", tag = "tasks", params(("name" = String, Path, description = "Plugin name: 1-64 of a-z, 0-9, - and _, starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", max_length = 64), SubmitQuery), request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "The task's input: JSON for plugins that parse it, or any bytes; may be empty"),
    responses(
        (status = 202, description = "Accepted; Location names the task", body = TaskView,
            headers(("location" = String, description = "/v1/tasks/{id}"))),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 429, description = "The queue is full (Retry-After)", body = ErrorBody),
        (status = 503, description = "Shutting down, or the task could not be recorded (Retry-After)", body = ErrorBody),
        (status = "4XX", description = "Refused; the error names the reason", body = ErrorBody),
    ))]
pub async fn submit(
    caller: Caller,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    Query(query): Query<SubmitQuery>,
    Body(input): Body,
) -> Result<Response, ApiError> {
    caller.require_trigger(&name)?;
    let timeout = task_timeout(&state, &query)?;
    let task = state.scheduler.accept(&name, input, timeout, caller.token_id).await?;
    let location = format!("/v1/tasks/{}", task.id);
    let mut response =
        (StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(TaskView::of(&task))).into_response();
    identify(&mut response, &task);
    Ok(response)
}

/// Many tasks of one plugin, submitted together.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// One task per input, each given to the plugin as JSON.
    #[schema(min_items = 1)]
    inputs: Vec<serde_json::Value>,
}

/// The tasks of a batch, all committed.
#[derive(Serialize, ToSchema)]
pub struct BatchAccepted {
    plugin: String,
    version: String,
    count: usize,
    /// The tasks' ids, in the order of the inputs.
    #[schema(value_type = Vec<String>)]
    ids: Vec<TaskId>,
}

/// Accept many tasks in one request, committed together (all or none).
#[utoipa::path(post, path = "/v1/plugins/{name}/tasks:batch", operation_id = "submit_batch", tag = "tasks", params(("name" = String, Path, description = "Plugin name: 1-64 of a-z, 0-9, - and _, starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", max_length = 64), SubmitQuery), request_body = Batch,
    responses(
        (status = 202, description = "Accepted: every task is recorded and waits for a running slot", body = BatchAccepted),
        (status = 400, description = "Not a batch, an empty one, or more inputs than limits.max_batch_tasks", body = ErrorBody),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 413, description = "An input over limits.max_input_mb, or a body over limits.max_batch_mb", body = ErrorBody),
        (status = 429, description = "No room in the queue for the whole batch (Retry-After)", body = ErrorBody),
        (status = 503, description = "Shutting down, or the tasks could not be recorded (Retry-After)", body = ErrorBody),
        (status = "4XX", description = "Refused; the error names the reason", body = ErrorBody),
    ))]
pub async fn submit_batch(
    caller: Caller,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    Query(query): Query<SubmitQuery>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    caller.require_trigger(&name)?;
    let timeout = task_timeout(&state, &query)?;
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("invalid batch ({e}); send {{\"inputs\": [{{\"url\": \"...\"}}, {{\"url\": \"...\"}}]}}"),
        )
    })?;
    let inputs = batch_inputs(&state, batch)?;
    let tasks = state.scheduler.accept_many(&name, inputs, timeout, caller.token_id).await?;
    let version = tasks.first().map(|t| t.version.to_string()).unwrap_or_default();
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
    Ok((StatusCode::ACCEPTED, axum::Json(BatchAccepted { plugin: name, version, count: ids.len(), ids }))
        .into_response())
}

/// Each input as the bytes its task gets, within the batch's and the inputs' limits.
fn batch_inputs(state: &AppState, batch: Batch) -> Result<Vec<bytes::Bytes>, ApiError> {
    let limits = state.scheduler.limits();
    if batch.inputs.is_empty() {
        return Err(ApiError::bad_request("bad_batch", "inputs holds no input: send at least one"));
    }
    if batch.inputs.len() > limits.max_batch_tasks as usize {
        return Err(ApiError::bad_request(
            "too_many_inputs",
            format!(
                "{} inputs exceed limits.max_batch_tasks ({}); split the batch",
                batch.inputs.len(),
                limits.max_batch_tasks
            ),
        ));
    }
    let max_input = limits.max_input_bytes();
    batch
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let bytes = serde_json::to_vec(input)
                .map_err(|e| ApiError::bad_request("bad_batch", format!("inputs[{i}]: {e}")))?;
            if bytes.len() > max_input {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "input_too_large",
                    format!(
                        "inputs[{i}] is {} bytes, over limits.max_input_mb ({} MiB)",
                        bytes.len(),
                        limits.max_input_mb
                    ),
                ));
            }
            Ok(bytes::Bytes::from(bytes))
        })
        .collect()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShowQuery {
    /// Seconds to wait for the task to end before answering (at most limits.max_wait_secs).
    #[param(minimum = 0)]
    wait: Option<f64>,
}

/// A task: state, timings, output or error; `wait` long-polls until it ends.
#[utoipa::path(get, path = "/v1/tasks/{id}", operation_id = "show_task", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "Task id"), ShowQuery), responses(
    (status = 200, description = "The task", body = TaskView),
    (status = 404, description = "No such task (or not visible to this token)", body = ErrorBody),
    (status = "4XX", description = "Refused; the error names the reason", body = ErrorBody),
))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    TaskIdParam(id): TaskIdParam,
    Query(query): Query<ShowQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let task = find(&state, &caller, id)?;
    if let Some(wait) = query.wait {
        let max = state.scheduler.limits().max_wait_secs;
        if !(0.0..=max as f64).contains(&wait) {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("wait must be between 0 and {max} seconds (limits.max_wait_secs)"),
            ));
        }
        let _ = tokio::time::timeout(Duration::from_secs_f64(wait), task.finished()).await;
    }
    Ok(axum::Json(TaskView::of(&task)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this plugin's tasks.
    plugin: Option<String>,
    /// Only the runs of this schedule.
    schedule: Option<String>,
    /// Only tasks in this state.
    state: Option<TaskState>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskList {
    tasks: Vec<TaskView>,
}

/// Recent tasks: every task for `read` and `admin` tokens; a `trigger` token sees the tasks it submitted.
#[utoipa::path(get, path = "/v1/tasks", operation_id = "list_tasks", tag = "tasks", params(ListQuery), responses(
    (status = 200, description = "The tasks, newest first", body = TaskList),
    (status = "4XX", description = "Refused; the error names the reason", body = ErrorBody),
))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("bad_query", format!("limit must be between 1 and {MAX_LIST_LIMIT}")));
    }
    let wanted = |t: &Task| {
        query.plugin.as_deref().is_none_or(|p| t.plugin == p)
            && query.schedule.as_deref().is_none_or(|s| t.schedule.as_deref() == Some(s))
            && query.state.is_none_or(|s| t.state() == s)
            && caller.can_see_task_of(t.owner.as_deref())
    };
    let tasks = state.scheduler.list(wanted, limit);
    let views: Vec<TaskView> = tasks.iter().map(|t| TaskView::of(t)).collect();
    Ok(axum::Json(TaskList { tasks: views }))
}

/// Cancel a task; it stops at once, even in the middle of a request.
#[utoipa::path(delete, path = "/v1/tasks/{id}", operation_id = "cancel_task", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "Task id")), responses(
    (status = 200, description = "The task, cancelled (or ending)", body = TaskView),
    (status = 404, description = "No such task (or not visible to this token)", body = ErrorBody),
    (status = 409, description = "The task had already ended", body = ErrorBody),
    (status = "4XX", description = "Refused; the error names the reason", body = ErrorBody),
))]
pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    TaskIdParam(id): TaskIdParam,
) -> Result<impl IntoResponse, ApiError> {
    let task = find(&state, &caller, id)?;
    if !caller.can_cancel_task_of(task.owner.as_deref()) {
        return Err(Forbidden(
            "cancelling a task needs the admin scope, or the trigger token that submitted it".into(),
        )
        .into());
    }
    let task = state.scheduler.cancel(task.id)?;
    let _ = tokio::time::timeout(CANCEL_WAIT, task.finished()).await;
    Ok(axum::Json(TaskView::of(&task)))
}

/// Server-Sent Events: the kept history, then live events, ending after the final state.
/// A reconnecting client sends `Last-Event-ID` and resumes after it.
#[utoipa::path(get, path = "/v1/tasks/{id}/events", operation_id = "task_events", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "Task id"),
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this event")),
    responses(
        (status = 200, description = "The event stream (state, log, progress, custom)", content(
            (ref("#/components/schemas/TaskEvent") = "text/event-stream"))),
        (status = 404, description = "No such task (or not visible to this token)", body = ErrorBody),
        (status = "4XX", description = "Refused; the error names the reason", body = ErrorBody),
    ))]
pub async fn events(
    caller: Caller,
    State(state): State<AppState>,
    TaskIdParam(id): TaskIdParam,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let task = find(&state, &caller, id)?;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_header",
                    "Last-Event-ID must be the id of an event received before (a non-negative integer)",
                )
            })?,
    };
    Ok(Sse::new(event_stream(task.events.subscribe(after), after)).keep_alive(KeepAlive::default()))
}

fn event_stream(subscription: Subscription, after: u64) -> impl Stream<Item = Result<sse::Event, Infallible>> {
    struct Cursor {
        history: VecDeque<Arc<Event>>,
        live: tokio::sync::broadcast::Receiver<Arc<Event>>,
        last_seq: u64,
        done: bool,
    }
    let cursor = Cursor { history: subscription.history.into(), live: subscription.live, last_seq: after, done: false };
    futures::stream::unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        let event = loop {
            if let Some(event) = cursor.history.pop_front() {
                break event;
            }
            match cursor.live.recv().await {
                Ok(event) if event.seq <= cursor.last_seq => continue,
                Ok(event) => break event,
                Err(RecvError::Lagged(missed)) => {
                    let notice = sse::Event::default().event("lagged").data(format!("{{\"missed\":{missed}}}"));
                    return Some((Ok(notice), cursor));
                }
                Err(RecvError::Closed) => return None,
            }
        };
        cursor.last_seq = event.seq;
        cursor.done = event.kind.is_final();
        let data = serde_json::to_string(&*event).unwrap_or_default();
        let sse_event = sse::Event::default().id(event.seq.to_string()).event(event.kind.name()).data(data);
        Some((Ok(sse_event), cursor))
    })
}

/// The task, if this caller may see it: to a `trigger` token, other callers' tasks do not exist.
fn find(state: &AppState, caller: &Caller, id: TaskId) -> Result<Arc<Task>, ApiError> {
    state.scheduler.get(id).filter(|task| caller.can_see_task_of(task.owner.as_deref())).ok_or_else(|| {
        ApiError::not_found(format!("no task with id {id} (finished tasks are kept for a while, then forgotten)"))
    })
}

fn task_timeout(state: &AppState, query: &SubmitQuery) -> Result<Option<Duration>, ApiError> {
    let max = state.scheduler.limits().task_timeout_secs;
    match query.timeout {
        None => Ok(None),
        Some(secs) if (1..=max).contains(&secs) => Ok(Some(Duration::from_secs(secs))),
        Some(secs) => Err(ApiError::bad_request(
            "bad_query",
            format!("timeout={secs} is out of range: between 1 and {max} seconds (limits.task_timeout_secs)"),
        )),
    }
}

fn identify(response: &mut Response, task: &Task) {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&task.id.to_string()) {
        headers.insert("ignareo-task-id", id);
    }
    if let Ok(version) = HeaderValue::from_str(&task.version) {
        headers.insert("ignareo-plugin-version", version);
    }
}

/// The API error a synchronous run answers when its task did not succeed.
fn outcome_error(outcome: &Outcome) -> ApiError {
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

/// A task as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct TaskView {
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
    output: Option<serde_json::Value>,
    /// Output that is not JSON, base64-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    output_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorView>,
}

impl TaskView {
    fn of(task: &Task) -> Self {
        let Status { state, started_at, finished_at, outcome } = task.status();
        let (mut output, mut output_base64, mut error) = (None, None, None);
        match &outcome {
            Some(Outcome::Succeeded(bytes)) => match serde_json::from_slice(bytes) {
                Ok(value) => output = Some(value),
                Err(_) => output_base64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            },
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
            duration_ms: started_at
                .zip(finished_at)
                .map(|(s, f)| f.duration_since(s).map_or(0, |d| d.as_millis() as u64)),
            timeout_ms: task.timeout.as_millis() as u64,
            attempts: task.attempts(),
            output,
            output_base64,
            error,
        }
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

fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
