//! `GET /v1/tasks/{id}/events`: a task's events as Server-Sent Events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::error::{ErrorBody, Refusals};
use super::extract::TaskIdParam;
use super::tasks::find;
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::task::events::{Event, Subscription};

/// Server-Sent Events: the kept history, then live events, ending after the final state.
/// A reconnecting client sends `Last-Event-ID` and resumes after it.
#[utoipa::path(get, path = "/v1/tasks/{id}/events", operation_id = "task_events", tag = "tasks", params(TaskIdParam,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this event")),
    responses(
        (status = 200, description = "The event stream (state, log, progress, custom)", content(
            (ref("#/components/schemas/TaskEvent") = "text/event-stream"))),
        (status = 404, description = "No such task (or not visible to this token)", body = ErrorBody),
        (status = 503, description = "The task is not in memory and the store cannot be read now", body = ErrorBody),
        Refusals,
    ))]
pub async fn events(
    caller: Caller,
    State(state): State<AppState>,
    TaskIdParam(id): TaskIdParam,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let task = find(&state, &caller, id).await?;
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
    let cursor = Cursor {
        history: subscription.history.into(),
        live: subscription.live,
        last_seq: after,
        done: subscription.seen_the_end,
    };
    futures::stream::unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        let event = loop {
            if let Some(event) = cursor.history.pop_front() {
                break event;
            }
            match cursor.live.recv().await {
                // Seen before; if it is the end, nothing more comes.
                Ok(event) if event.seq <= cursor.last_seq => {
                    if event.kind.is_final() {
                        return None;
                    }
                }
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
