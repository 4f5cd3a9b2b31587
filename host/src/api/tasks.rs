//! Tasks: run synchronously, submit asynchronously (one; many at once in [`super::batch`]),
//! look up (with long-polling), list (a page at a time, see [`super::pages`]), cancel. Their
//! events stream from [`super::events`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ErrorBody, Refusals};
use super::extract::{Body, PluginName, Query, TaskIdParam};
use super::task_view::{TaskView, outcome_error};
use super::{ApiError, AppState, pages};
use crate::auth::{Caller, Forbidden};
use crate::store::StoreError;
use crate::task::{Outcome, Task, TaskId, TaskState};

/// How long `DELETE /v1/tasks/{id}` waits for the task to stop before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
const DEFAULT_LIST_LIMIT: usize = 100;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// Seconds this task may run, at most the plugin's limit; that limit if absent.
    #[param(minimum = 1)]
    pub(super) timeout: Option<u64>,
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
        (status = 503, description = "Cannot instantiate now, shutting down (Retry-After), or the plugin's live version could not be loaded at start (plugin_unavailable)", body = ErrorBody),
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
        (status = 503, description = "Shutting down, the task could not be recorded (Retry-After), or the plugin's live version could not be loaded at start (plugin_unavailable)", body = ErrorBody),
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
    // Not read from the store: a task that ended already almost surely holds its output still
    // (the finished tasks' budget lets go of the oldest first), and an accepted task's answer
    // must not fail on a read.
    let output = task.output();
    let view = axum::Json(TaskView::of(&task, output.as_deref()));
    let mut response = (StatusCode::ACCEPTED, [(header::LOCATION, location)], view).into_response();
    identify(&mut response, &task);
    Ok(response)
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
    (status = 503, description = "The task is not in memory and the store cannot be read now", body = ErrorBody),
    Refusals,
))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    TaskIdParam(id): TaskIdParam,
    Query(query): Query<ShowQuery>,
) -> Result<Response, ApiError> {
    let mut task = find(&state, &caller, id).await?;
    if let Some(wait) = query.wait {
        let max = state.scheduler.limits().max_wait_secs;
        if !(0.0..=max as f64).contains(&wait) {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("wait must be between 0 and {max} seconds (limits.max_wait_secs)"),
            ));
        }
        task = state.scheduler.wait(task, Duration::from_secs_f64(wait)).await;
    }
    view(&state, &task).await
}

/// The task's view, its output read from the store if it is no longer in memory.
async fn view(state: &AppState, task: &Task) -> Result<Response, ApiError> {
    match state.scheduler.output(task).await {
        Ok(output) => Ok(axum::Json(TaskView::of(task, output.as_deref())).into_response()),
        Err(StoreError::OutputLost(why)) => Ok(axum::Json(TaskView::output_lost(task, why)).into_response()),
        Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", format!("{e}; retry later"))
            .with_task(task.id)),
    }
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
    /// At most this many, newest first (default 100, at most `limits.max_list_page`).
    #[param(minimum = 1)]
    limit: Option<usize>,
    /// The page after the one whose `next` this is.
    #[param(pattern = "^[0-9]{1,19}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskList<'a> {
    tasks: Vec<TaskView<'a>>,
    /// The cursor of the next page (`after=`), or null on the last page.
    next: Option<String>,
}

/// Where a page of tasks starts: after the task that `next` named, in the order of the
/// listing (newest first: by submission time, then id).
fn cursor(after: &str) -> Result<(SystemTime, TaskId), ApiError> {
    let bad =
        || ApiError::bad_request("bad_query", format!("after={after:?} is not a cursor: pass the `next` of a page"));
    let (nanos, id) = after.split_once('_').ok_or_else(bad)?;
    let nanos: u128 = nanos.parse().map_err(|_| bad())?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| bad())?;
    let at = UNIX_EPOCH.checked_add(Duration::new(secs, subsec)).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// The cursor of the page after `task`.
