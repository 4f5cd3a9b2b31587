//! `/v1/tokens`: create, list and revoke scoped tokens (admin only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::json;

use super::extract::{Admin, Body, TokenIdParam};
use super::{ApiError, AppState};
use crate::auth::{NewToken, TokenRecord};

/// A created token: its record and, this once, the token itself.
#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    record: TokenRecord,
    token: String,
}

pub async fn create(Admin(caller): Admin, State(state): State<AppState>, Body(body): Body) -> Result<impl IntoResponse, ApiError> {
    let request: NewToken = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("invalid token request ({e}); send {{\"name\": \"ci\", \"scopes\": [\"trigger\"], \"plugins\": [\"hello\"]}}"),
        )
    })?;
    let (record, token) = state.auth.tokens.create(request)?;
    tracing::info!(token_id = %record.id, name = %record.name, scopes = ?record.scopes, by = caller.token_id.as_deref().unwrap_or("admin-token"), "token created");
    Ok((StatusCode::CREATED, axum::Json(Created { record, token })))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({ "tokens": state.auth.tokens.list() }))
}

pub async fn revoke(Admin(caller): Admin, State(state): State<AppState>, TokenIdParam(id): TokenIdParam) -> Result<StatusCode, ApiError> {
    let record = state.auth.tokens.revoke(&id)?;
    tracing::info!(token_id = %record.id, name = %record.name, by = caller.token_id.as_deref().unwrap_or("admin-token"), "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
