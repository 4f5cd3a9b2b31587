//! The plugin manifest (`ignareo.toml`), uploaded and versioned with a component: what the
//! plugin may reach outbound and the limits its tasks run under.
//!
//! ```toml
//! allowed_hosts = ["https://*.example.com", "http://127.0.0.1:8080"]
//! max_concurrency = 50          # tasks of this plugin running at once
//! timeout = "2m"                # or seconds
//! memory_limit = "64MiB"        # or bytes
//! max_response_bytes = "8MiB"   # or bytes
//! proxies = ["http://user:pass@10.0.0.2:3128"]   # sessions take them in turn
//! proxies_mandatory = true      # every request leaves through the pool; no other proxy, no direct
//! on_interrupt = "retry"        # or "fail" (default): a task the host's stop interrupted
//! max_attempts = 3              # runs in all, with "retry"
//! spawn = ["fetch-title"]       # plugins its tasks may spawn (default: none)
//!
//! [politeness]                  # on top of the host's own rules
//! requests_per_second = 2.0
//! [politeness.hosts."api.example.com"]
//! max_concurrent_per_host = 1
//! ```
//!
//! A manifest narrows the host's limits; it never widens them. No manifest means no grants.
//! Every number is range-checked here, at upload: a rate, duration or size a task could
//! not run under is refused with the key named, rather than met by the task.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capabilities::outbound::{HostGrant, PluginOutbound, PluginRules, Proxy, ProxyPool};
use crate::capabilities::{PluginCapabilities, SpawnGrant};
use crate::config::{Config, Politeness};
use crate::task::{NAME_RULE, is_valid_name};

/// The host's limits, which manifests may only narrow.
#[derive(Clone, Debug)]
pub struct Ceilings {
    pub running_per_plugin: u32,
    pub task_timeout: Duration,
    pub task_memory_bytes: u64,
    pub max_response_bytes: u64,
    pub max_task_attempts: u32,
}

impl Ceilings {
    pub fn of(config: &Config) -> Self {
        Self {
            running_per_plugin: config.limits.running_per_plugin(),
            task_timeout: config.limits.task_timeout(),
            task_memory_bytes: config.limits.task_memory_bytes() as u64,
            max_response_bytes: config.outbound.max_response_bytes(),
            max_task_attempts: config.limits.max_task_attempts,
        }
    }
}

/// What the manifest file says, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    allowed_hosts: Vec<String>,
    max_concurrency: Option<u32>,
    timeout: Option<Amount>,
    memory_limit: Option<Amount>,
    max_response_bytes: Option<Amount>,
    #[serde(default)]
    proxies: Vec<String>,
    #[serde(default)]
    proxies_mandatory: bool,
    politeness: Option<Politeness>,
    on_interrupt: Option<OnInterrupt>,
    max_attempts: Option<u32>,
    #[serde(default)]
    spawn: Vec<String>,
}

/// What becomes of a task that was running when the host stopped (killed, or past its
/// shutdown grace period).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInterrupt {
    /// It ends `interrupted`: a task that places orders must not run twice.
    #[default]
    Fail,
    /// It runs again at the next start, up to `max_attempts` runs in all.
    Retry,
}

/// Runs a `retry` task gets when the manifest does not say.
const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A number, or a string with a unit ("30s", "64MiB"); a fraction or a negative number is
/// read only to be refused with the key named.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Amount {
    Whole(u64),
    Number(f64),
    Text(String),
}

/// A checked manifest.
#[derive(Debug, Default, Serialize)]
pub struct Manifest {
    #[serde(serialize_with = "as_strings")]
    pub allowed_hosts: Vec<HostGrant>,
    pub max_concurrency: Option<u32>,
    #[serde(rename = "timeout_secs", serialize_with = "as_secs")]
    pub timeout: Option<Duration>,
    pub memory_limit: Option<u64>,
    pub max_response_bytes: Option<u64>,
    /// Shown without passwords.
    #[serde(serialize_with = "as_strings")]
    pub proxies: Vec<Proxy>,
    pub proxies_mandatory: bool,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "politeness_view")]
    pub politeness: Option<Politeness>,
    pub on_interrupt: OnInterrupt,
    pub max_attempts: Option<u32>,
    /// Plugins this plugin's tasks may spawn; none unless listed.
    pub spawn: Vec<String>,
}

