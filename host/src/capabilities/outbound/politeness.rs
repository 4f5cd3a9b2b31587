//! Politeness: how hard the tasks of this process may press one destination host.
//!
//! Each (rule set, host) pair has a gate: a FIFO semaphore for concurrent requests and a pace
//! for the request rate (GCRA, the token bucket as a single "next slot" time, so a request
//! waits exactly until its turn without polling). The operator's gates are shared by every
//! task of every plugin; a plugin's own rules add a gate shared by that plugin version's
//! tasks. A request passes the plugin's gate first, then the host-wide one, and holds its
//! concurrency permits until its body has been read.
//!
//! A gate is keyed on the host as a server sees it ([`host_key`]): `Example.COM.`, `0x7f.1`
//! and `[::ffff:127.0.0.1]` must not buy a plugin a fresh gate for a host it already presses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use url::Host;

use super::grant::canonical;

use crate::config::{HostLimits, Politeness as Rules, Rate};

/// Gates kept before idle ones are swept; the sweep runs again each time the map doubles.
const SWEEP_THRESHOLD: usize = 4_096;
/// Shorter waits are not worth a line in the task's events.
const NOTICEABLE_WAIT: Duration = Duration::from_millis(10);

pub struct Politeness {
    host_rules: Rules,
    gates: Mutex<Gates>,
}

struct Gates {
    by_key: HashMap<GateKey, Arc<Gate>>,
    sweep_at: usize,
}

/// `None` for the operator's rules, or the plugin version whose manifest set the rules.
type GateKey = (Option<Arc<str>>, String);

struct Gate {
    slots: Option<Arc<Semaphore>>,
    pace: Option<Pace>,
    /// "3 at once, 20/s", for the task's events.
    describe: String,
}

struct Pace {
    rate: Rate,
    /// The theoretical arrival time of the next request.
    next: Mutex<Instant>,
}

/// Leave to send: held until the response has been read.
pub struct Pass {
    _permits: Vec<OwnedSemaphorePermit>,
}

/// What the wait for a [`Pass`] cost, when it cost anything.
pub struct Waited {
    pub host: String,
    pub duration: Duration,
    pub limits: String,
}

/// A plugin version's own rules, as its manifest states them.
pub struct PluginRules {
    pub version: Arc<str>,
    pub rules: Rules,
}

/// The key of a destination's gates: a name in lowercase ASCII (the URL parser has already
/// applied IDNA) without its trailing dot; an address in one form, an IPv6 address that
/// carries an IPv4 one as that IPv4 address.
pub fn host_key(host: &Host<&str>) -> String {
    match *host {
        Host::Domain(name) => name.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => match canonical(IpAddr::V6(ip)) {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        },
    }
}

impl Politeness {
    pub fn new(host_rules: Rules) -> Self {
        Self { host_rules, gates: Mutex::new(Gates { by_key: HashMap::new(), sweep_at: SWEEP_THRESHOLD }) }
    }

    /// Waits until a request to `host` may start under the plugin's rules and the host's.
    pub async fn enter(&self, plugin: Option<&PluginRules>, host: &str) -> (Pass, Option<Waited>) {
        let started = Instant::now();
        let mut gates = Vec::with_capacity(2);
        if let Some(plugin) = plugin {
            gates.extend(self.gate(Some(&plugin.version), host, plugin.rules.limits_for(host)));
        }
        gates.extend(self.gate(None, host, self.host_rules.limits_for(host)));

        let mut permits = Vec::with_capacity(gates.len());
        for gate in &gates {
            if let Some(slots) = &gate.slots {
                // The semaphores are never closed.
                permits.push(slots.clone().acquire_owned().await.expect("politeness semaphores are never closed"));
            }
            if let Some(pace) = &gate.pace {
                tokio::time::sleep_until(pace.reserve()).await;
            }
        }
        let duration = started.elapsed();
        let waited = (duration >= NOTICEABLE_WAIT).then(|| Waited {
            host: host.to_owned(),
            duration,
            limits: gates.iter().map(|g| g.describe.as_str()).collect::<Vec<_>>().join("; "),
        });
        (Pass { _permits: permits }, waited)
    }