fn cursor_after(task: &Task) -> String {
    let nanos = task.submitted_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos}_{}", task.id)
}

/// Recent tasks: every task for `read` and `admin` tokens; a `trigger` token sees the tasks it submitted.
#[utoipa::path(get, path = "/v1/tasks", operation_id = "list_tasks", tag = "tasks", params(ListQuery), responses(
    (status = 200, description = "The tasks, newest first, one page", body = TaskList),
    Refusals,
))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = pages::limit(query.limit, DEFAULT_LIST_LIMIT, state.scheduler.limits().max_list_page)?;
    let after = query.after.as_deref().map(cursor).transpose()?;
    let wanted = |t: &Task| {
        query.plugin.as_deref().is_none_or(|p| t.plugin == p)
            && query.schedule.as_deref().is_none_or(|s| t.schedule.as_deref() == Some(s))
            && query.state.is_none_or(|s| t.state() == s)
            && caller.can_see_task_of(t.owner.as_deref())
    };
    let mut tasks = state.scheduler.list(wanted, after, limit + 1);
    let next =
        (tasks.len() > limit).then(|| tasks.truncate(limit)).and_then(|()| tasks.last().map(|t| cursor_after(t)));
    let scheduler = state.scheduler.clone();
    Ok(pages::json_page("tasks", tasks, next.as_deref(), move |task| {
        let scheduler = scheduler.clone();
        async move {
            let json = match scheduler.output(&task).await {
                Err(StoreError::OutputLost(why)) => serde_json::to_vec(&TaskView::output_lost(&task, why))?,
                output => serde_json::to_vec(&TaskView::of(&task, output?.as_deref()))?,
            };
            Ok::<_, pages::RenderError>(json)
        }
    }))
}

/// Cancel a task; it stops at once, even in the middle of a request.
#[utoipa::path(delete, path = "/v1/tasks/{id}", operation_id = "cancel_task", tag = "tasks", params(TaskIdParam), responses(
    (status = 200, description = "The task, cancelled (or ending)", body = TaskView),
    (status = 404, description = "No such task (or not visible to this token)", body = ErrorBody),
    (status = 409, description = "The task had already ended", body = ErrorBody),
    (status = 503, description = "The task is not in memory and the store cannot be read or written now", body = ErrorBody),
    Refusals,
))]
pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    TaskIdParam(id): TaskIdParam,
) -> Result<Response, ApiError> {
    let task = find(&state, &caller, id).await?;
    if !caller.can_cancel_task_of(task.owner.as_deref()) {
        return Err(Forbidden(
            "cancelling a task needs the admin scope, or the trigger token that submitted it".into(),
        )
        .into());
    }
    let task = state.scheduler.cancel(task.id).await?;
    let _ = tokio::time::timeout(CANCEL_WAIT, task.finished()).await;
    view(&state, &task).await
}

/// The task, from memory or from the store, if this caller may see it: to a `trigger` token,
/// other callers' tasks do not exist.
pub(super) async fn find(state: &AppState, caller: &Caller, id: TaskId) -> Result<Arc<Task>, ApiError> {
    let found = state.scheduler.find(id).await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", format!("{e}; retry later")).with_task(id)
    })?;
    found.filter(|task| caller.can_see_task_of(task.owner.as_deref())).ok_or_else(|| {
        ApiError::not_found(format!(
            "no task with id {id} (finished tasks are found as long as the store keeps them: \
             store.retain_finished_secs, at most limits.retain_finished_tasks of them)"
        ))
    })
}

pub(super) fn task_timeout(state: &AppState, query: &SubmitQuery) -> Result<Option<Duration>, ApiError> {
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

pub(super) fn identify(response: &mut Response, task: &Task) {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&task.id.to_string()) {
        headers.insert("ignareo-task-id", id);
    }
    if let Ok(version) = HeaderValue::from_str(&task.version) {
        headers.insert("ignareo-plugin-version", version);
    }
}
