//! `/v1/schedules`: define, list, show, pause, resume and delete schedules.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::error::{ErrorBody, Refusals};
use super::extract::{Body, Query, ScheduleName};
use super::{ApiError, AppState, pages};
use crate::auth::Caller;
use crate::schedules::{Definition, MAX_INTERVAL, Snapshot, Timing};
use crate::task::{NAME_RULE, epoch_ms, is_valid_name};

/// A schedule's definition: what it runs, and when (`cron` or `interval_secs`, not both).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The plugin each run is a task of.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", max_length = 64)]
    plugin: String,
    /// The input of every run, given to the plugin as JSON; none if absent.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object)]
    input: Option<serde_json::Value>,
    /// A cron expression in UTC: five fields (minute hour day-of-month month day-of-week), or
    /// six with seconds first, e.g. `*/10 * * * * *` for every 10 seconds.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String)]
    cron: Option<String>,
    /// Seconds between runs, counted from when the schedule is defined or resumed.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = u64, minimum = 1, maximum = 31_622_400)]
    interval_secs: Option<u64>,
    /// Seconds each run may take, at most the plugin's limit; that limit if absent.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = u64, minimum = 1)]
    timeout_secs: Option<u64>,
    /// Whether a run may start while the previous one is queued or running (default: no, it
    /// is skipped).
    #[serde(default)]
    overlap: bool,
    /// Defined paused: it runs only once resumed.
    #[serde(default)]
    paused: bool,
}

/// A field that is either absent (`None`, by its default) or a value: `null` is the value
/// itself where JSON allows it (an input), and refused where it does not.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A schedule as the API shows it; its input is passed through as it was defined, not parsed
/// into a tree.
#[derive(Serialize, ToSchema)]
pub struct ScheduleView<'a> {
    name: &'a str,
    plugin: &'a str,
    /// The input of every run.
    #[schema(value_type = Option<serde_json::Value>)]
    input: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cron: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval_secs: Option<u64>,
    timeout_secs: Option<u64>,
    overlap: bool,
    paused: bool,
    created_at_ms: u64,
    /// When it was last defined or resumed.
    updated_at_ms: u64,
    /// When it runs next; absent while paused.
    next_run_at_ms: Option<u64>,
    /// When it last started (or skipped) a run.
    last_run_at_ms: Option<u64>,
    /// The task of its last run; its runs are listed by `GET /v1/tasks?schedule={name}`.
    #[schema(value_type = Option<String>, format = Uuid)]
    last_task: Option<crate::task::TaskId>,
    /// Runs started.
    runs: u64,
    /// Runs skipped because the previous one had not ended.
    skipped: u64,
    /// Why its last run could not start, if it could not.
    last_error: Option<&'a str>,
}

impl<'a> ScheduleView<'a> {
    fn of(snapshot: &'a Snapshot) -> Self {
        let Snapshot { record, next_run_at, last_error } = snapshot;
        Self {
            input: serde_json::from_slice(&record.input).ok(),
            cron: record.cron.as_deref(),
            interval_secs: record.interval.map(|i| i.as_secs()),
            timeout_secs: record.timeout.map(|t| t.as_secs()),
            overlap: record.overlap,
            paused: record.paused,
            created_at_ms: epoch_ms(record.created_at),
            updated_at_ms: epoch_ms(record.since),
            next_run_at_ms: next_run_at.map(epoch_ms),
            last_run_at_ms: record.last_run_at.map(epoch_ms),
            last_task: record.last_task,
            runs: record.runs,
            skipped: record.skipped,
            last_error: last_error.as_deref(),
            name: &record.name,
            plugin: &record.plugin,
        }
    }

    fn json(snapshot: &Snapshot) -> axum::Json<ScheduleView<'_>> {
        axum::Json(ScheduleView::of(snapshot))
    }
}

#[derive(Serialize, ToSchema)]
pub struct ScheduleList<'a> {
    schedules: Vec<ScheduleView<'a>>,
    /// The cursor of the next page (`after=`), or null on the last page.
    next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many, by name (default and maximum `limits.max_list_page`).
    #[param(minimum = 1)]
    limit: Option<usize>,
    /// The page after the one whose `next` this is (a schedule's name).
    after: Option<String>,
}

