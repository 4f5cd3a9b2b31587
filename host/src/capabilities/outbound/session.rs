//! The state a guest's `session` keeps between requests: a cookie jar with the domain, path
//! and expiry rules of a real cookie store, default headers, a proxy and a retry policy. One
//! per session handle: nothing here is shared between sessions or tasks.

use std::sync::{Mutex, PoisonError};

use cookie_store::{CookieStore, RawCookie};
use reqwest::header::{HeaderMap, SET_COOKIE};
use url::Url;

use super::proxy::Proxy;
use super::retry::RetryPolicy;

#[derive(Default)]
pub struct SessionState {
    jar: Mutex<CookieStore>,
    default_headers: Mutex<Vec<(String, String)>>,
    proxy: Mutex<Option<Proxy>>,
    retry: Mutex<Option<RetryPolicy>>,
}

impl SessionState {
    pub fn new(proxy: Option<Proxy>) -> Self {
        Self { proxy: Mutex::new(proxy), ..Self::default() }
    }

    pub fn set_default_header(&self, name: String, value: String) {
        let mut headers = lock(&self.default_headers);
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }

    pub fn default_headers(&self) -> Vec<(String, String)> {
        lock(&self.default_headers).clone()
    }

    pub fn set_proxy(&self, proxy: Option<Proxy>) {
        *lock(&self.proxy) = proxy;
    }

    pub fn proxy(&self) -> Option<Proxy> {
        lock(&self.proxy).clone()
    }

    pub fn set_retry(&self, policy: Option<RetryPolicy>) {
        *lock(&self.retry) = policy;
    }

    pub fn retry(&self) -> Option<RetryPolicy> {
        lock(&self.retry).clone()
    }

    /// The `Cookie` header value for `url`, empty if no cookie applies.
    pub fn cookie_header(&self, url: &Url) -> String {
        let jar = lock(&self.jar);
        jar.get_request_values(url).map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    pub fn store_cookies(&self, headers: &HeaderMap, url: &Url) {
        let cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| RawCookie::parse(v.to_owned()).ok());
        lock(&self.jar).store_response_cookies(cookies, url);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
