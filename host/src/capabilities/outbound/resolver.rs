//! Name resolution for direct requests: system DNS, keeping only public addresses.
//!
//! A grant names a host; the address behind the name is checked here, at connect time, so a
//! name cannot lead a plugin to 127.0.0.1 or the cloud metadata service, whatever its DNS says
//! (and however it changes between requests). Private destinations are reached by granting
//! and requesting the address itself, which never comes through here.

use std::net::{SocketAddr, ToSocketAddrs};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::grant::is_public;

pub struct PublicOnly;

/// A name resolved only to addresses a plugin may not reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} resolves to {address}, a private address; names never lead to private addresses: grant and request the address itself (e.g. http://{address}:PORT)"
)]
pub struct PrivateAddress {
    pub name: String,
    pub address: std::net::IpAddr,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let lookup = name.clone();
            let addresses: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs().map(Iterator::collect))
                    .await??;
            let (public, private): (Vec<SocketAddr>, Vec<SocketAddr>) =
                addresses.into_iter().partition(|a| is_public(a.ip()));
            match (public.is_empty(), private.first()) {
                (true, Some(refused)) => Err(Box::new(PrivateAddress { name, address: refused.ip() }) as _),
                _ => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}