/// Define a schedule (or define it anew): its runs are tasks of its plugin.
#[utoipa::path(put, path = "/v1/schedules/{name}", operation_id = "put_schedule", tag = "schedules",
    params(ScheduleName),
    request_body = ScheduleRequest,
    responses(
        (status = 200, description = "Defined anew (its counts kept)", body = ScheduleView),
        (status = 201, description = "Created; Location names it", body = ScheduleView,
            headers(("location" = String, description = "/v1/schedules/{name}"))),
        (status = 400, description = "Invalid definition: the message names the field", body = ErrorBody),
        (status = 409, description = "limits.max_schedules reached", body = ErrorBody),
        (status = 413, description = "The input is over limits.max_input_mb", body = ErrorBody),
        (status = 422, description = "No such plugin", body = ErrorBody),
        (status = 503, description = "The schedule could not be recorded (Retry-After)", body = ErrorBody),
        Refusals,
    ))]
pub async fn put(
    caller: Caller,
    State(state): State<AppState>,
    ScheduleName(name): ScheduleName,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: ScheduleRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("invalid schedule ({e}); send {{\"plugin\": \"hello\", \"input\": {{...}}, \"cron\": \"0 * * * *\"}} or {{\"plugin\": \"hello\", \"interval_secs\": 60}}"),
        )
    })?;
    caller.require_trigger(&request.plugin)?;
    let definition = definition(&state, request)?;
    let (snapshot, created) = state
        .schedules
        .put(&name, definition, caller.token_id.clone(), |owner| caller.can_change_schedule_of(owner))
        .await?;
    tracing::info!(schedule = %name, plugin = %snapshot.record.plugin, created, "schedule defined");
    let view = ScheduleView::json(&snapshot);
    Ok(if created {
        (StatusCode::CREATED, [(header::LOCATION, format!("/v1/schedules/{name}"))], view).into_response()
    } else {
        (StatusCode::OK, view).into_response()
    })
}

/// Checks a requested definition against the plugin and the limits.
fn definition(state: &AppState, request: ScheduleRequest) -> Result<Definition, ApiError> {
    if !is_valid_name(&request.plugin) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("invalid plugin name {:?}: use {NAME_RULE}", request.plugin),
        ));
    }
    let Some(live) = state.registry.live(&request.plugin) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_such_plugin",
            format!(
                "no plugin named {:?}: upload it with PUT /v1/plugins/{} before scheduling it",
                request.plugin, request.plugin
            ),
        ));
    };
    let timing = match (request.cron.as_deref(), request.interval_secs) {
        (Some(expression), None) => Timing::cron(expression),
        (None, Some(secs)) => Timing::every(Duration::from_secs(secs)),
        _ => Err(format!(
            "give either \"cron\" (e.g. \"*/30 * * * * *\") or \"interval_secs\" (1 to {}), not both",
            MAX_INTERVAL.as_secs()
        )),
    }
    .map_err(|e| ApiError::bad_request("bad_schedule", e))?;
    let limit = live.limits.timeout.as_secs();
    let timeout = match request.timeout_secs {
        Some(0) => return Err(ApiError::bad_request("bad_schedule", "timeout_secs must be at least 1")),
        Some(secs) if secs > limit => {
            return Err(ApiError::bad_request(
                "bad_schedule",
                format!(
                    "timeout_secs={secs} exceeds plugin {:?}'s limit of {limit} s (its manifest's timeout)",
                    request.plugin
                ),
            ));
        }
        secs => secs.map(Duration::from_secs),
    };
    let input = match &request.input {
        None => bytes::Bytes::new(),
        Some(value) => bytes::Bytes::from(
            serde_json::to_vec(value).map_err(|e| ApiError::bad_request("bad_schedule", format!("input: {e}")))?,
        ),
    };
    let limits = state.scheduler.limits();
    if input.len() > limits.max_input_bytes() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "input_too_large",
            format!("the input is {} bytes, over limits.max_input_mb ({} MiB)", input.len(), limits.max_input_mb),
        ));
    }
    Ok(Definition { plugin: request.plugin, input, timing, timeout, overlap: request.overlap, paused: request.paused })
}

