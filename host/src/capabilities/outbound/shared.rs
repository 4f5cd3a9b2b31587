//! The process-wide half of outbound HTTP: the clients (connection pools, rustls, the
//! resolver that keeps only public addresses, one client per proxy in use), the politeness
//! gates and the host's limits.

use std::sync::Arc;

use anyhow::Context;

use super::politeness::Politeness;
use super::proxy::{Proxy, ProxyClients};
use super::resolver::PublicOnly;
use crate::capabilities::bindings::http::Error;
use crate::config::OutboundConfig;

/// The process-wide half: clients, politeness gates, the host's limits.
pub struct Outbound {
    direct: reqwest::Client,
    /// The operator's extra certificate authorities (`outbound.ca_certificates`), read once.
    roots: Vec<reqwest::Certificate>,
    proxied: ProxyClients,
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
        let roots = extra_roots(&config.ca_certificates)?;
        let direct = client_builder(config, &roots).no_proxy().dns_resolver(Arc::new(PublicOnly)).build()?;
        Ok(Self {
            direct,
            roots,
            proxied: ProxyClients::new(config.proxy_clients),
            politeness: Politeness::new(config.politeness.clone()),
            config: config.clone(),
        })
    }

    pub(super) fn client(&self, route: &Route) -> Result<reqwest::Client, Error> {
        match route {
            Route::Direct => Ok(self.direct.clone()),
            Route::Via(proxy) => self
                .proxied
                .get_or_build(proxy, |p| {
                    let builder = client_builder(&self.config, &self.roots).proxy(p);
                    // A proxy the operator pooled may be private; one a guest names may not.
                    if proxy.is_pooled() { builder.build() } else { builder.dns_resolver(Arc::new(PublicOnly)).build() }
                })
                .map_err(Error::Proxy),
        }
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
