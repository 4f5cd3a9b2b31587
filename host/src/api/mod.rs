//! The HTTP API under `/v1`, plus `/healthz`. Handlers translate HTTP to calls on the
//! registry and the scheduler and back; every refusal is an [`ApiError`].

mod error;
mod extract;
mod plugins;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

pub use error::ApiError;

use crate::auth::AdminToken;
use crate::registry::Registry;
use crate::scheduler::Scheduler;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub scheduler: Arc<Scheduler>,
    pub admin: Arc<AdminToken>,
}

pub fn router(state: AppState) -> Router {
    let limits = state.scheduler.limits();
    let upload_limit = DefaultBodyLimit::max(limits.max_component_bytes());
    let input_limit = DefaultBodyLimit::max(limits.max_input_bytes());
    Router::new()
        .route("/healthz", get(health))
        .route("/v1/plugins", get(plugins::list))
        .route(
            "/v1/plugins/{name}",
            put(plugins::upload).layer(upload_limit).get(plugins::show).delete(plugins::delete),
        )
        .route("/v1/plugins/{name}/rollback", post(plugins::rollback))
        .route("/v1/plugins/{name}/run", post(tasks::run).layer(input_limit))
        .route("/v1/plugins/{name}/tasks", post(tasks::submit).layer(input_limit))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::show).delete(tasks::cancel))
        .route("/v1/tasks/{id}/events", get(tasks::events))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "status": "ok",
        "load": state.scheduler.load(),
        "plugins": state.registry.list().len(),
        "compilations": state.registry.compilations(),
    }))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}; the API lives under /v1", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed on {}", uri.path()))
}
