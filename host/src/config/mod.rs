//! The host's configuration: every limit with its default, where values come from (flags and
//! environment over a TOML file over defaults), and validation before anything is bound. One
//! file per section of the TOML file.

mod http;
mod limits;
mod outbound;
mod politeness;
mod store;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub use http::HttpConfig;
pub use limits::Limits;
pub use outbound::OutboundConfig;
pub use politeness::{DEFAULT_MAX_CONCURRENT_PER_HOST, HostLimits, HostPoliteness, Politeness, Rate};
pub use store::{StoreConfig, Synchronous};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./ignareo-data";
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;

const MIB: u64 = 1024 * 1024;

/// Seconds in a day: the unit of the longest durations the host accepts.
const DAY_SECS: u64 = 24 * 3600;

/// The largest size in MiB any size limit may be: past it, a limit protects nothing.
const MAX_MIB: u64 = 4096;

/// Everything `ignareo serve` needs. Field names are the TOML keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The bootstrap admin bearer token; generated at first start when unset.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    pub limits: Limits,
    pub http: HttpConfig,
    pub outbound: OutboundConfig,
    pub store: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default listen address is valid"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            token: None,
            limits: Limits::default(),
            http: HttpConfig::default(),
            outbound: OutboundConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys and bad values are errors that name the key.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Refuses values the host cannot run with, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.limits.validate()?;
        self.http.validate()?;
        self.store.validate()?;
        self.outbound.validate()?;
        if let Some(token) = &self.token
            && token.trim().len() < 16
        {
            bail!("token must be at least 16 characters (IGNAREO_TOKEN / --token / token)");
        }
        Ok(())
    }
}

fn positive(key: &str, value: u64) -> anyhow::Result<()> {
    if value == 0 {
        bail!("{key} must be greater than 0");
    }
    Ok(())
}

/// Refuses a value outside `range`: a duration or size past its range would overflow the
/// clock arithmetic it feeds, or bound nothing.
fn within(key: &str, value: u64, range: RangeInclusive<u64>) -> anyhow::Result<()> {
    if !range.contains(&value) {
        bail!("{key} must be between {} and {} (got {value})", range.start(), range.end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::politeness::Rate;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn the_background_lane_defaults_to_three_quarters_of_the_slots() {
        let mut limits = Limits { max_running_tasks: 1024, ..Limits::default() };
        assert_eq!(limits.background_max_running(), 768);
        limits.max_running_tasks = 2;
        assert_eq!(limits.background_max_running(), 2);
        limits.max_running_tasks = 1;
        assert_eq!(limits.background_max_running(), 1);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nmax_runing = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_runing"), "{err}");
    }

    #[test]
    fn invalid_limits_name_the_key() {
        let mut config: Config =
            toml::from_str("[limits]\nmax_running_tasks = 4\nmax_running_per_plugin = 5\n").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("limits.max_running_per_plugin"), "{err}");
        config.limits.max_running_per_plugin = None;
        config.limits.background_max_running = Some(5);
        assert!(config.validate().unwrap_err().to_string().contains("limits.background_max_running"));
        config.limits.background_max_running = None;
        config.limits.background_nice = 20;
        assert!(config.validate().unwrap_err().to_string().contains("limits.background_nice"));
        config.limits.background_nice = 19;
        config.limits.task_memory_mb = 0;
        assert!(config.validate().unwrap_err().to_string().contains("limits.task_memory_mb"));
        config.limits.task_memory_mb = 128;
        config.limits.max_running_tasks = 1_000_001;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("limits.max_running_tasks must be between 1 and 1000000")
        );
    }

    #[test]
    fn durations_sizes_and_rates_out_of_range_name_the_key() {
        for (text, key) in [
            ("[limits]\ntask_timeout_secs = 9223372036854775807", "limits.task_timeout_secs"),
            ("[limits]\nmax_wait_secs = 86400", "limits.max_wait_secs"),
            ("[limits]\nbackground_secs = 9223372036854775807", "limits.background_secs"),
            ("[limits]\nmax_input_mb = 1000000", "limits.max_input_mb"),
            ("[http]\nheader_timeout_secs = 100000", "http.header_timeout_secs"),
            ("[outbound]\nrequest_timeout_ms = 9223372036854775807", "outbound.request_timeout_ms"),
            ("[store]\nretain_finished_secs = 9223372036854775807", "store.retain_finished_secs"),
            ("[outbound.politeness]\nrequests_per_second = 1e-300", "outbound.politeness.requests_per_second"),
            ("[outbound.politeness]\nrequests_per_second = nan", "outbound.politeness.requests_per_second"),
            ("[outbound.politeness]\nrequests_per_second = 1e300", "outbound.politeness.requests_per_second"),
            ("[outbound.politeness]\nburst = 4000000000", "outbound.politeness.burst"),
        ] {
            let config: Config = toml::from_str(text).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn politeness_rules_fall_back_per_key() {
        let config: Config = toml::from_str(
            "[outbound.politeness]\nrequests_per_second = 5.0\n[outbound.politeness.hosts.\"a.example\"]\nmax_concurrent_per_host = 2\n",
        )
        .unwrap();
        config.validate().unwrap();
        let rules = &config.outbound.politeness;
        assert_eq!(
            rules.limits_for("b.example"),
            HostLimits { concurrent: Some(8), rate: Some(Rate { per_second: 5.0, burst: 1 }) }
        );
        assert_eq!(
            rules.limits_for("a.example"),
            HostLimits { concurrent: Some(2), rate: Some(Rate { per_second: 5.0, burst: 1 }) }
        );
        assert_eq!(
            Config::default().outbound.politeness.limits_for("x"),
            HostLimits { concurrent: Some(8), rate: None }
        );

        let bad: Config = toml::from_str("[outbound.politeness.hosts.\"A.example\"]\nburst = 0\n").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("outbound.politeness.hosts.\"A.example\".burst"), "{err}");
    }
}
