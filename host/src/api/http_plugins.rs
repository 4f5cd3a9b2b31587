//! Requests for HTTP plugins (components of the `wasi:http/proxy` world): any method on
//! `/v1/plugins/{name}/http/{path…}`, with a token that may trigger the plugin.
//!
//! The plugin sees the path that follows `/http` (`/` if none) with the query, the caller's
//! headers except `Authorization` (the host's token is not the plugin's to read), and the body
//! as it streams in, within `limits.max_input_mb`. Each request is a task of the plugin that
//! is not recorded: it waits for a running slot like one, is limited, listed and cancelled
//! like one, and its id is in the `ignareo-task-id` header of the answer. The answer streams
//! back as the plugin writes it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use wasmtime_wasi_http::Error as WasiError;

use super::error::{ErrorBody, Refusals};
use super::extract::PluginName;
use super::task_view::outcome_error;
use super::tasks::identify;
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::runtime::Exchange;
use crate::task::{Outcome, Task};

/// The methods an HTTP plugin is sent (the document's; any other is answered 405).
pub fn route() -> MethodRouter<AppState> {
    let methods = [
        MethodFilter::GET,
        MethodFilter::POST,
        MethodFilter::PUT,
        MethodFilter::DELETE,
        MethodFilter::PATCH,
        MethodFilter::HEAD,
        MethodFilter::OPTIONS,
        MethodFilter::TRACE,
    ];
    on(methods.into_iter().fold(MethodFilter::GET, MethodFilter::or), serve)
}

/// Send a request to an HTTP plugin.
#[utoipa::path(method(get, post, put, delete, patch, head, options, trace), path = "/v1/plugins/{name}/http/{path}", operation_id = "serve_http", tag = "tasks",
    params(PluginName, ("path" = String, Path, description = "The path the plugin sees")),
    request_body(content = Option<String>, content_type = "application/octet-stream", description = "Handed to the plugin as it streams in"),
    responses(
        (status = 200, description = "The plugin's answer: its headers and body; `ignareo-task-id` names the request's task"),
        (status = "default", description = "The plugin's answer with another status, as it gave it"),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 409, description = "The plugin is a task plugin (wrong_kind), or the request was cancelled", body = ErrorBody),
        (status = 429, description = "The queue is full (Retry-After)", body = ErrorBody),
        (status = 500, description = "The host failed while handing the request on", body = ErrorBody),
        (status = 502, description = "The plugin failed before it answered, or answered with an error", body = ErrorBody),
        (status = 503, description = "Cannot instantiate now, shutting down, or the plugin's live version could not be loaded at start (plugin_unavailable)", body = ErrorBody),
        (status = 504, description = "The plugin did not answer within its timeout", body = ErrorBody),
        Refusals,
    ))]
pub async fn serve(
    caller: Caller,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require_trigger(&name)?;
    let max_body = state.scheduler.limits().max_input_bytes();
    let (exchange, answer) = Exchange::new(for_the_plugin(&name, request, max_body)?);
    let task = state.scheduler.serve(&name, exchange, caller.token_id)?;
    match answer.await {
        Ok(Ok(response)) => {
            let mut response = response.map(Body::new);
            identify(&mut response, &task);
            Ok(response)
        }
        Ok(Err(code)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "plugin_error",
            format!("plugin {name:?} answered with an error instead of a response: {code:?}"),
        )
        .with_task(task.id)),
        // The handler ended, or never started, without answering: its task says why.
        Err(_) => Err(unanswered(&task).await),
    }
}

/// The request as the plugin's handler takes it.
fn for_the_plugin(
    name: &str,
    request: Request,
    max_body: usize,
) -> Result<http::Request<wasmtime_wasi_http::p2::body::HyperIncomingBody>, ApiError> {
    let (mut parts, body) = request.into_parts();
    let prefix = format!("/v1/plugins/{name}/http");
    let rest = parts.uri.path().strip_prefix(prefix.as_str()).unwrap_or_default();
    let path = if rest.is_empty() { "/" } else { rest };
    let authority = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    parts.uri = Uri::try_from(format!("http://{authority}{path}{query}"))
        .map_err(|e| ApiError::bad_request("bad_request", format!("the request's URI cannot be handed on: {e}")))?;
    parts.headers.remove(header::AUTHORIZATION);
    let body = Limited::new(body, max_body)
        .map_err(move |e| {
            if e.is::<LengthLimitError>() {
                WasiError::HttpRequestBodySize(Some(max_body as u64))
            } else {
                WasiError::InternalError(Some(format!("the request's body broke off: {e}")))
            }
        })
        .boxed_unsync();
    Ok(http::Request::from_parts(parts, body))
}

async fn unanswered(task: &Task) -> ApiError {
    let status = task.finished().await;
    match status.outcome {
        Some(Outcome::Succeeded(_)) | None => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "plugin_error",
            format!("plugin {:?}'s handler returned without setting a response", task.plugin),
        ),
        Some(outcome) => outcome_error(&outcome),
    }
    .with_task(task.id)
}
