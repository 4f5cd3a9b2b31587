//! What a failed request tells the guest: reqwest's errors classified into the `http`
//! interface's error cases, and their one-line descriptions for the task's events.

use url::Url;

use super::proxy::Proxy;
use super::resolver::PrivateAddress;
use crate::capabilities::bindings::http::Error;

/// Classifies a client error: a refused private address is `denied`; through a proxy, a
/// failure to connect is the proxy's, unless it is the destination's TLS refused inside the
/// tunnel of a plain-HTTP proxy (the only TLS such a link has is the destination's).
pub(super) fn transport_error(url: &Url, error: &reqwest::Error, via: Option<&Proxy>) -> Error {
    let mut message = format!("{url}: {error}");
    let mut tls_refused = false;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(private) = cause.downcast_ref::<PrivateAddress>() {
            return Error::Denied(private.to_string());
        }
        tls_refused |= is_tls_error(cause);
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    match via {
        Some(proxy) if error.is_connect() && tls_refused && proxy.url().scheme() == "http" => {
            Error::Connect(format!("through proxy {proxy}: {message}"))
        }
        Some(proxy) if error.is_connect() => Error::Proxy(format!("through proxy {proxy}: {message}")),
        _ if error.is_timeout() => Error::Timeout(message),
        _ if error.is_connect() => Error::Connect(message),
        _ if error.is_builder() => Error::InvalidRequest(message),
        _ => Error::Protocol(message),
    }
}

/// Whether `cause` is rustls refusing a handshake, as it is or inside the I/O error that
/// carries it (an I/O error's `source` skips the error it wraps).
fn is_tls_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<rustls::Error>()
        || cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>)
}

/// One line for the task's events.
pub(super) fn describe(error: &Error) -> String {
    match error {
        Error::Denied(m)
        | Error::Timeout(m)
        | Error::Connect(m)
        | Error::InvalidRequest(m)
        | Error::Protocol(m)
        | Error::Proxy(m) => m.clone(),
        Error::TooLarge(limit) => format!("response larger than {limit} bytes"),
        Error::TooManyRedirects(limit) => format!("more than {limit} redirects"),
    }
}
