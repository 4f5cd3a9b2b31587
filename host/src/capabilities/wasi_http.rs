//! `wasi:http`, the guest's own HTTP API: what JavaScript's `fetch`, Python's wasi-http
//! libraries and stock `wasi:http/proxy` components call. wasmtime-wasi-http implements the
//! interfaces; this module owns the one hook where a request leaves the guest, and sends it
//! through the task's [`TaskOutbound`], so grants, the private-address rule, politeness,
//! proxies, response limits and events are those of `ignareo:task/http`. There is no other
//! way out: without a running task (an upload being validated) every request is denied.
//!
//! Redirects are followed here, each hop checked, as `fetch` does by default (the JavaScript engine's
//! `fetch` leaves them to the host); the answer is the last hop's. The request's body is
//! gathered before it is sent, within the task's memory limit; the response's body is read
//! within the plugin's response limit, as for `ignareo:task/http`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as WasiError, RequestOptions, WasiBody, WasiHttpHooks};

use super::bindings::http::{Error, Request, Response};
use super::outbound::TaskOutbound;
use crate::task::events::{EventKind, Level};

type SendResult = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>;
type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

/// The `wasi:http` hooks of one store.
pub(super) struct GuestHttp {
    /// `None` while an upload is validated: nothing may leave then.
    outbound: Option<Arc<TaskOutbound>>,
    /// The most a request body may hold: the task's memory limit.
    max_body_bytes: u64,
}

impl GuestHttp {
    pub(super) fn new(outbound: Option<Arc<TaskOutbound>>, max_body_bytes: u64) -> Self {
        Self { outbound, max_body_bytes }
    }
}

impl WasiHttpHooks for GuestHttp {
    /// The client derives `Host` from the URL the grants were checked against.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: IoFuture,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let outbound = self.outbound.clone();
        let max_body_bytes = self.max_body_bytes;
        Box::new(async move {
            let outbound = outbound.ok_or(WasiError::HttpRequestDenied)?;
            let request = gather(request, options, max_body_bytes).await?;
            let response = outbound.send(request, None).await.map_err(|e| refused(&outbound, e))?;
            let done: IoFuture = Box::new(async { Ok(()) });
            Ok((into_http(response), done))
        })
    }
}

/// The request as `ignareo:task/http` takes it, its body gathered.
async fn gather(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    max_body_bytes: u64,
) -> wasmtime_wasi_http::Result<Request> {
    let (parts, mut body) = request.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (bytes.len() + data.len()) as u64 > max_body_bytes {
                return Err(WasiError::HttpRequestBodySize(Some(max_body_bytes)));
            }
            bytes.extend_from_slice(&data);
        }
    }
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| **name != HOST)
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    Ok(Request {
        method: parts.method.as_str().to_owned(),
        url: parts.uri.to_string(),
        headers,
        body: (!bytes.is_empty() || parts.method != http::Method::GET).then_some(bytes),
        timeout_ms: options.and_then(|o| timeout_ms(&o)),
        proxy: None,
        retry: None,
    })
}

/// The time the guest allows until the response has begun (connecting included), if it says.
fn timeout_ms(options: &RequestOptions) -> Option<u32> {
    let parts = [options.connect_timeout, options.first_byte_timeout];
    let total = parts.iter().flatten().copied().reduce(Duration::saturating_add);
    total.map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX))
}

fn into_http(response: Response) -> http::Response<WasiBody> {
    let mut answer =
        http::Response::new(Full::new(Bytes::from(response.body)).map_err(|never| match never {}).boxed_unsync());
    *answer.status_mut() = http::StatusCode::from_u16(response.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = answer.headers_mut();
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(value.as_bytes()))
        {
            headers.append(name, value);
        }
    }
    answer
}

/// The `wasi:http` error for a refused or failed request. Its codes carry no reason for a
/// denial, so the task's events say it.
fn refused(outbound: &TaskOutbound, error: Error) -> WasiError {
    match error {
        Error::Denied(why) => {
            outbound
                .task()
                .events
                .push(EventKind::Log { level: Level::Warn, message: format!("wasi:http request denied: {why}") });
            WasiError::HttpRequestDenied
        }
        Error::Timeout(_) => WasiError::HttpResponseTimeout,
        Error::TooLarge(limit) => WasiError::HttpResponseBodySize(Some(limit)),
        Error::Connect(why) | Error::InvalidRequest(why) | Error::Protocol(why) | Error::Proxy(why) => {
            WasiError::InternalError(Some(why))
        }
        Error::TooManyRedirects(limit) => WasiError::InternalError(Some(format!("more than {limit} redirects"))),
    }
}
