//! Closing connections whose request body was refused unread.
//!
//! A refusal that comes before the body is read (a bad token, a bad name, a body declared or
//! found too large) leaves the rest of that body on the connection; the server then closes
//! it. Without `Connection: close` on the answer, a client would reuse the connection for its
//! next request and see it fail. And a close with unread bytes pending resets the connection,
//! which can destroy the answer before a client still writing its body reads it: so the rest
//! of a refused body is read and discarded for `http.refused_body_linger_secs` first.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http_body::{Frame, SizeHint};

pub async fn close_if_body_unread(State(linger): State<Duration>, request: Request, next: Next) -> Response {
    if !has_body(&request) {
        return next.run(request).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| Body::new(Tracked { inner, finished: finished.clone(), linger }));
    let mut response = next.run(request).await;
    if !finished.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether the request carries a body, from its head: the body's own hints are lost under
/// the body timeout's wrapper.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    let length =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    headers.contains_key(header::TRANSFER_ENCODING) || length.is_some_and(|n| n > 0)
}

/// A body that notes when it has been read to its end, and has its rest discarded if it is
/// dropped before.
struct Tracked {
    inner: Body,
    finished: Arc<AtomicBool>,
    linger: Duration,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.finished.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.finished.load(Ordering::Acquire) || self.linger.is_zero() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let rest = std::mem::take(&mut self.inner).into_data_stream();
        let linger = self.linger;
        // Ends with the body, a read error (the body timeout, a reset), or the linger time.
        runtime.spawn(tokio::time::timeout(
            linger,
            rest.take_while(|chunk| std::future::ready(chunk.is_ok())).for_each(|_| async {}),
        ));
    }
}
