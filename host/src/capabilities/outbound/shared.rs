//! The process-wide half of outbound HTTP: the clients (connection pools, rustls, the
//! resolver that keeps only public addresses; one per route and origin, see `clients`), the
//! politeness gates and the host's limits.

use std::sync::Arc;

use anyhow::Context;
use url::Url;

use super::clients::Clients;
use super::politeness::Politeness;
use super::proxy::Proxy;
use super::resolver::{ClientDns, Resolver};
use crate::capabilities::bindings::http::Error;
use crate::config::OutboundConfig;

/// The process-wide half: clients, politeness gates, the host's limits.
pub struct Outbound {
    clients: Clients,
    /// The operator's extra certificate authorities (`outbound.ca_certificates`), read once.
    roots: Vec<reqwest::Certificate>,
    pub(super) resolver: Arc<Resolver>,
    pub(super) politeness: Politeness,
    pub(super) config: OutboundConfig,
}

/// Where a request's connections go.
#[derive(Clone)]
pub(super) enum Route {
    Direct,
    Via(Proxy),
}

impl Route {
    pub(super) fn proxy(&self) -> Option<&Proxy> {
        match self {
            Route::Direct => None,
            Route::Via(proxy) => Some(proxy),
        }
    }
}

impl Outbound {
    pub fn new(config: &OutboundConfig) -> anyhow::Result<Self> {
        let outbound = Self {
            clients: Clients::new(config.kept_clients()),
            roots: extra_roots(&config.ca_certificates)?,
            resolver: Arc::new(Resolver::new(config)),
            politeness: Politeness::new(config.politeness.clone()),
            config: config.clone(),
        };
        // Clients are built on first use; a configuration they refuse must stop the start.
        outbound.build(None).context("outbound: cannot build an HTTP client")?;
        Ok(outbound)
    }

    /// The client for a hop to `url` by `route`.
    pub(super) fn client(&self, route: &Route, url: &Url) -> Result<reqwest::Client, Error> {
        let proxy = route.proxy();
        self.clients.get_or_build(proxy, url, || {
            self.build(proxy).map_err(|e| match proxy {
                Some(proxy) => Error::Proxy(format!("cannot use proxy {proxy}: {e}")),
                None => Error::Connect(format!("{url}: cannot build an HTTP client: {e}")),
            })
        })
    }

    fn build(&self, proxy: Option<&Proxy>) -> reqwest::Result<reqwest::Client> {
        let builder = client_builder(&self.config, &self.roots);
        // A proxy the operator pooled may be private; one a guest names, and any destination,
        // may not.
        let public_only = proxy.is_none_or(|p| !p.is_pooled());
        let builder = match proxy {
            Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.url().as_str())?),
            None => builder.no_proxy(),
        };
        builder.dns_resolver(Arc::new(ClientDns { resolver: self.resolver.clone(), public_only })).build()
    }
}

fn client_builder(config: &OutboundConfig, roots: &[reqwest::Certificate]) -> reqwest::ClientBuilder {
    roots
        .iter()
        .fold(reqwest::Client::builder(), |builder, root| builder.add_root_certificate(root.clone()))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(config.pool_idle_per_host)
        .user_agent(&config.user_agent)
        .tcp_nodelay(true)
}

/// The certificates of every PEM file named in `outbound.ca_certificates`.
fn extra_roots(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let mut roots = Vec::new();
    for file in files {
        let pem =
            std::fs::read(file).with_context(|| format!("outbound.ca_certificates: cannot read {}", file.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("outbound.ca_certificates: {} is not a PEM certificate bundle", file.display()))?;
        if certificates.is_empty() {
            anyhow::bail!("outbound.ca_certificates: {} holds no PEM certificate", file.display());
        }
        roots.extend(certificates);
    }
    Ok(roots)
}