/// The schedules: all of them for `read` and `admin` tokens; a `trigger` token sees those it defined.
#[utoipa::path(get, path = "/v1/schedules", operation_id = "list_schedules", tag = "schedules", params(ListQuery), responses(
    (status = 200, description = "The schedules, by name, one page", body = ScheduleList),
    Refusals,
))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let max = state.scheduler.limits().max_list_page;
    let limit = pages::limit(query.limit, max as usize, max)?;
    let mut schedules: Vec<Snapshot> = state
        .schedules
        .list()
        .into_iter()
        .filter(|s| query.after.as_deref().is_none_or(|after| s.record.name.as_str() > after))
        .filter(|s| caller.can_see_task_of(s.record.owner.as_deref()))
        .take(limit + 1)
        .collect();
    let next = (schedules.len() > limit)
        .then(|| schedules.truncate(limit))
        .and_then(|()| schedules.last().map(|s| s.record.name.clone()));
    Ok(pages::json_page("schedules", schedules, next.as_deref(), |snapshot| async move {
        Ok::<_, pages::RenderError>(serde_json::to_vec(&ScheduleView::of(&snapshot))?)
    }))
}

/// A schedule: its definition, next and last run, counts.
#[utoipa::path(get, path = "/v1/schedules/{name}", operation_id = "show_schedule", tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "No such schedule (or not visible to this token)", body = ErrorBody),
        Refusals,
    ))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    ScheduleName(name): ScheduleName,
) -> Result<Response, ApiError> {
    let snapshot = find(&state, &caller, &name)?;
    Ok(ScheduleView::json(&snapshot).into_response())
}

/// Delete a schedule; a run already started goes on as an ordinary task.
#[utoipa::path(delete, path = "/v1/schedules/{name}", operation_id = "delete_schedule", tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule (or not visible to this token)", body = ErrorBody),
        (status = 503, description = "The deletion could not be recorded (Retry-After)", body = ErrorBody),
        Refusals,
    ))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    ScheduleName(name): ScheduleName,
) -> Result<StatusCode, ApiError> {
    find(&state, &caller, &name)?;
    state.schedules.delete(&name, |owner| caller.can_change_schedule_of(owner)).await?;
    tracing::info!(schedule = %name, "schedule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a schedule: it starts no run until resumed.
#[utoipa::path(post, path = "/v1/schedules/{name}/pause", operation_id = "pause_schedule", tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 200, description = "The schedule, paused", body = ScheduleView),
        (status = 404, description = "No such schedule (or not visible to this token)", body = ErrorBody),
        (status = 503, description = "The change could not be recorded (Retry-After)", body = ErrorBody),
        Refusals,
    ))]
pub async fn pause(
    caller: Caller,
    State(state): State<AppState>,
    ScheduleName(name): ScheduleName,
) -> Result<Response, ApiError> {
    set_paused(&state, &caller, &name, true).await
}

/// Resume a paused schedule: it runs at its next time after now (runs missed while paused are not made up).
#[utoipa::path(post, path = "/v1/schedules/{name}/resume", operation_id = "resume_schedule", tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 200, description = "The schedule, running again", body = ScheduleView),
        (status = 404, description = "No such schedule (or not visible to this token)", body = ErrorBody),
        (status = 503, description = "The change could not be recorded (Retry-After)", body = ErrorBody),
        Refusals,
    ))]
pub async fn resume(
    caller: Caller,
    State(state): State<AppState>,
    ScheduleName(name): ScheduleName,
) -> Result<Response, ApiError> {
    set_paused(&state, &caller, &name, false).await
}

async fn set_paused(state: &AppState, caller: &Caller, name: &str, paused: bool) -> Result<Response, ApiError> {
    find(state, caller, name)?;
    let snapshot = state.schedules.set_paused(name, paused, |owner| caller.can_change_schedule_of(owner)).await?;
    tracing::info!(schedule = %name, paused, "schedule {}", if paused { "paused" } else { "resumed" });
    Ok(ScheduleView::json(&snapshot).into_response())
}

/// The schedule, if this caller may see it.
fn find(state: &AppState, caller: &Caller, name: &str) -> Result<Snapshot, ApiError> {
    state
        .schedules
        .get(name)
        .filter(|s| caller.can_see_task_of(s.record.owner.as_deref()))
        .ok_or_else(|| ApiError::not_found(format!("no schedule named {name:?}")))
}
