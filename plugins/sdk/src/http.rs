//! Outbound HTTP in the style of `requests`: sessions that keep cookies, request builders,
//! proxies, retries, and [`fetch_all`] to run many requests at once on the host.
//!
//! The host decides what a plugin may reach: its manifest's `allowed_hosts` (nothing without
//! one), and per-destination politeness limits under which requests wait their turn.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::bindings::ignareo::task::http as wit;

/// Why a request produced no usable response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The destination is not allowed for this plugin.
    Denied(String),
    Timeout(String),
    Connect(String),
    /// The response body exceeded this many bytes.
    TooLarge(u64),
    InvalidRequest(String),
    TooManyRedirects(u32),
    Protocol(String),
    /// [`Response::error_for_status`] on a 4xx or 5xx answer.
    Status {
        status: u16,
        url: String,
    },
    /// The body could not be read as the type asked for.
    Decode(String),
    /// The proxy could not be reached or refused the request (e.g. 407).
    Proxy(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(what) => write!(f, "destination denied: {what}"),
            Self::Timeout(what) => write!(f, "timed out: {what}"),
            Self::Connect(what) => write!(f, "connection failed: {what}"),
            Self::TooLarge(limit) => write!(f, "response larger than {limit} bytes"),
            Self::InvalidRequest(what) => write!(f, "invalid request: {what}"),
            Self::TooManyRedirects(limit) => write!(f, "more than {limit} redirects"),
            Self::Protocol(what) => write!(f, "protocol error: {what}"),
            Self::Status { status, url } => write!(f, "HTTP {status} from {url}"),
            Self::Decode(what) => write!(f, "could not decode body: {what}"),
            Self::Proxy(what) => write!(f, "proxy failed: {what}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<wit::Error> for HttpError {
    fn from(error: wit::Error) -> Self {
        match error {
            wit::Error::Denied(m) => Self::Denied(m),
            wit::Error::Timeout(m) => Self::Timeout(m),
            wit::Error::Connect(m) => Self::Connect(m),
            wit::Error::TooLarge(n) => Self::TooLarge(n),
            wit::Error::InvalidRequest(m) => Self::InvalidRequest(m),
            wit::Error::TooManyRedirects(n) => Self::TooManyRedirects(n),
            wit::Error::Protocol(m) => Self::Protocol(m),
            wit::Error::Proxy(m) => Self::Proxy(m),
        }
    }
}

/// When to try a request again: by default 3 tries, backoff from 200 ms doubling up to 10 s
/// with jitter, on connection errors, timeouts and 429/502/503/504, for idempotent methods
/// only. A `Retry-After` answer is honoured up to the maximum backoff.
#[derive(Debug, Clone)]
pub struct Retry(wit::RetryPolicy);

impl Default for Retry {
    fn default() -> Self {
        Self::attempts(3)
    }
}

impl Retry {
    /// `n` tries in total, the first included.
    pub fn attempts(n: u32) -> Self {
        Self(wit::RetryPolicy {
            attempts: n,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
            statuses: None,
            retry_errors: true,
            any_method: false,
        })
    }

    /// The first wait, doubled after each try up to `max`.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.0.initial_backoff_ms = millis(initial);
        self.0.max_backoff_ms = millis(max);
        self
    }

    /// The statuses to retry instead of 429, 502, 503 and 504.
    #[must_use]
    pub fn statuses(mut self, statuses: &[u16]) -> Self {
        self.0.statuses = Some(statuses.to_vec());
        self
    }

    /// Whether connection errors and timeouts are retried (they are by default).
    #[must_use]
    pub fn on_errors(mut self, retry: bool) -> Self {
        self.0.retry_errors = retry;
        self
    }

    /// Retries POST and PATCH too: only if the server tolerates a request arriving twice.
    #[must_use]
    pub fn any_method(mut self) -> Self {
        self.0.any_method = true;
        self
    }
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// A request ready to send, e.g. to collect for [`fetch_all`].
#[derive(Debug, Clone)]
pub struct Request(wit::Request);

impl Request {
    pub fn new(method: &str, url: &str) -> Self {
        Self(wit::Request {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            proxy: None,
            retry: None,
        })
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }
}

/// An answer from the server, body fully read.
#[derive(Debug, Clone)]
pub struct Response(wit::Response);

impl Response {
    pub fn status(&self) -> u16 {
        self.0.status
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.0.status)
    }

    /// The URL that answered, after redirects.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.0.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0.body
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0.body
    }

    /// The body as text; invalid UTF-8 is replaced rather than refused, as browsers do.
    pub fn text(&self) -> Result<String, HttpError> {
        Ok(String::from_utf8_lossy(&self.0.body).into_owned())
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.0.body).map_err(|e| HttpError::Decode(e.to_string()))
    }

    /// `Err(HttpError::Status)` for a 4xx or 5xx answer.
    pub fn error_for_status(self) -> Result<Self, HttpError> {
        if self.0.status >= 400 { Err(HttpError::Status { status: self.0.status, url: self.0.url }) } else { Ok(self) }
    }
}

/// Builds one request; sent with or without a session.
#[must_use]
pub struct RequestBuilder<'s> {
    session: Option<&'s Session>,
    request: Request,
    error: Option<HttpError>,
}

