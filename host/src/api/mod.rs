//! The HTTP API under `/v1`, plus `/healthz`. Handlers translate HTTP to calls on the
//! registry, the scheduler and the schedules and back; every refusal is an [`ApiError`].

mod batch;
mod body_limit;
mod error;
mod events;
mod extract;
mod http_plugins;
mod openapi;
mod pages;
mod plugins;
mod schedules;
mod task_view;
mod tasks;
mod tokens;
mod unread;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use body_limit::BodyLimit;
pub use error::ApiError;
pub use openapi::document as openapi_document;

use crate::auth::Auth;
use crate::config::Config;
use crate::registry::Registry;
use crate::scheduler::Scheduler;
use crate::schedules::Schedules;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub scheduler: Arc<Scheduler>,
    pub schedules: Arc<Schedules>,
    pub auth: Arc<Auth>,
    /// The configuration the host runs with, shown to admins (the admin token left out).
    pub config: Arc<Config>,
    /// The `OpenAPI` document, built once for this configuration.
    pub openapi: bytes::Bytes,
}

pub fn router(state: AppState) -> Router {
    let limits = state.scheduler.limits();
    let upload = BodyLimit::new(limits.max_component_bytes(), "limits.max_component_mb");
    let input = BodyLimit::new(limits.max_input_bytes(), "limits.max_input_mb");
    let batch_body = BodyLimit::new(limits.max_batch_bytes(), "limits.max_batch_mb");
    let control = BodyLimit::new(state.config.http.max_control_body_bytes(), "http.max_control_body_kb");
    Router::new()
        .route("/healthz", get(health))
        .route("/v1/openapi.json", get(openapi::openapi_json))
        .route("/v1/plugins", get(plugins::list))
        .route("/v1/plugins/{name}", upload.on(put(plugins::upload)).get(plugins::show).delete(plugins::delete))
        .route("/v1/plugins/{name}/rollback", control.on(post(plugins::rollback)))
        .route("/v1/plugins/{name}/run", input.on(post(tasks::run)))
        .route("/v1/plugins/{name}/tasks", input.on(post(tasks::submit)))
        .route("/v1/plugins/{name}/http", input.on(http_plugins::route()))
        .route("/v1/plugins/{name}/http/", input.on(http_plugins::route()))
        .route("/v1/plugins/{name}/http/{*path}", input.on(http_plugins::route()))
        .route("/v1/plugins/{name}/tasks:batch", batch_body.on(post(batch::submit_batch)))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::show).delete(tasks::cancel))
        .route("/v1/tasks/{id}/events", get(events::events))
        .route("/v1/schedules", get(schedules::list))
        .route("/v1/schedules/{name}", input.on(put(schedules::put)).get(schedules::show).delete(schedules::delete))
        .route("/v1/schedules/{name}/pause", control.on(post(schedules::pause)))
        .route("/v1/schedules/{name}/resume", control.on(post(schedules::resume)))
        .route("/v1/tokens", control.on(post(tokens::create)).get(tokens::list))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/config", get(show_config))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.config.http.refused_body_linger(),
            unread::close_if_body_unread,
        ))
        .with_state(state)
}

/// Liveness, load and counters.
#[utoipa::path(get, path = "/healthz", operation_id = "health", tag = "host", security(()), responses(
    (status = 200, description = "The host is up: load, plugins (and those not served, with why), compilations since start", body = serde_json::Value),
))]
async fn health(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "status": "ok",
        "load": state.scheduler.load(),
        "plugins": state.registry.list().len(),
        "unavailable_plugins": state.registry.unavailable(),
        "compilations": state.registry.compilations(),
    }))
}

/// The configuration in effect (admin only; the admin token left out).
#[utoipa::path(get, path = "/v1/config", operation_id = "show_config", tag = "host", responses(
    (status = 200, description = "Every setting, defaults included", body = serde_json::Value),
    error::Refusals,
))]
async fn show_config(_: extract::Admin, State(state): State<AppState>) -> axum::Json<Config> {
    axum::Json(Config::clone(&state.config))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}; the API lives under /v1", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
