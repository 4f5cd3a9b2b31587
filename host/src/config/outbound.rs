//! `[outbound]`: HTTP made on behalf of plugins.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::politeness::Politeness;
use super::{MIB, positive};

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
    /// Idle connections kept per destination host.
    pub pool_idle_per_host: usize,
    pub user_agent: String,
    /// Most tries a retry policy may ask for.
    pub max_retry_attempts: u32,
    /// Distinct proxies whose connection pools are kept at once; the least recently used go.
    pub proxy_clients: usize,
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
            pool_idle_per_host: 256,
            user_agent: concat!("ignareo/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_retry_attempts: 10,
            proxy_clients: 64,
            max_sessions_per_task: 256,
            max_session_headers: 64,
            max_session_header_kb: 32,
            max_session_cookies: 300,
            max_session_cookie_kb: 128,
            max_fetch_all_requests: 10_000,
            ca_certificates: Vec::new(),
            politeness: Politeness::host_default(),
        }
    }
}

impl OutboundConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_mb.saturating_mul(MIB)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        positive("outbound.request_timeout_ms", self.request_timeout_ms)?;
        positive("outbound.max_response_mb", self.max_response_mb)?;
        positive("outbound.fetch_all_concurrency", self.fetch_all_concurrency.into())?;
        if self.fetch_all_concurrency > self.max_fetch_all_concurrency {
            bail!(
                "outbound.fetch_all_concurrency ({}) exceeds outbound.max_fetch_all_concurrency ({})",
                self.fetch_all_concurrency,
                self.max_fetch_all_concurrency
            );
        }
        positive("outbound.max_retry_attempts", self.max_retry_attempts.into())?;
        positive("outbound.proxy_clients", self.proxy_clients as u64)?;
        positive("outbound.max_sessions_per_task", self.max_sessions_per_task.into())?;
        positive("outbound.max_session_headers", self.max_session_headers.into())?;
        positive("outbound.max_session_header_kb", self.max_session_header_kb)?;
        positive("outbound.max_session_cookies", self.max_session_cookies.into())?;
        positive("outbound.max_session_cookie_kb", self.max_session_cookie_kb)?;
        positive("outbound.max_fetch_all_requests", self.max_fetch_all_requests.into())?;
        self.politeness.validate("outbound.politeness.")
    }
}
