//! What a redirect changes in the request that follows it: a 303 (or a 301/302 after a POST)
//! becomes a GET without a body, and credentials never follow a redirect to another origin.
//!
//! A plugin that sends `Authorization` to its API must not hand it to whatever host the API
//! redirects to: `Authorization`, `Cookie`, `Proxy-Authorization` and `WWW-Authenticate` are
//! dropped when a hop leaves the origin (scheme, host, port), as browsers and reqwest do, and so
//! are the session's default headers, which often carry an API key. A session's cookie jar still
//! applies at every hop: its cookies follow their own domain rules.

use reqwest::header::{AUTHORIZATION, COOKIE, HeaderMap, PROXY_AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use url::Url;

/// 303 always, and 301/302 after anything but GET/HEAD, turn into a GET without body, as
/// browsers and `requests` do.
pub(super) fn becomes_get(status: StatusCode, method: &Method) -> bool {
    status == StatusCode::SEE_OTHER
        || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
            && *method != Method::GET
            && *method != Method::HEAD)
}

/// Whether a redirect from `from` to `to` leaves the origin.
pub(super) fn leaves_origin(from: &Url, to: &Url) -> bool {
    from.origin() != to.origin()
}

/// Removes the headers that carry credentials for one origin.
pub(super) fn drop_credentials(headers: &mut HeaderMap) {
    for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_scheme_host_or_port_is_another_origin() {
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(!leaves_origin(&url("http://127.0.0.1:80/a"), &url("http://127.0.0.1/b?c")));
        assert!(leaves_origin(&url("http://127.0.0.1:8080/"), &url("http://127.0.0.2:8080/")));
        assert!(leaves_origin(&url("http://127.0.0.1:8080/"), &url("http://127.0.0.1:8081/")));
        assert!(leaves_origin(&url("https://example.com/"), &url("http://example.com/")));
        assert!(leaves_origin(&url("https://example.com/"), &url("https://api.example.com/")));
    }

    #[test]
    fn credentials_are_dropped_and_the_rest_kept() {
        let mut headers = HeaderMap::new();
        for name in ["authorization", "cookie", "proxy-authorization", "www-authenticate", "accept"] {
            headers.insert(reqwest::header::HeaderName::from_static(name), "x".parse().unwrap());
        }
        drop_credentials(&mut headers);
        assert_eq!(headers.keys().map(reqwest::header::HeaderName::as_str).collect::<Vec<_>>(), ["accept"]);
    }
}
