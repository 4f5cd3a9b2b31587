//! `/v1/tokens`: create, list and revoke scoped tokens (admin only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ErrorBody, Refusals};
use super::extract::{Admin, Body, TokenIdParam};
use super::{ApiError, AppState};
use crate::auth::NewToken;
use crate::store::TokenRecord;
use crate::task::OwnerRefusal;

/// A created token: its record and, this once, the token itself.
#[derive(Serialize, ToSchema)]
pub struct Created {
    #[serde(flatten)]
    record: TokenRecord,
    /// The bearer token: shown this once, kept only as a hash.
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenRecord>,
}

/// Create a token with scopes (admin only).
#[utoipa::path(post, path = "/v1/tokens", operation_id = "create_token", tag = "tokens", request_body = NewToken, responses(
    (status = 201, description = "Created; the token is in the answer, and nowhere else", body = Created),
    (status = 400, description = "Invalid request: the message names the field", body = ErrorBody),
    (status = 409, description = "limits.max_tokens reached", body = ErrorBody),
    Refusals,
))]
pub async fn create(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: NewToken = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("invalid token request ({e}); send {{\"name\": \"ci\", \"scopes\": [\"trigger\"], \"plugins\": [\"hello\"]}}"),
        )
    })?;
    let (record, token) = state.auth.tokens.create(request).await?;
    tracing::info!(token_id = %record.id, name = %record.name, scopes = ?record.scopes, by = caller.token_id.as_deref().unwrap_or("admin-token"), "token created");
    Ok((StatusCode::CREATED, axum::Json(Created { record, token })))
}

/// The tokens, without their secrets (admin only).
#[utoipa::path(get, path = "/v1/tokens", operation_id = "list_tokens", tag = "tokens", responses(
    (status = 200, description = "The tokens", body = TokenList),
    Refusals,
))]
pub async fn list(_: Admin, State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(TokenList { tokens: state.auth.tokens.list() })
}

/// Revoke a token: the next request carrying it gets 401, its tasks spawn nothing more, and
/// its schedules are paused (admin only).
#[utoipa::path(delete, path = "/v1/tokens/{id}", operation_id = "revoke_token", tag = "tokens", params(TokenIdParam), responses(
    (status = 204, description = "Revoked"),
    (status = 404, description = "No such token", body = ErrorBody),
    Refusals,
))]
pub async fn revoke(
    Admin(caller): Admin,
    State(state): State<AppState>,
    TokenIdParam(id): TokenIdParam,
) -> Result<StatusCode, ApiError> {
    let record = state.auth.tokens.revoke(&id).await?;
    state.schedules.stop_runs_of(&record.id, &OwnerRefusal::Revoked(record.id.clone())).await;
    tracing::info!(token_id = %record.id, name = %record.name, by = caller.token_id.as_deref().unwrap_or("admin-token"), "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
