//! Outbound HTTP: the one place every request a plugin makes passes through.
//!
//! [`Outbound`] is shared by the whole process: the clients (connection pools, rustls), the
//! politeness gates, the host's limits. [`PluginOutbound`] is what one plugin version may do,
//! from its manifest: grants, proxy pool, response limit, its own politeness rules.
//! [`TaskOutbound`] joins the two for one task and reports to the task's events.
//!
//! A request is prepared once (method, URL, headers, proxy, retry policy), then tried: each
//! try follows redirects here, not in the client, so that every hop is checked against the
//! plugin's grants, passes the destination's politeness gate, sees the session's cookies and
//! loses its credentials when it leaves the origin (`redirect`); through a proxy, every hop's
//! name is resolved and checked by the host first (`resolver`). The body streams in under the
//! size limit (after decompression). Retries wrap whole tries.

mod clients;
mod cookies;
mod errors;
mod grant;
mod politeness;
mod proxy;
mod redirect;
mod resolver;
mod retry;
mod session;
mod shared;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

pub use grant::HostGrant;
pub use politeness::PluginRules;
pub use proxy::{Proxy, ProxyPool};
pub use retry::RetryPolicy;
pub use session::SessionState;
pub use shared::Outbound;

use crate::capabilities::LimitExceeded;
use crate::capabilities::bindings::http::{Error, Request, Response, RetryPolicy as WitRetryPolicy};
use crate::config::OutboundConfig;
use crate::task::Task;
use crate::task::events::{EventKind, Level};
use errors::{describe, transport_error};
use politeness::{Pass, Waited};
use retry::Verdict;
use shared::Route;

/// How often a task's events may say that its requests wait for politeness.
const WAIT_NOTE_INTERVAL: Duration = Duration::from_secs(1);

/// What one plugin version may do outbound, from its manifest.
pub struct PluginOutbound {
    /// Deny by default: no grant, no destination.
    pub grants: Vec<HostGrant>,
    pub max_response_bytes: u64,
    pub proxies: ProxyPool,
    /// The plugin's own politeness rules, on top of the host's.
    pub politeness: Option<PluginRules>,
}

/// One task's outbound HTTP.
pub struct TaskOutbound {
    shared: Arc<Outbound>,
    plugin: Arc<PluginOutbound>,
    task: Arc<Task>,
    /// Bodies one `fetch-all` may hold at once: they must fit in the guest's memory anyway,
    /// and the host buffers them all before handing them over.
    max_batch_bytes: u64,
    waits: Mutex<WaitNotes>,
    /// Sessions the task holds open.
    sessions: AtomicU32,
}

/// Politeness waits not yet reported in the task's events.
#[derive(Default)]
struct WaitNotes {
    last_note: Option<Instant>,
    count: u32,
    longest: Option<Waited>,
}

/// A request checked and ready to try.
struct Prepared {
    method: Method,
    url: Url,
    headers: HeaderMap,
    /// The session's default headers the request does not set itself.
    defaults: HeaderMap,
    explicit_cookie: bool,
    body: Option<Bytes>,
    timeout: Duration,
    route: Route,
    retry: Option<RetryPolicy>,
}

/// How one try ended.
enum Tried {
    Done(Result<Response, Error>),
    /// The answer's status asks for another try after this long.
    Again {
        wait: Duration,
        status: StatusCode,
    },
}

impl TaskOutbound {
    pub fn new(shared: Arc<Outbound>, plugin: Arc<PluginOutbound>, task: Arc<Task>, max_batch_bytes: u64) -> Self {
        Self { shared, plugin, task, max_batch_bytes, waits: Mutex::default(), sessions: AtomicU32::new(0) }
    }

