//! `/v1/plugins`: upload (hot swap), list, show, delete, roll back.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ErrorBody, Refusals};
use super::extract::{Admin, Body, PluginName, Reader, Upload};
use super::{ApiError, AppState};
use crate::registry::{PluginView, UploadReport};

/// Upload a version (hot swap): live at once when it validates.
#[utoipa::path(put, path = "/v1/plugins/{name}", operation_id = "upload_plugin", tag = "plugins", params(PluginName),
    request_body(description = "The component as the body, or a form with `component` and an optional `manifest` (ignareo.toml)",
        content((ref("#/components/schemas/UploadForm") = "multipart/form-data"), (ref("#/components/schemas/ComponentBytes") = "application/wasm"))),
    responses(
        (status = 200, description = "A new version of an existing plugin is live", body = UploadReport),
        (status = 201, description = "A new plugin is live", body = UploadReport),
        (status = 400, description = "Empty, not WebAssembly, invalid manifest or form, invalid name", body = ErrorBody),
        (status = 413, description = "Larger than limits.max_component_mb", body = ErrorBody),
        (status = 422, description = "A core module, the wrong world, does not compile or instantiate", body = ErrorBody),
        Refusals,
    ))]
pub async fn upload(
    _: Admin,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    upload: Upload,
) -> Result<impl IntoResponse, ApiError> {
    let existed = state.registry.get(&name).is_some();
    let report = state.registry.upload(&name, &upload.component, upload.manifest.as_deref()).await?;
    tracing::info!(plugin = %name, version = %report.version, compile_ms = report.compile_ms, cached = report.cached, "plugin version live");
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, axum::Json(report)))
}

/// Every plugin, its versions and which one is live.
#[utoipa::path(get, path = "/v1/plugins", operation_id = "list_plugins", tag = "plugins", responses(
    (status = 200, description = "The plugins", body = PluginList),
    Refusals,
))]
pub async fn list(_: Reader, State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(PluginList { plugins: state.registry.list() })
}

/// One plugin: versions, the live one, its manifest (proxy passwords hidden).
#[utoipa::path(get, path = "/v1/plugins/{name}", operation_id = "show_plugin", tag = "plugins", params(PluginName), responses(
    (status = 200, description = "The plugin", body = PluginView),
    (status = 404, description = "No such plugin", body = ErrorBody),
    Refusals,
))]
pub async fn show(
    _: Reader,
    State(state): State<AppState>,
    PluginName(name): PluginName,
) -> Result<impl IntoResponse, ApiError> {
    state.registry.get(&name).map(axum::Json).ok_or_else(|| ApiError::not_found(format!("no plugin named {name:?}")))
}

/// Remove a plugin; running tasks finish on their version.
#[utoipa::path(delete, path = "/v1/plugins/{name}", operation_id = "delete_plugin", tag = "plugins", params(PluginName), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such plugin", body = ErrorBody),
    Refusals,
))]
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    PluginName(name): PluginName,
) -> Result<StatusCode, ApiError> {
    state.registry.delete(&name).await?;
    tracing::info!(plugin = %name, "plugin deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to make live; the one before the live version if absent.
    version: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PluginList {
    plugins: Vec<PluginView>,
}

/// Make an earlier version live: the one before the live one, or the one named.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", operation_id = "roll_back_plugin", tag = "plugins", params(PluginName),
    request_body(content = Option<RollbackRequest>, content_type = "application/json", description = "Nothing, or the version to make live"),
    responses(
        (status = 200, description = "The plugin, with the version now live", body = PluginView),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 409, description = "No earlier version to roll back to", body = ErrorBody),
        Refusals,
    ))]
pub async fn rollback(
    _: Admin,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    Body(body): Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice::<Option<RollbackRequest>>(&body)
            .map_err(|e| {
                ApiError::bad_request(
                    "bad_json",
                    format!("invalid rollback body ({e}); send {{\"version\": \"<sha256>\"}} or nothing"),
                )
            })?
            .unwrap_or_default()
    };
    let view = state.registry.rollback(&name, request.version.as_deref()).await?;
    tracing::info!(plugin = %name, version = %view.live, "plugin rolled back");
    Ok(axum::Json(view))
}
