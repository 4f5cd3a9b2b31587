//! Outbound HTTP: the one place every request a plugin makes passes through.
//!
//! It owns the shared client (connection pooling, rustls), the destination policy checked
//! before every hop, redirects (followed here, not by the client, so each hop is checked and
//! sees the session's cookies), cookie jars, timeouts and the response size limit, which is
//! enforced while the (decompressed) body streams in.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cookie_store::{CookieStore, RawCookie};
use futures::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::config::OutboundConfig;
use crate::runtime::http::{Error, Request, Response};

/// The state a `session` keeps between requests: cookies and default headers.
#[derive(Default)]
pub struct SessionState {
    jar: Mutex<CookieStore>,
    default_headers: Mutex<Vec<(String, String)>>,
}

impl SessionState {
    pub fn set_default_header(&self, name: String, value: String) {
        let mut headers = self.default_headers.lock().unwrap_or_else(PoisonError::into_inner);
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }

    /// The `Cookie` header value for `url`, empty if no cookie applies.
    pub fn cookie_header(&self, url: &Url) -> String {
        let jar = self.jar.lock().unwrap_or_else(PoisonError::into_inner);
        jar.get_request_values(url).map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    fn store_cookies(&self, headers: &HeaderMap, url: &Url) {
        let cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| RawCookie::parse(v.to_owned()).ok());
        let mut jar = self.jar.lock().unwrap_or_else(PoisonError::into_inner);
        jar.store_response_cookies(cookies, url);
    }
}

pub struct Outbound {
    client: reqwest::Client,
    default_timeout: Duration,
    max_response_bytes: u64,
    /// Bodies one `fetch-all` may hold at once: they must fit in the guest's memory anyway,
    /// and the host buffers them all before handing them over.
    max_batch_bytes: u64,
    max_redirects: u32,
    fetch_all_concurrency: u32,
    max_fetch_all_concurrency: u32,
}

impl Outbound {
    pub fn new(config: &OutboundConfig, max_batch_bytes: u64) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.pool_idle_per_host)
            .user_agent(&config.user_agent)
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(Self {
            client,
            default_timeout: config.request_timeout(),
            max_response_bytes: config.max_response_bytes(),
            max_batch_bytes,
            max_redirects: config.max_redirects,
            fetch_all_concurrency: config.fetch_all_concurrency,
            max_fetch_all_concurrency: config.max_fetch_all_concurrency,
        })
    }

    /// Sends one request, following redirects, within its timeout.
    pub async fn send(&self, request: Request, session: Option<&SessionState>) -> Result<Response, Error> {
        self.send_within(request, session, None).await
    }

    async fn send_within(&self, request: Request, session: Option<&SessionState>, batch: Option<&AtomicI64>) -> Result<Response, Error> {
        let timeout = request.timeout_ms.map_or(self.default_timeout, |ms| Duration::from_millis(ms.into()));
        let url = request.url.clone();
        match tokio::time::timeout(timeout, self.follow(request, session, batch)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(format!("{url} did not complete within {} ms", timeout.as_millis()))),
        }
    }

    /// Sends all requests, at most `concurrency` at once; results in the order given.
    pub async fn fetch_all(
        &self,
        requests: Vec<Request>,
        concurrency: Option<u32>,
        session: Option<&SessionState>,
    ) -> Vec<Result<Response, Error>> {
        let concurrency = concurrency.unwrap_or(self.fetch_all_concurrency).clamp(1, self.max_fetch_all_concurrency);
        let batch = AtomicI64::new(i64::try_from(self.max_batch_bytes).unwrap_or(i64::MAX));
        let batch = &batch;
        futures::stream::iter(requests)
            .map(|request| self.send_within(request, session, Some(batch)))
            .buffered(concurrency as usize)
            .collect()
            .await
    }

    async fn follow(&self, request: Request, session: Option<&SessionState>, batch: Option<&AtomicI64>) -> Result<Response, Error> {
        let mut method = Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::InvalidRequest(format!("invalid method {:?}", request.method)))?;
        let mut url = Url::parse(&request.url).map_err(|e| Error::InvalidRequest(format!("invalid URL {:?}: {e}", request.url)))?;
        let mut headers = header_map(&request.headers)?;
        if let Some(session) = session {
            let defaults = session.default_headers.lock().unwrap_or_else(PoisonError::into_inner).clone();
            for (name, value) in header_map(&defaults)? {
                if let Some(name) = name {
                    headers.entry(name).or_insert(value);
                }
            }
        }
        let explicit_cookie = headers.contains_key(COOKIE);
        let mut body = request.body;

        for hop in 0..=self.max_redirects {
            self.check_destination(&url)?;
            let mut hop_headers = headers.clone();
            if let Some(session) = session.filter(|_| !explicit_cookie) {
                let cookies = session.cookie_header(&url);
                if !cookies.is_empty() {
                    let value = HeaderValue::from_str(&cookies).map_err(|e| Error::InvalidRequest(format!("cookie: {e}")))?;
                    hop_headers.insert(COOKIE, value);
                }
            }
            let mut builder = self.client.request(method.clone(), url.clone()).headers(hop_headers);
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(|e| transport_error(&url, &e))?;
            if let Some(session) = session {
                session.store_cookies(response.headers(), &url);
            }

            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            if let (true, Some(location)) = (response.status().is_redirection(), location) {
                if hop == self.max_redirects {
                    return Err(Error::TooManyRedirects(self.max_redirects));
                }
                url = url.join(location).map_err(|e| Error::Protocol(format!("{url} redirected to an invalid location {location:?}: {e}")))?;
                if redirect_becomes_get(response.status(), &method) {
                    method = Method::GET;
                    body = None;
                    headers.remove(CONTENT_TYPE);
                    headers.remove(CONTENT_LENGTH);
                }
                continue;
            }
            return self.read(response, url, batch).await;
        }
        Err(Error::TooManyRedirects(self.max_redirects))
    }

    /// The destination policy: every hop of every request passes here.
    fn check_destination(&self, url: &Url) -> Result<(), Error> {
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(()),
            "http" | "https" => Err(Error::InvalidRequest(format!("{url} has no host"))),
            other => Err(Error::Denied(format!("scheme {other}: is not allowed, only http and https"))),
        }
    }

    async fn read(&self, response: reqwest::Response, url: Url, batch: Option<&AtomicI64>) -> Result<Response, Error> {
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(Error::TooLarge(limit));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport_error(&url, &e))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(Error::TooLarge(limit));
            }
            if let Some(batch) = batch {
                let len = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
                if batch.fetch_sub(len, Ordering::Relaxed) < len {
                    return Err(Error::TooLarge(self.max_batch_bytes));
                }
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body, url: url.into() })
    }
}

/// 303 always, and 301/302 after anything but GET/HEAD, turn into a GET without body, as
/// browsers and `requests` do.
fn redirect_becomes_get(status: StatusCode, method: &Method) -> bool {
    status == StatusCode::SEE_OTHER
        || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND) && *method != Method::GET && *method != Method::HEAD)
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::InvalidRequest(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value).map_err(|_| Error::InvalidRequest(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn transport_error(url: &Url, error: &reqwest::Error) -> Error {
    let mut message = format!("{url}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        Error::Timeout(message)
    } else if error.is_connect() {
        Error::Connect(message)
    } else if error.is_builder() {
        Error::InvalidRequest(message)
    } else {
        Error::Protocol(message)
    }
}