    /// A session for this task: it takes the next proxy of the plugin's pool. A task holds at
    /// most `outbound.max_sessions_per_task` at once.
    pub fn new_session(&self) -> Result<SessionState, LimitExceeded> {
        let max = self.shared.config.max_sessions_per_task;
        self.sessions.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).map_err(
            |_| {
                LimitExceeded(format!(
                    "the task opened more than {max} sessions at once (outbound.max_sessions_per_task)"
                ))
            },
        )?;
        Ok(SessionState::new(self.plugin.proxies.next(), &self.shared.config))
    }

    /// The task these requests are for.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The host's outbound limits.
    pub fn config(&self) -> &OutboundConfig {
        &self.shared.config
    }

    /// A session of this task was dropped.
    pub fn session_closed(&self) {
        self.sessions.fetch_sub(1, Ordering::AcqRel);
    }

    /// A proxy the guest names: one of the manifest's pool, or (unless the pool is mandatory)
    /// one a grant names by its host, not by a wildcard.
    pub fn check_proxy(&self, text: &str) -> Result<Proxy, Error> {
        let proxy = Proxy::parse(text, false).map_err(Error::InvalidRequest)?;
        let pool = &self.plugin.proxies;
        if let Some(pooled) = pool.find(&proxy) {
            return Ok(pooled);
        }
        if pool.is_mandatory() {
            return Err(Error::Denied(format!(
                "proxy {proxy}: this plugin's manifest makes its proxy pool mandatory (proxies_mandatory); name one of its proxies"
            )));
        }
        grant::check_named(&self.plugin.grants, proxy.url())
            .map_err(|why| Error::Denied(format!("proxy {proxy}: {why}")))?;
        Ok(proxy)
    }

    /// A session's proxy as the guest sets it: checked, and never none when the pool is
    /// mandatory.
    pub fn check_session_proxy(&self, text: Option<&str>) -> Result<Option<Proxy>, Error> {
        match text {
            Some(text) => self.check_proxy(text).map(Some),
            None if self.plugin.proxies.is_mandatory() => Err(Error::Denied(
                "this plugin's manifest makes its proxy pool mandatory (proxies_mandatory): its requests cannot go direct"
                    .to_owned(),
            )),
            None => Ok(None),
        }
    }

    pub fn check_retry(&self, policy: &WitRetryPolicy) -> Result<RetryPolicy, Error> {
        RetryPolicy::from_guest(policy, self.shared.config.max_retry_attempts)
    }

    /// Sends one request: prepared, tried (and retried by its policy).
    pub async fn send(&self, request: Request, session: Option<&SessionState>) -> Result<Response, Error> {
        self.send_within(request, session, None).await
    }

    /// Sends all requests, at most `concurrency` at once; results in the order given.
    pub async fn fetch_all(
        &self,
        requests: Vec<Request>,
        concurrency: Option<u32>,
        session: Option<&SessionState>,
    ) -> Vec<Result<Response, Error>> {
        let config = &self.shared.config;
        let concurrency =
            concurrency.unwrap_or(config.fetch_all_concurrency).clamp(1, config.max_fetch_all_concurrency);
        let budget = AtomicI64::new(i64::try_from(self.max_batch_bytes).unwrap_or(i64::MAX));
        let budget = &budget;
        futures::stream::iter(requests)
            .map(|request| self.send_within(request, session, Some(budget)))
            .buffered(concurrency as usize)
            .collect()
            .await
    }

    async fn send_within(
        &self,
        request: Request,
        session: Option<&SessionState>,
        budget: Option<&AtomicI64>,
    ) -> Result<Response, Error> {
        let request = self.prepare(request, session)?;
        let mut attempt = 1;
        loop {
            let (wait, why) = match self.try_once(&request, session, attempt, budget).await {
                Tried::Done(Err(error)) => match request.retry.as_ref().map(|p| p.after_error(attempt, &error)) {
                    Some(Verdict::RetryAfter(wait)) => (wait, describe(&error)),
                    _ => return Err(error),
                },
                Tried::Done(Ok(response)) => return Ok(response),
                Tried::Again { wait, status } => (wait, format!("answered {status}")),
            };
            let attempts = request.retry.as_ref().map_or(1, RetryPolicy::attempts);
            self.note(
                Level::Info,
                format!(
                    "retrying {} {} in {} ms (try {} of {attempts}): {why}",
                    request.method,
                    request.url,
                    wait.as_millis(),
                    attempt + 1
                ),
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn prepare(&self, request: Request, session: Option<&SessionState>) -> Result<Prepared, Error> {
        let method = Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::InvalidRequest(format!("invalid method {:?}", request.method)))?;
        let url = Url::parse(&request.url)
            .map_err(|e| Error::InvalidRequest(format!("invalid URL {:?}: {e}", request.url)))?;
        let headers = header_map(&request.headers)?;
        let explicit_cookie = headers.contains_key(COOKIE);
        let mut defaults = HeaderMap::new();
        if let Some(session) = session {
            for (name, value) in header_map(&session.default_headers())? {
                if let Some(name) = name.filter(|name| !headers.contains_key(name)) {
                    defaults.insert(name, value);
                }
            }
        }
        let route = match (&request.proxy, session) {
            (Some(text), _) => Route::Via(self.check_proxy(text)?),
            (None, Some(session)) => session.proxy().map_or(Route::Direct, Route::Via),
            (None, None) => self.plugin.proxies.next().map_or(Route::Direct, Route::Via),
        };
        let retry = match &request.retry {
            Some(policy) => Some(self.check_retry(policy)?),
            None => session.and_then(SessionState::retry),
        };
        Ok(Prepared {
            retry: retry.filter(|p| p.covers(&method)),
            method,
            url,
            headers,
            defaults,
            explicit_cookie,
            body: request.body.map(Bytes::from),
            timeout: request
                .timeout_ms
                .map_or(self.shared.config.request_timeout(), |ms| Duration::from_millis(ms.into())),
            route,
        })
    }

    /// One try: redirects followed, then either the answer or a status worth retrying. Its
    /// timeout runs from when politeness lets the first hop through: a request waiting for
    /// its turn is not failed for waiting.
    async fn try_once(
        &self,
        request: &Prepared,
        session: Option<&SessionState>,
        attempt: u32,
        budget: Option<&AtomicI64>,
    ) -> Tried {
        let first = match self.check_destination(&request.url) {
            Ok(host) => self.admit(&host).await,
            Err(error) => return Tried::Done(Err(error)),
        };
        let deadline = Instant::now() + request.timeout;
        let tried = async {
            let (response, url, pass) = match self.follow(request, session, first).await {
                Ok(answered) => answered,
                Err(error) => return Tried::Done(Err(error)),
            };
            if let Some(policy) = &request.retry
                && let Verdict::RetryAfter(wait) = policy.after_status(attempt, response.status(), response.headers())
            {
                return Tried::Again { wait, status: response.status() };
            }
            Tried::Done(self.read(response, url, pass, budget).await)
        };
        tokio::time::timeout_at(deadline, tried).await.unwrap_or_else(|_| {
            Tried::Done(Err(Error::Timeout(format!(
                "{} did not complete within {} ms",
                request.url,
                request.timeout.as_millis()
            ))))
        })
    }

    /// Waits for the destination's politeness gates.
    async fn admit(&self, host: &str) -> Pass {
        let (pass, waited) = self.shared.politeness.enter(self.plugin.politeness.as_ref(), host).await;
        if let Some(waited) = waited {
            self.note_wait(waited);
        }
        pass
    }

    /// Sends the request and follows its redirects; `first` is the first hop's pass, every
    /// later hop is checked and admitted here.
    async fn follow(
        &self,
        request: &Prepared,
        session: Option<&SessionState>,
        first: Pass,
    ) -> Result<(reqwest::Response, Url, Pass), Error> {
        let mut method = request.method.clone();
        let mut url = request.url.clone();
        let mut headers = request.headers.clone();
        let mut defaults = request.defaults.clone();
        let mut body = request.body.clone();
        let max_redirects = self.shared.config.max_redirects;
        let mut first = Some(first);

        for hop in 0..=max_redirects {
            let pass = if let Some(pass) = first.take() {
                pass
            } else {
                let host = self.check_destination(&url)?;
                self.admit(&host).await
            };
            if let Route::Via(_) = &request.route {
                self.shared.resolver.check_behind_proxy(&url).await?;
            }
            let mut hop_headers = headers.clone();
            hop_headers.extend(defaults.clone());
            if let Some(session) = session.filter(|_| !request.explicit_cookie) {
                let cookies = session.cookie_header(&url);
                if !cookies.is_empty() {
                    let value =
                        HeaderValue::from_str(&cookies).map_err(|e| Error::InvalidRequest(format!("cookie: {e}")))?;
                    hop_headers.insert(COOKIE, value);
                }
            }
            let client = self.shared.client(&request.route, &url)?;
            let mut builder = client.request(method.clone(), url.clone()).headers(hop_headers);
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(|e| transport_error(&url, &e, request.route.proxy()))?;
            if let (StatusCode::PROXY_AUTHENTICATION_REQUIRED, Route::Via(proxy)) = (response.status(), &request.route)
            {
                return Err(Error::Proxy(format!(
                    "proxy {proxy} refused the request: 407 Proxy Authentication Required"
                )));
            }
            if let Some(session) = session {
                session.store_cookies(response.headers(), &url);
            }

            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            if let (true, Some(location)) = (response.status().is_redirection(), location) {
                if hop == max_redirects {
                    return Err(Error::TooManyRedirects(max_redirects));
                }
                let next = url.join(location).map_err(|e| {
                    Error::Protocol(format!("{url} redirected to an invalid location {location:?}: {e}"))
                })?;
                if redirect::leaves_origin(&url, &next) {
                    redirect::drop_credentials(&mut headers);
                    defaults.clear();
                }
                url = next;
                if redirect::becomes_get(response.status(), &method) {
                    method = Method::GET;
                    body = None;
                    headers.remove(CONTENT_TYPE);
                    headers.remove(CONTENT_LENGTH);
                }
                continue;
            }
            return Ok((response, url, pass));
        }
        Err(Error::TooManyRedirects(max_redirects))
    }

    /// The destination policy, for every hop of every request: http(s) only, and a grant.
    /// Returns the key of the host's politeness gate.
    fn check_destination(&self, url: &Url) -> Result<String, Error> {
        match (url.scheme(), url.host()) {
            ("http" | "https", Some(host)) if !url.host_str().unwrap_or_default().is_empty() => {
                grant::check(&self.plugin.grants, url).map_err(Error::Denied)?;
                Ok(politeness::host_key(&host))
            }
            ("http" | "https", _) => Err(Error::InvalidRequest(format!("{url} has no host"))),
            (other, _) => Err(Error::Denied(format!("scheme {other}: is not allowed, only http and https"))),
        }
    }

    async fn read(
        &self,
        response: reqwest::Response,
        url: Url,
        pass: Pass,
        budget: Option<&AtomicI64>,
    ) -> Result<Response, Error> {
        let limit = self.plugin.max_response_bytes;
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
            // A body that breaks off is the connection's failure, whoever carries it.
            let chunk = chunk.map_err(|e| transport_error(&url, &e, None))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(Error::TooLarge(limit));
            }
            if let Some(budget) = budget {
                let len = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
                if budget.fetch_sub(len, Ordering::Relaxed) < len {
                    return Err(Error::TooLarge(self.max_batch_bytes));
                }
            }
            body.extend_from_slice(&chunk);
        }
        drop(pass);
        Ok(Response { status, headers, body, url: url.into() })
    }

    /// Reports politeness waits in the task's events: the first at once, then at most one
    /// summary per `WAIT_NOTE_INTERVAL`.
    fn note_wait(&self, waited: Waited) {
        let mut notes = self.waits.lock();
        notes.count += 1;
        if notes.longest.as_ref().is_none_or(|l| waited.duration > l.duration) {
            notes.longest = Some(waited);
        }
        if notes.last_note.is_some_and(|at| at.elapsed() < WAIT_NOTE_INTERVAL) {
            return;
        }
        let count = std::mem::take(&mut notes.count);
        notes.last_note = Some(Instant::now());
        if let Some(longest) = notes.longest.take() {
            let requests = if count == 1 { "1 request".to_owned() } else { format!("{count} requests") };
            self.note(
                Level::Info,
                format!(
                    "politeness: {requests} waited for a turn, longest {} ms for {} ({})",
                    longest.duration.as_millis(),
                    longest.host,
                    longest.limits
                ),
            );
        }
    }

    fn note(&self, level: Level, message: String) {
        self.task.events.push(EventKind::Log { level, message });
    }
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidRequest(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::InvalidRequest(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}
