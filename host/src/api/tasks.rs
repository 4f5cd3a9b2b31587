//! Tasks: run synchronously, submit asynchronously (one or a batch), look up (with
//! long-polling), list, cancel. Their events stream from [`super::events`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ErrorBody, Refusals};
use super::extract::{Body, PluginName, Query, TaskIdParam};
use super::task_view::{TaskView, outcome_error};
use super::{ApiError, AppState};
use crate::auth::{Caller, Forbidden};
use crate::task::{Outcome, Task, TaskId, TaskState};

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
#[utoipa::path(post, path = "/v1/plugins/{name}/run", operation_id = "run_task", tag = "tasks", params(PluginName, SubmitQuery), request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "The task's input: JSON for plugins that parse it, or any bytes; may be empty"),
    responses(
        (status = 200, description = "The task's output: JSON, or bytes", content(
            (serde_json::Value = "application/json"), (String = "application/octet-stream"))),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 409, description = "Cancelled while running", body = ErrorBody),
        (status = 422, description = "The plugin refused its input or returned an error", body = ErrorBody),
        (status = 429, description = "The queue is full (Retry-After)", body = ErrorBody),
        (status = 500, description = "The host failed while running the task (a host call panicked)", body = ErrorBody),
        (status = 502, description = "The plugin trapped or hit a limit", body = ErrorBody),
        (status = 503, description = "Cannot instantiate now, or shutting down (Retry-After)", body = ErrorBody),
        (status = 504, description = "The task ran past its deadline", body = ErrorBody),
        Refusals,
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
#[utoipa::path(post, path = "/v1/plugins/{name}/tasks", operation_id = "submit_task", tag = "tasks", params(PluginName, SubmitQuery), request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "The task's input: JSON for plugins that parse it, or any bytes; may be empty"),
    responses(
        (status = 202, description = "Accepted; Location names the task", body = TaskView,
            headers(("location" = String, description = "/v1/tasks/{id}"))),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 429, description = "The queue is full (Retry-After)", body = ErrorBody),
        (status = 503, description = "Shutting down, or the task could not be recorded (Retry-After)", body = ErrorBody),
        Refusals,
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
#[utoipa::path(post, path = "/v1/plugins/{name}/tasks:batch", operation_id = "submit_batch", tag = "tasks", params(PluginName, SubmitQuery), request_body = Batch,
    responses(
        (status = 202, description = "Accepted: every task is recorded and waits for a running slot", body = BatchAccepted),
        (status = 400, description = "Not a batch, an empty one, or more inputs than limits.max_batch_tasks", body = ErrorBody),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 413, description = "An input over limits.max_input_mb, or a body over limits.max_batch_mb", body = ErrorBody),
        (status = 429, description = "No room in the queue for the whole batch (Retry-After)", body = ErrorBody),
        (status = 503, description = "Shutting down, or the tasks could not be recorded (Retry-After)", body = ErrorBody),
        Refusals,
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
    let inputs = batch_inputs(&state, &batch)?;
    let tasks = state.scheduler.accept_many(&name, inputs, timeout, caller.token_id).await?;
    let version = tasks.first().map(|t| t.version.to_string()).unwrap_or_default();
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
    Ok((StatusCode::ACCEPTED, axum::Json(BatchAccepted { plugin: name, version, count: ids.len(), ids }))
        .into_response())
}

/// Each input as the bytes its task gets, within the batch's and the inputs' limits.
fn batch_inputs(state: &AppState, batch: &Batch) -> Result<Vec<bytes::Bytes>, ApiError> {
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
    /// Seconds to wait for the task to end before answering (at most `limits.max_wait_secs`).
    #[param(minimum = 0)]
    wait: Option<f64>,
}

/// A task: state, timings, output or error; `wait` long-polls until it ends.
#[utoipa::path(get, path = "/v1/tasks/{id}", operation_id = "show_task", tag = "tasks", params(TaskIdParam, ShowQuery), responses(
    (status = 200, description = "The task", body = TaskView),
    (status = 404, description = "No such task (or not visible to this token)", body = ErrorBody),
    Refusals,
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
    Refusals,
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
#[utoipa::path(delete, path = "/v1/tasks/{id}", operation_id = "cancel_task", tag = "tasks", params(TaskIdParam), responses(
    (status = 200, description = "The task, cancelled (or ending)", body = TaskView),
    (status = 404, description = "No such task (or not visible to this token)", body = ErrorBody),
    (status = 409, description = "The task had already ended", body = ErrorBody),
    Refusals,
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

/// The task, if this caller may see it: to a `trigger` token, other callers' tasks do not exist.
pub(super) fn find(state: &AppState, caller: &Caller, id: TaskId) -> Result<Arc<Task>, ApiError> {
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
