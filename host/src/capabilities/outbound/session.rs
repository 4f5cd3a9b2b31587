//! The state a guest's `session` keeps between requests: a cookie jar with the domain, path
//! and expiry rules of a real cookie store, default headers, a proxy and a retry policy. One
//! per session handle: nothing here is shared between sessions or tasks.

use cookie_store::{CookieStore, RawCookie};
use parking_lot::Mutex;
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
        let mut headers = self.default_headers.lock();
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }

    pub fn default_headers(&self) -> Vec<(String, String)> {
        self.default_headers.lock().clone()
    }

    pub fn set_proxy(&self, proxy: Option<Proxy>) {
        *self.proxy.lock() = proxy;
    }

    pub fn proxy(&self) -> Option<Proxy> {
        self.proxy.lock().clone()
    }

    pub fn set_retry(&self, policy: Option<RetryPolicy>) {
        *self.retry.lock() = policy;
    }

    pub fn retry(&self) -> Option<RetryPolicy> {
        self.retry.lock().clone()
    }

    /// The `Cookie` header value for `url`, empty if no cookie applies.
    pub fn cookie_header(&self, url: &Url) -> String {
        let jar = self.jar.lock();
        jar.get_request_values(url).map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    pub fn store_cookies(&self, headers: &HeaderMap, url: &Url) {
        let cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| RawCookie::parse(v.to_owned()).ok());
        self.jar.lock().store_response_cookies(cookies, url);
    }
}