    fn gate(&self, version: Option<&Arc<str>>, host: &str, limits: HostLimits) -> Option<Arc<Gate>> {
        if limits.concurrent.is_none() && limits.rate.is_none() {
            return None;
        }
        let mut gates = self.gates.lock();
        let key = (version.cloned(), host.to_owned());
        if let Some(gate) = gates.by_key.get(&key) {
            return Some(gate.clone());
        }
        if gates.by_key.len() >= gates.sweep_at {
            let now = Instant::now();
            gates
                .by_key
                .retain(|_, gate| Arc::strong_count(gate) > 1 || gate.pace.as_ref().is_some_and(|p| p.is_busy(now)));
            gates.sweep_at = (gates.by_key.len() * 2).max(SWEEP_THRESHOLD);
        }
        let owner = if version.is_some() { "plugin" } else { "host" };
        let gate = Arc::new(Gate::new(limits, owner));
        gates.by_key.insert(key, gate.clone());
        Some(gate)
    }
}

impl Gate {
    fn new(limits: HostLimits, owner: &str) -> Self {
        let mut describe = Vec::new();
        if let Some(n) = limits.concurrent {
            describe.push(format!("{n} at once"));
        }
        if let Some(rate) = limits.rate {
            describe.push(rate.to_string());
        }
        let pace = limits.rate.map(|rate| Pace { rate, next: Mutex::new(Instant::now()) });
        Self {
            slots: limits.concurrent.map(|n| Arc::new(Semaphore::new(n as usize))),
            pace,
            describe: format!("{owner} limit {}", describe.join(", ")),
        }
    }
}

impl Pace {
    /// Takes the next slot: the instant at which this request may start.
    fn reserve(&self) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock();
        let at = now.max(next.checked_sub(self.rate.tolerance()).unwrap_or(now));
        *next = (*next).max(at) + self.rate.interval();
        at
    }

    /// Whether forgetting this pace would let requests through sooner than it allows.
    fn is_busy(&self, now: Instant) -> bool {
        *self.next.lock() > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostPoliteness;

    #[tokio::test(start_paused = true)]
    async fn the_rate_spaces_requests_after_the_burst() {
        let rules = Rules {
            max_concurrent_per_host: None,
            requests_per_second: Some(10.0),
            burst: Some(3),
            ..Rules::default()
        };
        let politeness = Politeness::new(rules);
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..6 {
            let _ = politeness.enter(None, "a.example").await;
            starts.push(start.elapsed().as_millis());
        }
        assert_eq!(starts, [0, 0, 0, 100, 200, 300]);
        // Another host has its own bucket.
        let (_, waited) = politeness.enter(None, "b.example").await;
        assert!(waited.is_none());
    }

    #[test]
    fn one_host_in_any_spelling_is_one_key() {
        let key = |url: &str| host_key(&url::Url::parse(url).unwrap().host().unwrap());
        for spelling in ["http://Example.COM./a", "https://example.com:8443/", "http://EXAMPLE.com../"] {
            assert_eq!(key(spelling), "example.com", "{spelling}");
        }
        for spelling in ["http://127.0.0.1/", "http://0x7f.1/", "http://2130706433/", "http://[::ffff:127.0.0.1]/"] {
            assert_eq!(key(spelling), "127.0.0.1", "{spelling}");
        }
        assert_eq!(key("http://Bücher.example/"), key("http://xn--bcher-kva.example/"));
        assert_eq!(key("http://[0:0:0:0:0:0:0:1]/"), "[::1]");
    }

    #[tokio::test(start_paused = true)]
    async fn plugin_rules_add_to_the_host_rules() {
        let host = Rules { max_concurrent_per_host: Some(2), ..Rules::default() };
        let mut plugin = Rules::default();
        plugin.hosts.insert(
            "a.example".into(),
            HostPoliteness { max_concurrent_per_host: Some(1), ..HostPoliteness::default() },
        );
        let politeness = Politeness::new(host);
        let plugin = PluginRules { version: "v1".into(), rules: plugin };

        let (first, _) = politeness.enter(Some(&plugin), "a.example").await;
        // The plugin's own limit (1) holds its second request back...
        assert!(
            tokio::time::timeout(Duration::from_secs(1), politeness.enter(Some(&plugin), "a.example")).await.is_err()
        );
        // ...while another plugin still has the host's second slot.
        let (_second, _) = politeness.enter(None, "a.example").await;
        assert!(tokio::time::timeout(Duration::from_secs(1), politeness.enter(None, "a.example")).await.is_err());
        drop(first);
        let (_, waited) = politeness.enter(Some(&plugin), "a.example").await;
        assert!(waited.is_none());
    }
}
