//! `http-probe`: runs a script of requests and reports each outcome, for tests of the host's
//! outbound policy (grants, proxies, retries, sessions, limits).
//!
//! Input: `{"sessions": [{"proxy": P, "retry": R}, ..], "steps": [STEP, ..]}` where a STEP is
//! a request `{"method", "url", "session": i, "proxy", "retry", "timeout_ms", "headers": [[k, v]], "body"}`
//! (only `url` required) or a fan-out `{"fetch_all": [REQUEST, ..], "concurrency": C, "session": i}`,
//! and R is `{"attempts", "initial_ms", "max_ms", "statuses", "any_method"}`.
//!
//! Output: `{"results": [..]}`, one per step (a list for a fan-out): `{"status", "url",
//! "body_len", "body"}` (body as text, first 4 KiB) or `{"error": {"kind", "message"}}`.

use std::time::Duration;

use ignareo_sdk::Error;
use ignareo_sdk::http::{self, HttpError, Request, RequestBuilder, Response, Retry, Session};
use serde::Deserialize;
use serde_json::{Value, json};

const BODY_SHOWN: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    sessions: Vec<SessionSpec>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionSpec {
    proxy: Option<String>,
    retry: Option<RetrySpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Step {
    FetchAll { fetch_all: Vec<RequestSpec>, concurrency: Option<u32>, session: Option<usize> },
    One(RequestSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    #[serde(default = "get")]
    method: String,
    url: String,
    session: Option<usize>,
    proxy: Option<String>,
    retry: Option<RetrySpec>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrySpec {
    attempts: u32,
    initial_ms: Option<u64>,
    max_ms: Option<u64>,
    statuses: Option<Vec<u16>>,
    #[serde(default)]
    any_method: bool,
}

fn get() -> String {
    "GET".to_owned()
}

impl RetrySpec {
    fn policy(&self) -> Retry {
        let mut retry = Retry::attempts(self.attempts).backoff(
            Duration::from_millis(self.initial_ms.unwrap_or(50)),
            Duration::from_millis(self.max_ms.unwrap_or(5_000)),
        );
        if let Some(statuses) = &self.statuses {
            retry = retry.statuses(statuses);
        }
        if self.any_method { retry.any_method() } else { retry }
    }
}

fn run(input: Input) -> Result<Value, Error> {
    let mut sessions = Vec::with_capacity(input.sessions.len());
    for spec in &input.sessions {
        let session = Session::new();
        if let Some(proxy) = &spec.proxy {
            session.proxy(Some(proxy))?;
        }
        if let Some(retry) = &spec.retry {
            session.retry(Some(retry.policy()))?;
        }
        sessions.push(session);
    }
    let session = |index: Option<usize>| -> Result<Option<&Session>, Error> {
        index.map(|i| sessions.get(i).ok_or_else(|| Error::invalid_input(format!("no session {i}")))).transpose()
    };

    let mut results = Vec::with_capacity(input.steps.len());
    for step in &input.steps {
        match step {
            Step::One(spec) => {
                let outcome = build(session(spec.session)?, spec).send();
                results.push(report(outcome));
            }
            Step::FetchAll { fetch_all, concurrency, session: index } => {
                let requests =
                    fetch_all.iter().map(|spec| build(None, spec).build()).collect::<Result<Vec<Request>, _>>()?;
                let outcomes = match session(*index)? {
                    Some(s) => s.fetch_all(requests, *concurrency),
                    None => http::fetch_all(requests, *concurrency),
                };
                results.push(Value::Array(outcomes.into_iter().map(report).collect()));
            }
        }
    }
    Ok(json!({ "results": results }))
}

fn build<'s>(session: Option<&'s Session>, spec: &RequestSpec) -> RequestBuilder<'s> {
    let mut request = match session {
        Some(s) => s.request(&spec.method, &spec.url),
        None => http::request(&spec.method, &spec.url),
    };
    for (name, value) in &spec.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &spec.body {
        request = request.body(body.as_bytes().to_vec());
    }
    if let Some(proxy) = &spec.proxy {
        request = request.proxy(proxy);
    }
    if let Some(retry) = &spec.retry {
        request = request.retry(retry.policy());
    }
    if let Some(ms) = spec.timeout_ms {
        request = request.timeout(Duration::from_millis(ms));
    }
    request
}

fn report(outcome: Result<Response, HttpError>) -> Value {
    match outcome {
        Ok(response) => {
            let text = String::from_utf8_lossy(response.bytes());
            let shown: String = text.chars().take(BODY_SHOWN).collect();
            json!({ "status": response.status(), "url": response.url(), "body_len": response.bytes().len(), "body": shown })
        }
        Err(error) => {
            let kind = match &error {
                HttpError::Denied(_) => "denied",
                HttpError::Timeout(_) => "timeout",
                HttpError::Connect(_) => "connect",
                HttpError::TooLarge(_) => "too_large",
                HttpError::InvalidRequest(_) => "invalid_request",
                HttpError::TooManyRedirects(_) => "too_many_redirects",
                HttpError::Protocol(_) => "protocol",
                HttpError::Proxy(_) => "proxy",
                HttpError::Status { .. } => "status",
                HttpError::Decode(_) => "decode",
            };
            json!({ "error": { "kind": kind, "message": error.to_string() } })
        }
    }
}

ignareo_sdk::task!(run);
