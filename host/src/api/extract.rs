//! Request extractors that refuse bad input with an [`ApiError`]: the admin bearer token,
//! plugin names, task ids, bodies and queries.

use axum::extract::{FromRequest, FromRequestParts, Multipart, Path};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::task::TaskId;

/// Proof that the request carries the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "this endpoint needs the admin token: send `Authorization: Bearer <token>` (set by IGNAREO_TOKEN, or printed at first start and stored in <data-dir>/admin-token)",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        if state.admin.verify(token.trim()) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized("the bearer token is not valid for this host"))
        }
    }
}

/// A plugin name: 1–64 of `a-z 0-9 - _`, starting with a letter or digit, so it is safe in
/// URLs, logs and file names.
pub struct PluginName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PluginName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state).await?;
        let name = params.get("name").cloned().unwrap_or_default();
        let valid = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && name.as_bytes()[0].is_ascii_alphanumeric();
        if valid {
            Ok(Self(name))
        } else {
            Err(ApiError::bad_request(
                "invalid_name",
                format!("invalid plugin name {name:?}: use 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"),
            ))
        }
    }
}

/// A task id from the path.
pub struct TaskIdParam(pub TaskId);

impl<S: Send + Sync> FromRequestParts<S> for TaskIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state).await?;
        let raw = params.get("id").cloned().unwrap_or_default();
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::bad_request("invalid_task_id", format!("{raw:?} is not a task id (a UUID)")))
    }
}

/// The raw request body, size-limited per route.
pub struct Body(pub bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(bytes::Bytes::from_request(request, state).await?))
    }
}

/// A plugin upload: the component as the raw body, or as the `component` part of a
/// `multipart/form-data` body with an optional `manifest` part (`ignareo.toml`).
pub struct Upload {
    pub component: bytes::Bytes,
    pub manifest: Option<String>,
}

const UPLOAD_FORM: &str = "curl -F component=@plugin.wasm -F manifest=@ignareo.toml";

impl<S: Send + Sync> FromRequest<S> for Upload {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let multipart = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
        if !multipart {
            return Ok(Self { component: bytes::Bytes::from_request(request, state).await?, manifest: None });
        }
        let mut form = Multipart::from_request(request, state).await?;
        let (mut component, mut manifest) = (None, None);
        while let Some(field) = form.next_field().await? {
            let name = field.name().unwrap_or_default().to_owned();
            let slot = match name.as_str() {
                "component" => &mut component,
                "manifest" => &mut manifest,
                other => {
                    return Err(ApiError::bad_request(
                        "bad_multipart",
                        format!("unexpected part {other:?}: send a `component` part and optionally a `manifest` part ({UPLOAD_FORM})"),
                    ));
                }
            };
            if slot.is_some() {
                return Err(ApiError::bad_request("bad_multipart", format!("the `{name}` part appears twice")));
            }
            *slot = Some(field.bytes().await?);
        }
        let component = component
            .ok_or_else(|| ApiError::bad_request("bad_multipart", format!("the form has no `component` part ({UPLOAD_FORM})")))?;
        let manifest = manifest
            .map(|m| String::from_utf8(m.to_vec()))
            .transpose()
            .map_err(|_| ApiError::bad_request("invalid_manifest", "the manifest is not UTF-8 text"))?;
        Ok(Self { component, manifest })
    }
}

/// A query string, refused with a JSON error when malformed.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);
