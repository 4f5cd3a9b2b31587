//! Name resolution: the system resolver, asynchronous to the tasks, bounded in time and in
//! lookups at once, with the operator's pinned names (`outbound.static_hosts`) answered first.
//!
//! A grant names a host; the address behind the name is checked here, so a name cannot lead a
//! plugin to 127.0.0.1 or the cloud metadata service, whatever its DNS says (and however it
//! changes between requests). For a direct request the check is at connect time and keeps only
//! the public addresses ([`ClientDns`]). Through a proxy, the proxy resolves the name itself:
//! the host resolves it first and refuses the request if any address is private or the name
//! does not resolve ([`Resolver::check_behind_proxy`]), since it cannot tell which address the
//! proxy will pick. Private destinations are reached by granting and requesting the address
//! itself, which never comes through here.
//!
//! The system resolver blocks a thread per lookup; a lookup past `outbound.dns_timeout_ms` fails
//! the request at once, and keeps its slot of `outbound.max_dns_lookups` until the system
//! returns, so a name server that never answers cannot take every blocking thread.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::Semaphore;
use url::{Host, Url};

use super::grant::is_public;
use crate::capabilities::bindings::http::Error;
use crate::config::OutboundConfig;

/// The host's resolver, shared by every client and task.
pub struct Resolver {
    timeout: Duration,
    lookups: Arc<Semaphore>,
    pinned: BTreeMap<String, Vec<IpAddr>>,
}

/// A name resolved only to addresses a plugin may not reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} resolves to {address}, a private address; names never lead to private addresses: grant and request the address itself (e.g. http://{address}:PORT)"
)]
pub struct PrivateAddress {
    pub name: String,
    pub address: IpAddr,
}

impl Resolver {
    pub fn new(config: &OutboundConfig) -> Self {
        Self {
            timeout: config.dns_timeout(),
            lookups: Arc::new(Semaphore::new(config.max_dns_lookups)),
            pinned: config.static_hosts.clone(),
        }
    }

    /// The addresses of `name`.
    pub async fn lookup(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(addresses) = self.pinned.get(&name) {
            return Ok(addresses.clone());
        }
        let lookups = self.lookups.clone();
        let query = name.clone();
        let lookup = async move {
            let slot = lookups.acquire_owned().await.map_err(io::Error::other)?;
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                (query.as_str(), 0).to_socket_addrs().map(|found| found.map(|a| a.ip()).collect())
            })
            .await
            .map_err(io::Error::other)?
        };
        tokio::time::timeout(self.timeout, lookup).await.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("resolving {name} took longer than {} ms (outbound.dns_timeout_ms)", self.timeout.as_millis()),
            ))
        })
    }

    /// Before a request to `url` goes through a proxy: its name must resolve here, and only to
    /// public addresses. An address in the URL is held to the grants instead.
    pub async fn check_behind_proxy(&self, url: &Url) -> Result<(), Error> {
        let Some(Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let addresses = self.lookup(name).await.map_err(|e| {
            Error::Connect(format!(
                "{url}: cannot resolve {name} ({e}); a request through a proxy is sent only once the host has checked that its destination is not a private address"
            ))
        })?;
        if addresses.is_empty() {
            return Err(Error::Connect(format!("{url}: {name} has no address")));
        }
        match addresses.into_iter().find(|a| !is_public(*a)) {
            Some(address) => Err(Error::Denied(PrivateAddress { name: name.to_owned(), address }.to_string())),
            None => Ok(()),
        }
    }
}

/// reqwest's resolver: public addresses only for direct requests and for proxies a guest names;
/// any address for the proxies of a manifest's pool, which the operator named.
pub struct ClientDns {
    pub resolver: Arc<Resolver>,
    pub public_only: bool,
}

impl Resolve for ClientDns {
    fn resolve(&self, name: Name) -> Resolving {
        let (resolver, public_only) = (self.resolver.clone(), self.public_only);
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolver.lookup(&name).await?;
            if !public_only {
                return Ok(Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0))) as Addrs);
            }
            let (public, private): (Vec<IpAddr>, Vec<IpAddr>) = addresses.into_iter().partition(|a| is_public(*a));
            match (public.is_empty(), private.first()) {
                (true, Some(&address)) => Err(Box::new(PrivateAddress { name, address }) as _),
                _ => Ok(Box::new(public.into_iter().map(|ip| SocketAddr::new(ip, 0))) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(pinned: &[(&str, &str)]) -> Resolver {
        let mut config = OutboundConfig { dns_timeout_ms: 500, ..OutboundConfig::default() };
        for (name, address) in pinned {
            config.static_hosts.insert((*name).to_owned(), vec![address.parse().unwrap()]);
        }
        Resolver::new(&config)
    }

    #[tokio::test]
    async fn through_a_proxy_a_name_must_resolve_to_public_addresses() {
        let resolver = resolver(&[("shop.example.test", "93.184.216.34"), ("inside.example.test", "10.0.0.7")]);
        let check = |url: &str| {
            let url = Url::parse(url).unwrap();
            let resolver = &resolver;
            async move { resolver.check_behind_proxy(&url).await }
        };
        assert!(check("http://SHOP.example.test./page").await.is_ok());
        assert!(matches!(check("http://inside.example.test/").await, Err(Error::Denied(_))));
        assert!(matches!(check("http://localhost:8080/").await, Err(Error::Denied(_))));
        assert!(matches!(check("http://nowhere.invalid/").await, Err(Error::Connect(_))));
        // An address is the grants' business, not the resolver's.
        assert!(check("http://10.0.0.7/").await.is_ok());
    }
}
