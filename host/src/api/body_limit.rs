//! Body limits per kind of route: the limit applies while a body is read, and a request whose
//! `Content-Length` already declares more is refused before any of its body is read.
//!
//! Without the early refusal a client declaring a large body would wait for the 413 until it
//! had sent the limit's worth of bytes, or until the body timeout if it sends nothing.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::ApiError;

/// One kind of route's limit and the setting that sets it.
#[derive(Clone, Copy)]
pub struct BodyLimit {
    max_bytes: usize,
    setting: &'static str,
}

impl BodyLimit {
    pub fn new(max_bytes: usize, setting: &'static str) -> Self {
        Self { max_bytes, setting }
    }

    /// `route` with this limit: refused when declared over it, cut off when read past it.
    pub fn on<S: Clone + Send + Sync + 'static>(self, route: MethodRouter<S>) -> MethodRouter<S> {
        route
            .layer(DefaultBodyLimit::max(self.max_bytes))
            .layer(axum::middleware::from_fn_with_state(self, refuse_declared_over))
    }
}

async fn refuse_declared_over(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit.max_bytes as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body declares {length} bytes, more than the {} allowed here ({})",
                limit.max_bytes, limit.setting
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}
