//! The state a guest's `session` keeps between requests: a cookie jar (see [`Jar`]), default
//! headers, a proxy and a retry policy. One per session handle: nothing here is shared between
//! sessions or tasks. What a guest or a server can make it hold is capped
//! (`outbound.max_session_*`): past a cap the task ends with `resource-limit`.

use cookie_store::RawCookie;
use parking_lot::Mutex;
use reqwest::header::{HeaderMap, SET_COOKIE};
use url::Url;

use super::cookies::{Jar, JarLimits};
use super::proxy::Proxy;
use super::retry::RetryPolicy;
use crate::capabilities::LimitExceeded;
use crate::config::OutboundConfig;

pub struct SessionState {
    jar: Mutex<Jar>,
    default_headers: Mutex<Vec<(String, String)>>,
    max_headers: usize,
    max_header_bytes: usize,
    proxy: Mutex<Option<Proxy>>,
    retry: Mutex<Option<RetryPolicy>>,
}

impl SessionState {
    pub fn new(proxy: Option<Proxy>, config: &OutboundConfig) -> Self {
        let kib = |kb: u64| usize::try_from(kb.saturating_mul(1024)).unwrap_or(usize::MAX);
        let jar = JarLimits { cookies: config.max_session_cookies as usize, bytes: kib(config.max_session_cookie_kb) };
        Self {
            jar: Mutex::new(Jar::new(jar)),
            default_headers: Mutex::default(),
            max_headers: config.max_session_headers as usize,
            max_header_bytes: kib(config.max_session_header_kb),
            proxy: Mutex::new(proxy),
            retry: Mutex::default(),
        }
    }

    /// Sets (or replaces) a default header, within the session's count and bytes.
    pub fn set_default_header(&self, name: String, value: String) -> Result<(), LimitExceeded> {
        let mut headers = self.default_headers.lock();
        let others = headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case(&name));
        let (count, bytes) =
            others.fold((1, name.len() + value.len()), |(n, b), (k, v)| (n + 1, b + k.len() + v.len()));
        if count > self.max_headers || bytes > self.max_header_bytes {
            return Err(LimitExceeded(format!(
                "the task set {count} default headers of {bytes} bytes on a session: outbound.max_session_headers is {}, \
                 outbound.max_session_header_kb {}",
                self.max_headers,
                self.max_header_bytes / 1024
            )));
        }
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        headers.push((name, value));
        Ok(())
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
        self.jar.lock().header(url)
    }

    pub fn store_cookies(&self, headers: &HeaderMap, url: &Url) {
        let cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| RawCookie::parse(v.to_owned()).ok());
        self.jar.lock().store(cookies, url);
    }

    /// Ends the task if a response tried to fill the jar past its cap.
    pub fn check_jar(&self) -> Result<(), LimitExceeded> {
        self.jar.lock().take_overflow().map_or(Ok(()), |why| Err(LimitExceeded(why)))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn session(configure: impl FnOnce(&mut OutboundConfig)) -> SessionState {
        let mut config = OutboundConfig::default();
        configure(&mut config);
        SessionState::new(None, &config)
    }

    fn set_cookies(session: &SessionState, url: &str, cookies: &[&str]) {
        let mut headers = HeaderMap::new();
        for cookie in cookies {
            headers.append(SET_COOKIE, HeaderValue::from_str(cookie).unwrap());
        }
        session.store_cookies(&headers, &Url::parse(url).unwrap());
    }

    fn cookies_for(session: &SessionState, url: &str) -> String {
        session.cookie_header(&Url::parse(url).unwrap())
    }

    #[test]
    fn cookies_for_a_public_suffix_are_refused() {
        let session = session(|_| ());
        set_cookies(&session, "http://shop.example.com/", &["a=1; Domain=com", "b=2; Domain=.example.com"]);
        set_cookies(&session, "http://shop.example.co.uk/", &["c=3; Domain=co.uk", "d=4; Domain=uk"]);
        assert_eq!(cookies_for(&session, "http://other.com/"), "");
        assert_eq!(cookies_for(&session, "http://bank.co.uk/"), "");
        assert_eq!(cookies_for(&session, "http://www.example.com/"), "b=2");
        assert_eq!(cookies_for(&session, "http://shop.example.co.uk/"), "");
        session.check_jar().unwrap();
    }

    #[test]
    fn the_jar_holds_its_count_and_says_when_a_response_passes_it() {
        let session = session(|c| c.max_session_cookies = 3);
        set_cookies(&session, "http://example.com/", &["a=1", "b=2", "c=3"]);
        set_cookies(&session, "http://example.com/", &["a=10"]);
        session.check_jar().unwrap();
        set_cookies(&session, "http://example.com/", &["d=4", "e=5"]);
        let error = session.check_jar().unwrap_err().to_string();
        assert!(error.contains("outbound.max_session_cookies is 3"), "{error}");
        assert_eq!(cookies_for(&session, "http://example.com/").split("; ").count(), 3);
    }

    #[test]
    fn the_jar_holds_its_bytes() {
        let session = session(|c| c.max_session_cookie_kb = 1);
        let big = format!("a={}", "x".repeat(2000));
        set_cookies(&session, "http://example.com/", &[&big]);
        assert!(session.check_jar().unwrap_err().to_string().contains("outbound.max_session_cookie_kb 1"));
        assert_eq!(cookies_for(&session, "http://example.com/"), "");
    }

    #[test]
    fn default_headers_are_capped_in_count_and_bytes_and_replacing_one_is_free() {
        let session = session(|c| {
            c.max_session_headers = 2;
            c.max_session_header_kb = 1;
        });
        session.set_default_header("a".into(), "1".into()).unwrap();
        session.set_default_header("b".into(), "2".into()).unwrap();
        session.set_default_header("A".into(), "3".into()).unwrap();
        let error = session.set_default_header("c".into(), "4".into()).unwrap_err().to_string();
        assert!(error.contains("outbound.max_session_headers is 2"), "{error}");
        let error = session.set_default_header("b".into(), "x".repeat(1024)).unwrap_err().to_string();
        assert!(error.contains("outbound.max_session_header_kb 1"), "{error}");
        assert_eq!(session.default_headers(), vec![("b".into(), "2".into()), ("A".into(), "3".into())]);
    }
}
