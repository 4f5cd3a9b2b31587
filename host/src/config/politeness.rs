//! Politeness rules: how hard tasks may press one destination host, as the operator
//! (`[outbound.politeness]`) and a plugin's manifest (`[politeness]`) write them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Pressure on one destination host: concurrent requests and a request rate (a token bucket
/// of `burst` tokens refilled at `requests_per_second`). Requests over a limit wait.
///
/// The operator's rules (`[outbound.politeness]`) bind every plugin together; a plugin's
/// manifest may add its own (`[politeness]`), which bind that plugin's tasks on top: a plugin
/// can be more polite than the host, never less.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Politeness {
    /// Requests in flight to one host at once.
    pub max_concurrent_per_host: Option<u32>,
    /// Requests started per second to one host; no rate cap if unset.
    pub requests_per_second: Option<f64>,
    /// Requests that may start back to back before the rate applies.
    pub burst: Option<u32>,
    /// Rules for particular hosts (exact host names or addresses, lowercase), each key
    /// falling back to the rule above.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostPoliteness>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPoliteness {
    pub max_concurrent_per_host: Option<u32>,
    pub requests_per_second: Option<f64>,
    pub burst: Option<u32>,
}

/// The limits that apply to one destination host under a [`Politeness`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostLimits {
    pub concurrent: Option<u32>,
    pub rate: Option<Rate>,
}

/// A request rate: `per_second` on average, up to `burst` back to back after a pause (a token
/// bucket of `burst` tokens refilled at `per_second`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// The time between two requests at the average rate.
    pub fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }

    /// How far ahead of its turn a request may go: `burst - 1` intervals.
    pub fn tolerance(self) -> Duration {
        self.interval() * self.burst.saturating_sub(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)?;
        if self.burst > 1 {
            write!(f, ", burst {}", self.burst)?;
        }
        Ok(())
    }
}

/// Requests in flight to one destination host unless the operator says otherwise.
pub const DEFAULT_MAX_CONCURRENT_PER_HOST: u32 = 8;

/// The slowest rate a rule may set: one request a day. Slower, the time between two requests
/// (and a burst's worth of them) leaves what the clock can count.
const MIN_REQUESTS_PER_SECOND: f64 = 1.0 / 86_400.0;
/// The fastest rate a rule may set; faster is no cap at all (leave the key out for that).
const MAX_REQUESTS_PER_SECOND: f64 = 1_000_000.0;
/// The largest burst a rule may set.
const MAX_BURST: u32 = 100_000;

impl Politeness {
    /// The host's defaults: 8 requests at once per destination, no rate cap.
    pub fn host_default() -> Self {
        Self { max_concurrent_per_host: Some(DEFAULT_MAX_CONCURRENT_PER_HOST), ..Self::default() }
    }

    /// The operator's rules always cap concurrency: an unset key keeps the default.
    pub(super) fn with_host_defaults<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut rules = Self::deserialize(deserializer)?;
        rules.max_concurrent_per_host.get_or_insert(DEFAULT_MAX_CONCURRENT_PER_HOST);
        Ok(rules)
    }

    pub fn limits_for(&self, host: &str) -> HostLimits {
        let rule = self.hosts.get(host);
        let concurrent = rule.and_then(|r| r.max_concurrent_per_host).or(self.max_concurrent_per_host);
        let rate = rule.and_then(|r| r.requests_per_second).or(self.requests_per_second);
        let burst = rule.and_then(|r| r.burst).or(self.burst).unwrap_or(1);
        HostLimits { concurrent, rate: rate.map(|per_second| Rate { per_second, burst }) }
    }

    /// Whether any rule limits anything.
    pub fn is_empty(&self) -> bool {
        self.max_concurrent_per_host.is_none()
            && self.requests_per_second.is_none()
            && self.hosts.values().all(|h| h.max_concurrent_per_host.is_none() && h.requests_per_second.is_none())
    }

    /// Refuses limits out of range (zero, negative, not finite, too slow or too large),
    /// naming the key under `prefix`.
    pub fn validate(&self, prefix: &str) -> anyhow::Result<()> {
        let rules =
            std::iter::once((String::new(), self.max_concurrent_per_host, self.requests_per_second, self.burst)).chain(
                self.hosts.iter().map(|(host, r)| {
                    (format!("hosts.{host:?}."), r.max_concurrent_per_host, r.requests_per_second, r.burst)
                }),
            );
        for (scope, concurrent, rate, burst) in rules {
            if concurrent == Some(0) {
                bail!("{prefix}{scope}max_concurrent_per_host must be at least 1");
            }
            if let Some(rate) = rate
                && !(MIN_REQUESTS_PER_SECOND..=MAX_REQUESTS_PER_SECOND).contains(&rate)
            {
                bail!(
                    "{prefix}{scope}requests_per_second must be between {MIN_REQUESTS_PER_SECOND:.8} (one a day) and {MAX_REQUESTS_PER_SECOND} (got {rate}); leave it out for no rate cap"
                );
            }
            if let Some(burst) = burst
                && !(1..=MAX_BURST).contains(&burst)
            {
                bail!("{prefix}{scope}burst must be between 1 and {MAX_BURST} (got {burst})");
            }
        }
        for host in self.hosts.keys() {
            if host.is_empty()
                || host.contains(['/', ':']) && !host.starts_with('[')
                || *host != host.to_ascii_lowercase()
            {
                bail!(
                    "{prefix}hosts.{host:?}: use a lowercase host name or address without scheme or port, e.g. \"api.example.com\""
                );
            }
        }
        Ok(())
    }
}
