//! Retry policies: which failures are tried again, and how long to wait before each try
//! (exponential backoff with jitter, or the server's `Retry-After`).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use crate::capabilities::bindings::http::{Error, RetryPolicy as WitRetryPolicy};

/// Statuses retried when a policy does not list its own.
const DEFAULT_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// A checked retry policy.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    statuses: Vec<u16>,
    retry_errors: bool,
    any_method: bool,
}

/// What to do after a try.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Stop,
    RetryAfter(Duration),
}

impl RetryPolicy {
    /// Checks a guest's policy against the host's ceiling on attempts.
    pub fn from_guest(policy: &WitRetryPolicy, max_attempts: u32) -> Result<Self, Error> {
        if !(1..=max_attempts).contains(&policy.attempts) {
            return Err(Error::InvalidRequest(format!(
                "retry attempts must be between 1 and {max_attempts} (outbound.max_retry_attempts), got {}",
                policy.attempts
            )));
        }
        if policy.initial_backoff_ms > policy.max_backoff_ms {
            return Err(Error::InvalidRequest(format!(
                "retry initial-backoff-ms ({}) exceeds max-backoff-ms ({})",
                policy.initial_backoff_ms, policy.max_backoff_ms
            )));
        }
        if let Some(bad) = policy.statuses.iter().flatten().find(|s| !(100..=599).contains(*s)) {
            return Err(Error::InvalidRequest(format!("retry status {bad} is not an HTTP status")));
        }
        Ok(Self {
            attempts: policy.attempts,
            initial_backoff: Duration::from_millis(policy.initial_backoff_ms.into()),
            max_backoff: Duration::from_millis(policy.max_backoff_ms.into()),
            statuses: policy.statuses.clone().unwrap_or_else(|| DEFAULT_STATUSES.to_vec()),
            retry_errors: policy.retry_errors,
            any_method: policy.any_method,
        })
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether a request of this method may be sent more than once.
    pub fn covers(&self, method: &Method) -> bool {
        self.any_method || method.is_idempotent()
    }

    /// After try `attempt` (from 1) answered `status`.
    pub fn after_status(&self, attempt: u32, status: StatusCode, headers: &HeaderMap) -> Verdict {
        if attempt >= self.attempts || !self.statuses.contains(&status.as_u16()) {
            return Verdict::Stop;
        }
        match retry_after(headers) {
            // The server asks for more patience than the policy has: its answer stands.
            Some(wait) if wait > self.max_backoff => Verdict::Stop,
            Some(wait) => Verdict::RetryAfter(wait),
            None => Verdict::RetryAfter(self.backoff(attempt)),
        }
    }

    /// After try `attempt` failed with `error`.
    pub fn after_error(&self, attempt: u32, error: &Error) -> Verdict {
        let transient = matches!(error, Error::Connect(_) | Error::Timeout(_) | Error::Protocol(_) | Error::Proxy(_));
        if attempt >= self.attempts || !self.retry_errors || !transient {
            return Verdict::Stop;
        }
        Verdict::RetryAfter(self.backoff(attempt))
    }

    /// initial × 2^(attempt-1), capped, then drawn from its upper half so that clients that
    /// failed together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.initial_backoff.saturating_mul(1u32 << (attempt - 1).min(20));
        let capped = exponential.min(self.max_backoff);
        capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32) -> RetryPolicy {
        let wit = WitRetryPolicy {
            attempts,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            statuses: None,
            retry_errors: true,
            any_method: false,
        };
        RetryPolicy::from_guest(&wit, 10).unwrap()
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let p = policy(10);
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_000), (9, 1_000)] {
            let wait = p.backoff(attempt).as_millis();
            assert!((full / 2..=full).contains(&wait), "attempt {attempt}: {wait} ms");
        }
    }

    #[test]
    fn statuses_errors_and_retry_after() {
        let p = policy(3);
        let none = HeaderMap::new();
        assert!(matches!(p.after_status(1, StatusCode::SERVICE_UNAVAILABLE, &none), Verdict::RetryAfter(_)));
        assert_eq!(p.after_status(3, StatusCode::SERVICE_UNAVAILABLE, &none), Verdict::Stop);
        assert_eq!(p.after_status(1, StatusCode::NOT_FOUND, &none), Verdict::Stop);
        let mut asks = HeaderMap::new();
        asks.insert(RETRY_AFTER, "1".parse().unwrap());
        assert_eq!(
            p.after_status(1, StatusCode::TOO_MANY_REQUESTS, &asks),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
        asks.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(p.after_status(1, StatusCode::TOO_MANY_REQUESTS, &asks), Verdict::Stop);

        assert!(matches!(p.after_error(1, &Error::Connect("refused".into())), Verdict::RetryAfter(_)));
        assert_eq!(p.after_error(1, &Error::Denied("x".into())), Verdict::Stop);
        assert!(!p.covers(&Method::POST) && p.covers(&Method::PUT));
    }

    #[test]
    fn bad_policies_are_refused() {
        let mut wit = WitRetryPolicy {
            attempts: 0,
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
            statuses: None,
            retry_errors: true,
            any_method: false,
        };
        assert!(RetryPolicy::from_guest(&wit, 10).is_err());
        wit.attempts = 11;
        assert!(RetryPolicy::from_guest(&wit, 10).is_err());
        wit.attempts = 2;
        wit.initial_backoff_ms = 5;
        assert!(RetryPolicy::from_guest(&wit, 10).is_err());
        wit.initial_backoff_ms = 1;
        wit.statuses = Some(vec![1000]);
        assert!(RetryPolicy::from_guest(&wit, 10).is_err());
    }
}
