//! `[http]`: what slow or oversized requests to the API meet.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::within;

/// How the API treats its clients' connections: what a slow or oversized request meets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request's head (line and headers) must arrive within this time; an idle
    /// keep-alive connection is closed after it too.
    pub header_timeout_secs: u64,
    /// A request body that sends nothing for this long is refused (408).
    pub body_idle_timeout_secs: u64,
    /// Largest request head (line and headers) in bytes; beyond it, 431.
    pub max_header_bytes: usize,
    /// Most headers in one request; beyond it, 431.
    pub max_headers: usize,
    /// Client connections open at once. When all are taken, a newcomer takes the place of the
    /// connection idle longest; when every one has a request in progress, it gets 503. Lowered
    /// at start to fit the file-descriptor limit less `reserved_descriptors`.
    pub max_connections: u32,
    /// Client connections open at once from one address; beyond it, 429 and a close.
    pub max_connections_per_address: u32,
    /// A new connection must send its first complete request head within this time, or it is
    /// closed: connections that send nothing do not hold a slot for long.
    pub first_request_timeout_secs: u64,
    /// File descriptors kept for outbound sockets, the store and uploads, out of the limit the
    /// host raises its own to at start (at most half of it); client connections get the rest.
    pub reserved_descriptors: u64,
    /// Largest body of the small control requests (rollback, tokens), in KiB.
    pub max_control_body_kb: u64,
    /// After refusing a body before reading it (too large, bad token, bad name), the host
    /// reads and discards what the client still sends for up to this long, then closes: a
    /// client still writing sees the answer instead of a reset connection. 0 closes at once.
    pub refused_body_linger_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout_secs: 30,
            body_idle_timeout_secs: 30,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: 10_000,
            max_connections_per_address: 1_024,
            first_request_timeout_secs: 5,
            reserved_descriptors: 8192,
            max_control_body_kb: 64,
            refused_body_linger_secs: 5,
        }
    }
}

impl HttpConfig {
    pub fn max_control_body_bytes(&self) -> usize {
        usize::try_from(self.max_control_body_kb.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    pub fn first_request_timeout(&self) -> Duration {
        Duration::from_secs(self.first_request_timeout_secs)
    }

    pub fn refused_body_linger(&self) -> Duration {
        Duration::from_secs(self.refused_body_linger_secs)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.max_header_bytes < 1024 {
            bail!("http.max_header_bytes must be at least 1024 (got {})", self.max_header_bytes);
        }
        if self.max_headers < 8 {
            bail!("http.max_headers must be at least 8 (got {})", self.max_headers);
        }
        if self.refused_body_linger_secs > 300 {
            bail!("http.refused_body_linger_secs must be at most 300 (got {})", self.refused_body_linger_secs);
        }
        if self.max_connections == 0 || self.max_connections_per_address == 0 {
            bail!("http.max_connections and http.max_connections_per_address must be at least 1");
        }
        if self.reserved_descriptors < 64 {
            bail!("http.reserved_descriptors must be at least 64 (got {})", self.reserved_descriptors);
        }
        within("http.header_timeout_secs", self.header_timeout_secs, 1..=3600)?;
        within("http.body_idle_timeout_secs", self.body_idle_timeout_secs, 1..=3600)?;
        within("http.max_control_body_kb", self.max_control_body_kb, 1..=64 * 1024)?;
        within("http.first_request_timeout_secs", self.first_request_timeout_secs, 1..=3600)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_are_checked_naming_the_key() {
        for (change, key) in [
            (
                (|h: &mut HttpConfig| h.max_connections_per_address = 0) as fn(&mut HttpConfig),
                "max_connections_per_address",
            ),
            (|h: &mut HttpConfig| h.first_request_timeout_secs = 0, "first_request_timeout_secs"),
            (|h: &mut HttpConfig| h.first_request_timeout_secs = 3601, "first_request_timeout_secs"),
            (|h: &mut HttpConfig| h.reserved_descriptors = 10, "reserved_descriptors"),
        ] {
            let mut http = HttpConfig::default();
            change(&mut http);
            let err = http.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("http.{key}")), "{err}");
        }
    }
}