/// Limits a plugin version's tasks run under: the manifest's, or the host's.
#[derive(Clone, Copy, Debug)]
pub struct TaskLimits {
    pub max_concurrency: u32,
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub on_interrupt: OnInterrupt,
    /// Runs a task may start in all, restarts included (1 for `fail`).
    pub max_attempts: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid manifest: {0}")]
pub struct ManifestError(String);

impl Manifest {
    /// Parses and checks a manifest against the host's limits; every error names the key.
    pub fn parse(text: &str, ceilings: &Ceilings) -> Result<Self, ManifestError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ManifestError(e.to_string().trim_end().to_owned()))?;
        let fail = |message: String| ManifestError(message);

        let allowed_hosts = raw
            .allowed_hosts
            .iter()
            .enumerate()
            .map(|(i, g)| g.parse::<HostGrant>().map_err(|e| fail(format!("allowed_hosts[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let proxies = raw
            .proxies
            .iter()
            .enumerate()
            .map(|(i, p)| Proxy::parse(p, true).map_err(|e| fail(format!("proxies[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if raw.proxies_mandatory && proxies.is_empty() {
            return Err(fail("proxies_mandatory = true needs at least one proxy in proxies".to_owned()));
        }

        if let Some(n) = raw.max_concurrency
            && !(1..=ceilings.running_per_plugin).contains(&n)
        {
            return Err(fail(format!(
                "max_concurrency must be between 1 and the host's limit of {} tasks per plugin, got {n}",
                ceilings.running_per_plugin
            )));
        }
        let timeout = raw.timeout.map(|t| duration("timeout", t, ceilings.task_timeout)).transpose()?;
        let memory_limit = raw
            .memory_limit
            .map(|m| size("memory_limit", m, ceilings.task_memory_bytes, "limits.task_memory_mb"))
            .transpose()?;
        let max_response_bytes = raw
            .max_response_bytes
            .map(|m| size("max_response_bytes", m, ceilings.max_response_bytes, "outbound.max_response_mb"))
            .transpose()?;
        if let Some(politeness) = &raw.politeness {
            politeness.validate("politeness.").map_err(|e| fail(e.to_string()))?;
        }
        if let Some(n) = raw.max_attempts
            && !(1..=ceilings.max_task_attempts).contains(&n)
        {
            return Err(fail(format!(
                "max_attempts must be between 1 and the host's limit of {} (limits.max_task_attempts), got {n}",
                ceilings.max_task_attempts
            )));
        }
        if let Some((i, bad)) = raw.spawn.iter().enumerate().find(|(_, name)| !is_valid_name(name)) {
            return Err(fail(format!("spawn[{i}]: {bad:?} is not a plugin name ({NAME_RULE})")));
        }
        let on_interrupt = raw.on_interrupt.unwrap_or_default();
        if raw.max_attempts.is_some() && on_interrupt == OnInterrupt::Fail {
            return Err(fail("max_attempts applies only with on_interrupt = \"retry\"".to_owned()));
        }
        Ok(Self {
            allowed_hosts,
            max_concurrency: raw.max_concurrency,
            timeout,
            memory_limit,
            max_response_bytes,
            proxies,
            proxies_mandatory: raw.proxies_mandatory,
            politeness: raw.politeness.filter(|p| !p.is_empty()),
            on_interrupt,
            max_attempts: raw.max_attempts,
            spawn: raw.spawn,
        })
    }

    pub fn task_limits(&self, ceilings: &Ceilings) -> TaskLimits {
        TaskLimits {
            max_concurrency: self.max_concurrency.unwrap_or(ceilings.running_per_plugin),
            timeout: self.timeout.unwrap_or(ceilings.task_timeout),
            memory_bytes: self.memory_limit.unwrap_or(ceilings.task_memory_bytes),
            on_interrupt: self.on_interrupt,
            max_attempts: match self.on_interrupt {
                OnInterrupt::Fail => 1,
                OnInterrupt::Retry => self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS.min(ceilings.max_task_attempts)),
            },
        }
    }

    /// What this version's tasks may do; `version` keys its politeness gates.
    pub fn capabilities(&self, version: &str, ceilings: &Ceilings) -> PluginCapabilities {
        let outbound = PluginOutbound {
            grants: self.allowed_hosts.clone(),
            max_response_bytes: self.max_response_bytes.unwrap_or(ceilings.max_response_bytes),
            proxies: ProxyPool::new(self.proxies.clone(), self.proxies_mandatory),
            politeness: self.politeness.clone().map(|rules| PluginRules { version: Arc::from(version), rules }),
        };
        PluginCapabilities {
            outbound: Arc::new(outbound),
            memory_bytes: self.task_limits(ceilings).memory_bytes,
            spawn: Arc::new(SpawnGrant::new(self.spawn.iter().cloned())),
        }
    }
}

/// A duration in (0, `ceiling`]: seconds, or text such as "90s".
fn duration(key: &str, amount: Amount, ceiling: Duration) -> Result<Duration, ManifestError> {
    let value = match amount {
        Amount::Whole(secs) => Duration::from_secs(secs),
        Amount::Number(secs) => Duration::try_from_secs_f64(secs).map_err(|_| {
            ManifestError(format!(
                "{key}: {secs} is not a duration; write a positive number of seconds or e.g. \"90s\""
            ))
        })?,
        Amount::Text(text) => humantime::parse_duration(&text).map_err(|e| {
            ManifestError(format!("{key}: {text:?} is not a duration ({e}); write seconds or e.g. \"90s\", \"5m\""))
        })?,
    };
    if value.is_zero() || value > ceiling {
        return Err(ManifestError(format!(
            "{key} must be more than 0 and at most the host's limits.task_timeout_secs ({} s), got {}",
            ceiling.as_secs(),
            humantime::format_duration(value)
        )));
    }
    Ok(value)
}

/// A size in (0, `ceiling`] bytes: bytes, or text such as "64MiB".
fn size(key: &str, amount: Amount, ceiling: u64, ceiling_key: &str) -> Result<u64, ManifestError> {
    let value = match amount {
        Amount::Whole(bytes) => bytes,
        Amount::Number(bytes) => {
            return Err(ManifestError(format!(
                "{key}: {bytes} is not a size; write a whole number of bytes or e.g. \"64MiB\""
            )));
        }
        Amount::Text(text) => text.parse::<bytesize::ByteSize>().map(|s| s.as_u64()).map_err(|e| {
            ManifestError(format!("{key}: {text:?} is not a size ({e}); write bytes or e.g. \"64MiB\", \"500KB\""))
        })?,
    };
    if value == 0 || value > ceiling {
        return Err(ManifestError(format!(
            "{key} must be more than 0 and at most the host's {ceiling_key} ({ceiling} bytes), got {value} bytes"
        )));
    }
    Ok(value)
}

fn as_strings<T: std::fmt::Display, S: serde::Serializer>(items: &[T], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(items.iter().map(ToString::to_string))
}

#[allow(clippy::ref_option, reason = "serde's serialize_with passes the field by reference")]
fn as_secs<S: serde::Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => serializer.serialize_some(&d.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

#[allow(clippy::ref_option, reason = "serde's serialize_with passes the field by reference")]
fn politeness_view<S: serde::Serializer>(value: &Option<Politeness>, serializer: S) -> Result<S::Ok, S::Error> {
    let view = value.as_ref().map(|p| {
        let hosts: std::collections::BTreeMap<&String, serde_json::Value> = p
            .hosts
            .iter()
            .map(|(h, r)| {
                (h, serde_json::json!({"max_concurrent_per_host": r.max_concurrent_per_host, "requests_per_second": r.requests_per_second, "burst": r.burst}))
            })
            .collect();
        serde_json::json!({
            "max_concurrent_per_host": p.max_concurrent_per_host,
            "requests_per_second": p.requests_per_second,
            "burst": p.burst,
            "hosts": hosts,
        })
    });
    view.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceilings() -> Ceilings {
        Ceilings {
            running_per_plugin: 100,
            task_timeout: Duration::from_mins(5),
            task_memory_bytes: 128 << 20,
            max_response_bytes: 16 << 20,
            max_task_attempts: 10,
        }
    }

    #[test]
    fn interrupted_tasks_fail_unless_the_manifest_asks_for_retries() {
        let ceilings = ceilings();
        let default = Manifest::parse("", &ceilings).unwrap().task_limits(&ceilings);
        assert_eq!((default.on_interrupt, default.max_attempts), (OnInterrupt::Fail, 1));
        let retry = Manifest::parse("on_interrupt = \"retry\"", &ceilings).unwrap().task_limits(&ceilings);
        assert_eq!((retry.on_interrupt, retry.max_attempts), (OnInterrupt::Retry, 3));
        let five =
            Manifest::parse("on_interrupt = \"retry\"\nmax_attempts = 5", &ceilings).unwrap().task_limits(&ceilings);
        assert_eq!(five.max_attempts, 5);
        let too_many =
            Manifest::parse("on_interrupt = \"retry\"\nmax_attempts = 11", &ceilings).unwrap_err().to_string();
        assert!(too_many.contains("limits.max_task_attempts"), "{too_many}");
        let without_retry = Manifest::parse("max_attempts = 2", &ceilings).unwrap_err().to_string();
        assert!(without_retry.contains("on_interrupt"), "{without_retry}");
    }

    #[test]
    fn a_full_manifest() {
        let text = r#"
            allowed_hosts = ["https://*.example.com", "http://127.0.0.1:*"]
            max_concurrency = 5
            timeout = "90s"
            memory_limit = "64MiB"
            max_response_bytes = 1000000
            proxies = ["http://u:p@10.0.0.2:3128"]
            spawn = ["hello"]
            [politeness]
            requests_per_second = 2.5
        "#;
        let m = Manifest::parse(text, &ceilings()).unwrap();
        assert_eq!(m.allowed_hosts.len(), 2);
        let limits = m.task_limits(&ceilings());
        assert_eq!(
            (limits.max_concurrency, limits.timeout, limits.memory_bytes),
            (5, Duration::from_secs(90), 64 << 20)
        );
        assert_eq!(m.max_response_bytes, Some(1_000_000));
        assert_eq!(m.spawn, ["hello"]);
        let fractional = Manifest::parse("timeout = 1.5", &ceilings()).unwrap();
        assert_eq!(fractional.timeout, Some(Duration::from_millis(1500)));
        let view = serde_json::to_value(&m).unwrap();
        assert_eq!(view["proxies"][0], "http://u:***@10.0.0.2:3128");
        assert_eq!(view["timeout_secs"], 90.0);
    }

    #[test]
    fn the_example_manifest_is_valid() {
        let m = Manifest::parse(include_str!("../../examples/page-watch/ignareo.toml"), &ceilings()).unwrap();
        assert_eq!(m.allowed_hosts.len(), 2);
        assert!(m.politeness.is_some());
    }

    #[test]
    fn an_empty_manifest_grants_nothing() {
        let m = Manifest::parse("", &ceilings()).unwrap();
        assert!(m.allowed_hosts.is_empty());
        assert_eq!(m.task_limits(&ceilings()).memory_bytes, 128 << 20);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("alowed_hosts = []", "alowed_hosts"),
            ("allowed_hosts = [\"https://a.com\", \"a.com\"]", "allowed_hosts[1]"),
            ("memory_limit = \"1GiB\"", "memory_limit"),
            ("memory_limit = \"lots\"", "memory_limit"),
            ("timeout = \"1h\"", "timeout"),
            ("max_concurrency = 0", "max_concurrency"),
            ("max_response_bytes = \"32MiB\"", "max_response_bytes"),
            ("proxies = [\"socks5://x:1\"]", "proxies[0]"),
            ("proxies_mandatory = true", "proxies_mandatory"),
            ("[politeness]\nrequests_per_second = -1.0", "politeness.requests_per_second"),
            ("[politeness]\nrequests_per_second = 1e-300", "politeness.requests_per_second"),
            ("[politeness]\nburst = 4000000000", "politeness.burst"),
            ("timeout = -5", "timeout"),
            ("timeout = nan", "timeout"),
            ("timeout = 1e300", "timeout"),
            ("memory_limit = 1.5", "memory_limit"),
            ("spawn = [\"hello\", \"Not A Name\"]", "spawn[1]"),
        ] {
            let err = Manifest::parse(text, &ceilings()).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
