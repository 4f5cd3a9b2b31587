//! The HTTP clients, one per route (direct, or a proxy) and destination origin, kept so that
//! the idle connections of the whole process have a bound: a client keeps at most
//! `outbound.pool_idle_per_host` idle connections for its one origin, and at most
//! `outbound.max_idle_connections / outbound.pool_idle_per_host` clients are kept, the least
//! recently used dropped first. A dropped client closes its idle connections at once, and the
//! connections still busy with a request when that request ends: reqwest's pools are per client
//! and have no bound across hosts, so the bound comes from how many pools there are.

use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;
use url::Url;

use super::proxy::Proxy;

pub struct Clients {
    kept: Mutex<LruCache<Key, reqwest::Client>>,
}

/// Where a client's connections go.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    proxy: Option<Proxy>,
    /// `scheme://host[:port]`.
    origin: String,
}

impl Clients {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self { kept: Mutex::new(LruCache::new(capacity)) }
    }

    /// The client for requests to `url`'s origin through `proxy` (or direct), built by `build`
    /// the first time (outside the lock: building one costs the TLS configuration).
    pub fn get_or_build<E>(
        &self,
        proxy: Option<&Proxy>,
        url: &Url,
        build: impl FnOnce() -> Result<reqwest::Client, E>,
    ) -> Result<reqwest::Client, E> {
        let key = Key { proxy: proxy.cloned(), origin: url.origin().ascii_serialization() };
        if let Some(client) = self.kept.lock().get(&key) {
            return Ok(client.clone());
        }
        let built = build()?;
        Ok(self.kept.lock().get_or_insert(key, || built).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_route_and_origin_and_no_more_than_the_capacity() {
        let clients = Clients::new(2);
        let built = std::cell::Cell::new(0);
        let get = |proxy: Option<&Proxy>, url: &str| {
            clients
                .get_or_build(proxy, &Url::parse(url).unwrap(), || {
                    built.set(built.get() + 1);
                    reqwest::Client::builder().build()
                })
                .unwrap();
        };
        let proxy = Proxy::parse("http://10.0.0.2:3128", true).unwrap();
        get(None, "http://a.example/1");
        get(None, "http://a.example:80/2");
        get(Some(&proxy), "http://a.example/3");
        assert_eq!(built.get(), 2, "the same origin shares a client; a proxy has its own");
        get(None, "https://a.example/");
        get(None, "http://a.example/");
        assert_eq!(built.get(), 4, "the least recently used client went when a third was needed");
        assert_eq!(clients.kept.lock().len(), 2);
    }
}
