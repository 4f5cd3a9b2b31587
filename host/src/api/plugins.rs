//! `/v1/plugins`: upload (hot swap), list, show, delete, roll back.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::extract::{Admin, Body, PluginName, Reader, Upload};
use super::{ApiError, AppState};

pub async fn upload(_: Admin, State(state): State<AppState>, PluginName(name): PluginName, upload: Upload) -> Result<impl IntoResponse, ApiError> {
    let existed = state.registry.get(&name).is_some();
    let report = state.registry.upload(&name, &upload.component, upload.manifest.as_deref()).await?;
    tracing::info!(plugin = %name, version = %report.version, compile_ms = report.compile_ms, cached = report.cached, "plugin version live");
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, axum::Json(report)))
}

pub async fn list(_: Reader, State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({ "plugins": state.registry.list() }))
}

pub async fn show(_: Reader, State(state): State<AppState>, PluginName(name): PluginName) -> Result<impl IntoResponse, ApiError> {
    state
        .registry
        .get(&name)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("no plugin named {name:?}")))
}

pub async fn delete(_: Admin, State(state): State<AppState>, PluginName(name): PluginName) -> Result<StatusCode, ApiError> {
    state.registry.delete(&name)?;
    tracing::info!(plugin = %name, "plugin deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to make live; the one before the live version if absent.
    version: Option<String>,
}

pub async fn rollback(
    _: Admin,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    Body(body): Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("bad_json", format!("invalid rollback body ({e}); send {{\"version\": \"<sha256>\"}} or nothing"))
        })?
    };
    let view = state.registry.rollback(&name, request.version.as_deref()).await?;
    tracing::info!(plugin = %name, version = %view.live, "plugin rolled back");
    Ok(axum::Json(view))
}
