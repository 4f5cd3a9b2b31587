//! `ApiError`: every refusal the API makes, as a status code and a JSON body
//! `{"error": {"code", "message"}}` that tells the caller what to do.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::content::Content;
use utoipa::openapi::response::{Response as OpenApiResponse, ResponseBuilder};
use utoipa::openapi::{Ref, RefOr};

use crate::auth::{Forbidden, TokenError};
use crate::registry::{RegistryError, UploadError};
use crate::runtime::LinkError;
use crate::scheduler::{CancelError, SubmitError};
use crate::schedules::ScheduleError;
use crate::task::TaskId;

/// The body of every refusal.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `not_found`, `bad_query`, ...
    code: String,
    /// What went wrong and what to do about it.
    message: String,
    /// The task concerned, when there is one.
    #[schema(value_type = Option<String>, format = Uuid)]
    task_id: Option<String>,
}

/// The refusals every route that needs a token may answer, listed once for all of them in
/// the `OpenAPI` document: no valid token, a token without the scope, and any other 4XX.
pub struct Refusals;

impl utoipa::IntoResponses for Refusals {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        [
            ("401", "No valid token"),
            ("403", "The token lacks the scope this route needs"),
            ("4XX", "Refused; the error names the reason"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
            (
                status.to_owned(),
                ResponseBuilder::new().description(description).content("application/json", body).build().into(),
            )
        })
        .collect()
    }
}

/// Seconds a client is asked to wait after a 429.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub task_id: Option<TaskId>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), task_id: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    #[must_use]
    pub fn with_task(mut self, id: TaskId) -> Self {
        self.task_id = Some(id);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(id) = self.task_id {
            error["task_id"] = json!(id);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<Forbidden> for ApiError {
    fn from(Forbidden(message): Forbidden) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl From<ScheduleError> for ApiError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::NotFound(_) => Self::not_found(error.to_string()),
            ScheduleError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string()),
            ScheduleError::TooMany(_) => Self::new(StatusCode::CONFLICT, "too_many_schedules", error.to_string()),
            ScheduleError::Store(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", error.to_string())
            }
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid(_) => Self::bad_request("invalid_token_request", error.to_string()),
            TokenError::NotFound(_) => Self::not_found(error.to_string()),
            TokenError::TooMany(_) => Self::new(StatusCode::CONFLICT, "too_many_tokens", error.to_string()),
            TokenError::Storage(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", error.to_string())
            }
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        let (status, code) = match &error {
            UploadError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            UploadError::Empty => (StatusCode::BAD_REQUEST, "empty_body"),
            UploadError::NotWasm => (StatusCode::BAD_REQUEST, "not_wasm"),
            UploadError::CoreModule => (StatusCode::UNPROCESSABLE_ENTITY, "not_a_component"),
            UploadError::Compile(_) => (StatusCode::UNPROCESSABLE_ENTITY, "compile_failed"),
            UploadError::ValidationTimeout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_timeout"),
            UploadError::Manifest(_) => (StatusCode::BAD_REQUEST, "invalid_manifest"),
            UploadError::Link(LinkError::Instantiate(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "does_not_instantiate"),
            UploadError::Link(_) => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_world"),
            UploadError::Internal(e) => {
                tracing::error!(error = ?e, "upload failed inside the host");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the host could not store the plugin; see its log",
                );
            }
        };
        Self::new(status, code, error.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Upload(e) => e.into(),
            RegistryError::NothingToRollBackTo(_) => {
                Self::new(StatusCode::CONFLICT, "no_previous_version", error.to_string())
            }
            RegistryError::NoSuchPlugin(_) | RegistryError::NoSuchVersion { .. } => Self::not_found(error.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        let (status, code) = match error {
            SubmitError::NoSuchPlugin(_) => (StatusCode::NOT_FOUND, "not_found"),
            SubmitError::WrongKind { .. } => (StatusCode::CONFLICT, "wrong_kind"),
            SubmitError::TimeoutTooLong { .. } => (StatusCode::BAD_REQUEST, "bad_query"),
            SubmitError::QueueFull(_) | SubmitError::NoRoom { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            SubmitError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            SubmitError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable"),
            SubmitError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            SubmitError::Owner(_) => (StatusCode::FORBIDDEN, "forbidden"),
        };
        Self::new(status, code, error.to_string())
    }
}

impl From<CancelError> for ApiError {
    fn from(error: CancelError) -> Self {
        match error {
            CancelError::NotFound(_) => Self::not_found(error.to_string()),
            CancelError::AlreadyFinished(id) => {
                Self::new(StatusCode::CONFLICT, "task_finished", error.to_string()).with_task(id)
            }
            CancelError::Store(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", error.to_string()),
        }
    }
}

/// Whether a body failed because the client stopped sending it (`http.body_idle_timeout_secs`).
fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(<dyn std::error::Error + 'static>::is::<tower_http::timeout::TimeoutError>)
}

fn body_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        "the request body stopped arriving (http.body_idle_timeout_secs); send it without pauses",
    )
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if is_body_timeout(&rejection) {
            return body_timeout();
        }
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_body" };
        let hint = if status == StatusCode::PAYLOAD_TOO_LARGE {
            " (limits.max_component_mb for uploads, limits.max_input_mb for task inputs, http.max_control_body_kb for rollback and token requests)"
        } else {
            ""
        };
        Self::new(status, code, format!("{}{hint}", rejection.body_text()))
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        Self::new(rejection.status(), "bad_multipart", rejection.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(error: MultipartError) -> Self {
        if is_body_timeout(&error) {
            return body_timeout();
        }
        let status = error.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(status, "payload_too_large", format!("{} (limits.max_component_mb)", error.body_text()));
        }
        Self::new(status, "bad_multipart", format!("invalid multipart body: {}", error.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("bad_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("bad_path", rejection.body_text())
    }
}
