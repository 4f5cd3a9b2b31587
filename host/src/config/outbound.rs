//! `[outbound]`: HTTP made on behalf of plugins.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::politeness::Politeness;
use super::{DAY_SECS, MAX_MIB, MIB, positive, within};

/// Outbound HTTP made on behalf of plugins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Timeout of a request that does not set its own.
    pub request_timeout_ms: u64,
    /// Largest response body a plugin may receive.
    pub max_response_mb: u64,
    pub max_redirects: u32,
    /// Requests a `fetch-all` runs at once when the plugin does not say.
    pub fetch_all_concurrency: u32,
    /// Most requests one `fetch-all` may run at once, whatever the plugin asks.
    pub max_fetch_all_concurrency: u32,
    /// Idle connections kept per destination origin.
    pub pool_idle_per_host: usize,
    /// Idle connections kept by the whole process: connection pools are kept for this many
    /// divided by `pool_idle_per_host` destinations at once (per proxy), least recently used
    /// closed first.
    pub max_idle_connections: usize,
    pub user_agent: String,
    /// Most tries a retry policy may ask for.
    pub max_retry_attempts: u32,
    /// Sessions one task may hold open at once.
    pub max_sessions_per_task: u32,
    /// Default headers one session may hold; setting more ends the task (`resource-limit`).
    pub max_session_headers: u32,
    /// Bytes of names and values of one session's default headers.
    pub max_session_header_kb: u64,
    /// Cookies one session's jar may hold; a response that would store more ends the task.
    pub max_session_cookies: u32,
    /// Bytes of names, values, domains and paths of one session's cookies.
    pub max_session_cookie_kb: u64,
    /// Requests one `fetch-all` may carry; a longer list ends the task.
    pub max_fetch_all_requests: u32,
    /// PEM files of certificate authorities trusted beside the built-in web roots (a private
    /// CA of the operator's network, say); each file may hold several certificates.
    pub ca_certificates: Vec<PathBuf>,
    /// Time a name lookup may take before the request that needs it fails.
    pub dns_timeout_ms: u64,
    /// Name lookups in flight at once (each holds a thread of the system resolver, until the
    /// system answers even past `dns_timeout_ms`).
    pub max_dns_lookups: usize,
    /// Names answered by these addresses instead of DNS (lowercase names), for a host without
    /// DNS of its own behind a proxy, or to pin a destination. Private addresses stay refused.
    pub static_hosts: BTreeMap<String, Vec<IpAddr>>,
    /// Limits per destination host, shared by every task of every plugin on this host.
    #[serde(deserialize_with = "Politeness::with_host_defaults")]
    pub politeness: Politeness,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 30_000,
            max_response_mb: 16,
            max_redirects: 10,
            fetch_all_concurrency: 32,
            max_fetch_all_concurrency: 1_024,
            pool_idle_per_host: 16,
            max_idle_connections: 4_096,
            user_agent: concat!("ignareo/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_retry_attempts: 10,
            max_sessions_per_task: 256,
            max_session_headers: 64,
            max_session_header_kb: 32,
            max_session_cookies: 300,
            max_session_cookie_kb: 128,
            max_fetch_all_requests: 10_000,
            ca_certificates: Vec::new(),
            dns_timeout_ms: 5_000,
            max_dns_lookups: 64,
            static_hosts: BTreeMap::new(),
            politeness: Politeness::host_default(),
        }
    }
}

impl OutboundConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn dns_timeout(&self) -> Duration {
        Duration::from_millis(self.dns_timeout_ms)
    }

    /// Connection pools (one per route and origin) kept at once, within `max_idle_connections`.
    pub fn kept_clients(&self) -> usize {
        (self.max_idle_connections / self.pool_idle_per_host.max(1)).max(1)
    }

    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_mb.saturating_mul(MIB)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        within("outbound.request_timeout_ms", self.request_timeout_ms, 1..=DAY_SECS * 1000)?;
        within("outbound.max_response_mb", self.max_response_mb, 1..=MAX_MIB)?;
        positive("outbound.fetch_all_concurrency", self.fetch_all_concurrency.into())?;
        if self.fetch_all_concurrency > self.max_fetch_all_concurrency {
            bail!(
                "outbound.fetch_all_concurrency ({}) exceeds outbound.max_fetch_all_concurrency ({})",
                self.fetch_all_concurrency,
                self.max_fetch_all_concurrency
            );
        }
        positive("outbound.max_retry_attempts", self.max_retry_attempts.into())?;
        positive("outbound.max_idle_connections", self.max_idle_connections as u64)?;
        if self.max_idle_connections < self.pool_idle_per_host {
            bail!(
                "outbound.max_idle_connections ({}) is less than outbound.pool_idle_per_host ({}): no destination could keep its idle connections",
                self.max_idle_connections,
                self.pool_idle_per_host
            );
        }
        positive("outbound.max_sessions_per_task", self.max_sessions_per_task.into())?;
        positive("outbound.dns_timeout_ms", self.dns_timeout_ms)?;
        positive("outbound.max_dns_lookups", self.max_dns_lookups as u64)?;
        for (name, addresses) in &self.static_hosts {
            if name.is_empty()
                || name.contains(['/', ':', '*'])
                || name.ends_with('.')
                || *name != name.to_ascii_lowercase()
            {
                bail!("outbound.static_hosts.{name:?}: use a lowercase host name, e.g. \"api.example.com\"");
            }
            if addresses.is_empty() {
                bail!("outbound.static_hosts.{name:?}: give at least one address, e.g. [\"203.0.113.7\"]");
            }
        }
        positive("outbound.max_session_headers", self.max_session_headers.into())?;
        positive("outbound.max_session_header_kb", self.max_session_header_kb)?;
        positive("outbound.max_session_cookies", self.max_session_cookies.into())?;
        positive("outbound.max_session_cookie_kb", self.max_session_cookie_kb)?;
        positive("outbound.max_fetch_all_requests", self.max_fetch_all_requests.into())?;
        self.politeness.validate("outbound.politeness.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> String {
        toml::from_str::<OutboundConfig>(text).unwrap().validate().unwrap_err().to_string()
    }

    #[test]
    fn dns_and_idle_connection_keys_are_checked() {
        assert!(refusal("dns_timeout_ms = 0").contains("outbound.dns_timeout_ms"));
        assert!(refusal("max_dns_lookups = 0").contains("outbound.max_dns_lookups"));
        assert!(
            refusal("pool_idle_per_host = 64\nmax_idle_connections = 63").contains("outbound.max_idle_connections")
        );
        assert!(refusal("[static_hosts]\n\"Api.example.com\" = [\"203.0.113.7\"]").contains("outbound.static_hosts"));
        assert!(refusal("[static_hosts]\n\"api.example.com\" = []").contains("at least one address"));
        let config: OutboundConfig = toml::from_str("pool_idle_per_host = 100\nmax_idle_connections = 1000").unwrap();
        assert_eq!(config.kept_clients(), 10);
        assert_eq!(OutboundConfig { pool_idle_per_host: 0, ..config }.kept_clients(), 1000);
    }
}
