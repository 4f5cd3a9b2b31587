//! Pages of list answers (`GET /v1/tasks`, `GET /v1/schedules`): at most `limit` items, within
//! `limits.max_list_page`, and `next`, the cursor of the page after (`after=<next>`), or
//! `null` on the last page. A page is written item by item as it is sent, each rendered
//! when its turn comes, so no more than one item's payload is held at once.

use std::future::Future;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{StreamExt, stream};

use super::ApiError;

/// How many items a page holds: `asked`, or `default` (both within `max`).
pub(super) fn limit(asked: Option<usize>, default: usize, max: u32) -> Result<usize, ApiError> {
    let max = max as usize;
    let limit = asked.unwrap_or_else(|| default.min(max));
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be between 1 and {max} (limits.max_list_page); follow `next` for more"),
        ));
    }
    Ok(limit)
}

/// An item that could not be rendered: the answer is cut off, its status already sent.
pub(super) type RenderError = Box<dyn std::error::Error + Send + Sync>;

/// `{"<field>": [<items>], "next": <next>}`, each item rendered to JSON by `render` as the
/// answer is sent.
pub(super) fn json_page<T, F, Fut>(field: &'static str, items: Vec<T>, next: Option<&str>, mut render: F) -> Response
where
    T: Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<u8>, RenderError>> + Send + 'static,
{
    let head = stream::once(async move { Ok::<_, RenderError>(Bytes::from(format!("{{\"{field}\":["))) });
    let body = stream::iter(items.into_iter().enumerate()).then(move |(i, item)| {
        let rendered = render(item);
        async move {
            let mut chunk = if i == 0 { Vec::new() } else { b",".to_vec() };
            chunk.extend(rendered.await?);
            Ok(Bytes::from(chunk))
        }
    });
    let next = serde_json::to_string(&next).unwrap_or_else(|_| "null".to_owned());
    let tail = stream::once(async move { Ok(Bytes::from(format!("],\"next\":{next}}}"))) });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(head.chain(body).chain(tail))).into_response()
}
