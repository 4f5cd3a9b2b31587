//! Proxies: parsing and showing them without their credentials, and the round-robin pool a
//! manifest names (and whether it is mandatory).

use std::sync::atomic::{AtomicUsize, Ordering};

use url::Url;

/// An HTTP(S) proxy, `http://user:pass@host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proxy {
    url: Url,
    /// Named by the operator in the manifest's pool: it may sit on a private address. A proxy
    /// a guest names is held to the plugin's `allowed_hosts` like any destination.
    pooled: bool,
}

impl Proxy {
    pub fn parse(text: &str, pooled: bool) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("invalid proxy URL {:?}: {e}", redact_text(text)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("invalid proxy {}: use http://[user:pass@]host:port or https://...", redact(&url)));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(format!("invalid proxy {}: a proxy URL has no path or query", redact(&url)));
        }
        Ok(Self { url, pooled })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn is_pooled(&self) -> bool {
        self.pooled
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

/// The URL with its password replaced, for messages and logs.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.as_str().trim_end_matches('/').to_owned()
}

fn redact_text(text: &str) -> String {
    match text.split_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => text.to_owned(),
    }
}

/// The proxies of a manifest, handed out in turn.
#[derive(Default)]
pub struct ProxyPool {
    proxies: Vec<Proxy>,
    /// `proxies_mandatory`: every request leaves through one of `proxies`.
    mandatory: bool,
    turn: AtomicUsize,
}

impl ProxyPool {
    pub fn new(proxies: Vec<Proxy>, mandatory: bool) -> Self {
        Self { proxies, mandatory, turn: AtomicUsize::new(0) }
    }

    pub fn is_mandatory(&self) -> bool {
        self.mandatory
    }

    /// The pool's entry for the proxy a guest names (same scheme, host and port), with the
    /// operator's credentials.
    pub fn find(&self, named: &Proxy) -> Option<Proxy> {
        let endpoint =
            |url: &Url| (url.scheme().to_owned(), url.host_str().map(str::to_owned), url.port_or_known_default());
        self.proxies.iter().find(|p| endpoint(&p.url) == endpoint(&named.url)).cloned()
    }

    pub fn next(&self) -> Option<Proxy> {
        if self.proxies.is_empty() {
            return None;
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        Some(self.proxies[turn % self.proxies.len()].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_parse_and_hide_their_password() {
        let proxy = Proxy::parse("http://bob:secret@10.0.0.2:3128", true).unwrap();
        assert_eq!(proxy.to_string(), "http://bob:***@10.0.0.2:3128");
        for bad in ["socks5://10.0.0.2:1080", "http://10.0.0.2:3128/path", "not a url"] {
            assert!(Proxy::parse(bad, false).is_err(), "{bad}");
        }
        let err = Proxy::parse("ftp://bob:secret@x", false).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn the_pool_rotates() {
        let pool = ProxyPool::new(
            vec![Proxy::parse("http://a:1", true).unwrap(), Proxy::parse("http://b:1", true).unwrap()],
            false,
        );
        let hosts: Vec<String> = (0..4).map(|_| pool.next().unwrap().url().host_str().unwrap().to_owned()).collect();
        assert_eq!(hosts, ["a", "b", "a", "b"]);
        assert!(ProxyPool::default().next().is_none());
    }

    #[test]
    fn a_guest_names_a_pool_proxy_without_its_credentials() {
        let pool = ProxyPool::new(vec![Proxy::parse("http://bob:secret@10.0.0.2:3128", true).unwrap()], true);
        let found = pool.find(&Proxy::parse("http://10.0.0.2:3128", false).unwrap()).unwrap();
        assert!(found.is_pooled());
        assert_eq!(found.url().password(), Some("secret"));
        assert!(pool.find(&Proxy::parse("http://10.0.0.2:3129", false).unwrap()).is_none());
    }
}