impl<'s> RequestBuilder<'s> {
    fn new(session: Option<&'s Session>, method: &str, url: &str) -> Self {
        Self { session, request: Request::new(method, url), error: None }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.0.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn header_if_absent(&mut self, name: &str, value: &str) {
        if !self.request.0.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            self.request.0.headers.push((name.to_owned(), value.to_owned()));
        }
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.0.body = Some(body.into());
        self
    }

    /// A JSON body, with `Content-Type: application/json` unless set.
    pub fn json(mut self, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.header_if_absent("content-type", "application/json");
                self.request.0.body = Some(body);
            }
            Err(e) => self.error = Some(HttpError::InvalidRequest(format!("JSON body: {e}"))),
        }
        self
    }

    /// A form body (`application/x-www-form-urlencoded`), e.g. `&[("qty", "1")]`.
    pub fn form(mut self, value: &impl Serialize) -> Self {
        match serde_urlencoded::to_string(value) {
            Ok(body) => {
                self.header_if_absent("content-type", "application/x-www-form-urlencoded");
                self.request.0.body = Some(body.into_bytes());
            }
            Err(e) => self.error = Some(HttpError::InvalidRequest(format!("form body: {e}"))),
        }
        self
    }

    /// Time for each try of this request, redirects included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.0.timeout_ms = Some(millis(timeout));
        self
    }

    /// Sends this request through `proxy` (`http://user:pass@host:port`) instead of the
    /// session's.
    pub fn proxy(mut self, proxy: &str) -> Self {
        self.request.0.proxy = Some(proxy.to_owned());
        self
    }

    /// Retries this request by `policy` instead of the session's.
    pub fn retry(mut self, policy: Retry) -> Self {
        self.request.0.retry = Some(policy.0);
        self
    }

    /// The request, to collect for [`fetch_all`] or [`Session::fetch_all`].
    pub fn build(self) -> Result<Request, HttpError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.request),
        }
    }

    pub fn send(self) -> Result<Response, HttpError> {
        let session = self.session;
        let request = self.build()?;
        let result = match session {
            Some(s) => s.inner.send(&request.0),
            None => wit::send(&request.0),
        };
        result.map(Response).map_err(HttpError::from)
    }
}

/// Requests that share cookies, default headers, a proxy and a retry policy, like
/// `requests.Session`. A new session takes the next proxy of the plugin's proxy pool, if its
/// manifest names one.
pub struct Session {
    inner: wit::Session,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self { inner: wit::Session::new() }
    }

    /// Sends `name: value` with every later request that does not set `name` itself.
    pub fn default_header(&self, name: &str, value: &str) -> &Self {
        self.inner.set_default_header(name, value);
        self
    }

    /// Sends this session's requests through `proxy` (`http://user:pass@host:port`), or
    /// directly with `None`. The proxy must be allowed by the plugin's manifest.
    pub fn proxy(&self, proxy: Option<&str>) -> Result<&Self, HttpError> {
        self.inner.set_proxy(proxy)?;
        Ok(self)
    }

    /// Retries this session's requests by `policy`, or not at all with `None`.
    pub fn retry(&self, policy: Option<Retry>) -> Result<&Self, HttpError> {
        let policy = policy.map(|p| p.0);
        self.inner.set_retry(policy.as_ref())?;
        Ok(self)
    }

    pub fn request(&self, method: &str, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(Some(self), method, url)
    }

    pub fn get(&self, url: &str) -> RequestBuilder<'_> {
        self.request("GET", url)
    }

    pub fn post(&self, url: &str) -> RequestBuilder<'_> {
        self.request("POST", url)
    }

    pub fn put(&self, url: &str) -> RequestBuilder<'_> {
        self.request("PUT", url)
    }

    pub fn delete(&self, url: &str) -> RequestBuilder<'_> {
        self.request("DELETE", url)
    }

    /// Runs the requests concurrently on the host with this session's cookies; results in order.
    pub fn fetch_all(&self, requests: Vec<Request>, concurrency: Option<u32>) -> Vec<Result<Response, HttpError>> {
        let requests: Vec<wit::Request> = requests.into_iter().map(|r| r.0).collect();
        collect(self.inner.fetch_all(&requests, concurrency))
    }

    /// The `Cookie` header value this session would send to `url`.
    pub fn cookies_for(&self, url: &str) -> String {
        self.inner.cookies_for(url)
    }
}

fn collect(results: Vec<Result<wit::Response, wit::Error>>) -> Vec<Result<Response, HttpError>> {
    results.into_iter().map(|r| r.map(Response).map_err(HttpError::from)).collect()
}

/// A request outside any session (no cookies kept).
pub fn request(method: &str, url: &str) -> RequestBuilder<'static> {
    RequestBuilder::new(None, method, url)
}

pub fn get(url: &str) -> RequestBuilder<'static> {
    request("GET", url)
}

pub fn post(url: &str) -> RequestBuilder<'static> {
    request("POST", url)
}

/// Runs the requests concurrently on the host, at most `concurrency` at a time (the host's
/// default if `None`); one result per request, in the order given.
pub fn fetch_all(requests: Vec<Request>, concurrency: Option<u32>) -> Vec<Result<Response, HttpError>> {
    let requests: Vec<wit::Request> = requests.into_iter().map(|r| r.0).collect();
    collect(wit::fetch_all(&requests, concurrency))
}
