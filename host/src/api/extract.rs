//! Request extractors that refuse bad input with an [`ApiError`]: the caller's bearer token
//! and scope, plugin names, task ids, bodies and queries.

use axum::extract::{FromRequest, FromRequestParts, Multipart, Path};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use utoipa::IntoParams;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::task::TaskId;
use crate::task::{NAME_RULE, is_valid_name};

/// The caller, known by the bearer token the request carries; 401 without a valid one.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "this endpoint needs a token: send `Authorization: Bearer <token>` (the admin token is set by IGNAREO_TOKEN, or printed at first start and stored in <data-dir>/admin-token; `ignareo tokens create` makes scoped ones)",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]))
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        state
            .auth
            .caller(token.trim())
            .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid for this host (unknown or revoked)"))
    }
}

/// A caller with the admin scope.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_admin(|| action(parts))?;
        Ok(Self(caller))
    }
}

/// A caller with the read (or admin) scope.
pub struct Reader;

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_read(|| action(parts))?;
        Ok(Self)
    }
}

/// What a refused request tried to do, for the 403's message.
fn action(parts: &Parts) -> String {
    format!("{} {}", parts.method, parts.uri.path())
}

/// One parameter of the route's path.
async fn path_param<S: Send + Sync>(parts: &mut Parts, state: &S, name: &str) -> Result<String, ApiError> {
    let Path(mut params) = Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state).await?;
    Ok(params.remove(name).unwrap_or_default())
}

/// A plugin name from the path (see [`is_valid_name`]).
#[derive(IntoParams)]
#[into_params(names("name"), parameter_in = Path)]
pub struct PluginName(
    /// Plugin name: 1-64 of a-z, 0-9, - and _, starting with a letter or digit
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", max_length = 64)]
    pub String,
);

impl<S: Send + Sync> FromRequestParts<S> for PluginName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        name_param(parts, state, "plugin").await.map(Self)
    }
}

/// A schedule name from the path: the same rule as plugin names.
#[derive(IntoParams)]
#[into_params(names("name"), parameter_in = Path)]
pub struct ScheduleName(
    /// Schedule name: 1-64 of a-z, 0-9, - and _, starting with a letter or digit
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", max_length = 64)]
    pub String,
);

impl<S: Send + Sync> FromRequestParts<S> for ScheduleName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        name_param(parts, state, "schedule").await.map(Self)
    }
}

/// The `name` path parameter of a `what` (plugin, schedule), checked against the naming rule.
async fn name_param<S: Send + Sync>(parts: &mut Parts, state: &S, what: &str) -> Result<String, ApiError> {
    let name = path_param(parts, state, "name").await?;
    if is_valid_name(&name) {
        return Ok(name);
    }
    Err(ApiError::bad_request("invalid_name", format!("invalid {what} name {name:?}: use {NAME_RULE}")))
}

/// A task id from the path.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct TaskIdParam(
    /// Task id
    #[param(value_type = uuid::Uuid)]
    pub TaskId,
);

impl<S: Send + Sync> FromRequestParts<S> for TaskIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, state, "id").await?;
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::bad_request("invalid_task_id", format!("{raw:?} is not a task id (a UUID)")))
    }
}

/// A token id from the path.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct TokenIdParam(
    /// Token id
    pub String,
);

impl<S: Send + Sync> FromRequestParts<S> for TokenIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Self(path_param(parts, state, "id").await?))
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
                        format!(
                            "unexpected part {other:?}: send a `component` part and optionally a `manifest` part ({UPLOAD_FORM})"
                        ),
                    ));
                }
            };
            if slot.is_some() {
                return Err(ApiError::bad_request("bad_multipart", format!("the `{name}` part appears twice")));
            }
            *slot = Some(field.bytes().await?);
        }
        let component = component.ok_or_else(|| {
            ApiError::bad_request("bad_multipart", format!("the form has no `component` part ({UPLOAD_FORM})"))
        })?;
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
