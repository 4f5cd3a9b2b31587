//! The host's configuration: every limit with its default, where values come from (flags and
//! environment over a TOML file over defaults), and validation before anything is bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./ignareo-data";
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;

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

/// The embedded store (`<data_dir>/ignareo.db`: tasks, schedules, plugins, tokens; large outputs in `<data_dir>/ignareo.outputs/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// How hard a commit waits for the disk.
    pub synchronous: Synchronous,
    /// Finished tasks older than this are deleted (and at most `limits.retain_finished_tasks`
    /// are kept whatever their age).
    pub retain_finished_secs: u64,
    /// Outputs larger than this are kept as files beside the database, not in it.
    pub inline_output_kb: u64,
    /// How often finished tasks past their retention are deleted.
    pub prune_interval_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            retain_finished_secs: 7 * 24 * 3600,
            inline_output_kb: 64,
            prune_interval_secs: 60,
        }
    }
}

/// `full`: an accepted task survives a power loss. `normal`: it survives the process being
/// killed, but the last commits before a power loss may be lost; commits are cheaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

impl Synchronous {
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// Admission, task and request limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Tasks running at once across all plugins; also sizes the instance pool.
    pub max_running_tasks: u32,
    /// Tasks of one plugin running at once (at most `max_running_tasks`).
    pub max_running_per_plugin: Option<u32>,
    /// Accepted tasks waiting for a slot; beyond this, submissions get 429.
    pub max_queued_tasks: u32,
    /// Wall-clock limit of one task, from its start.
    pub task_timeout_secs: u64,
    /// Linear memory one task may use.
    pub task_memory_mb: u64,
    /// Largest component upload.
    pub max_component_mb: u64,
    /// Largest task input (request body of `run` and `tasks`).
    pub max_input_mb: u64,
    /// Most tasks one `tasks:batch` request may submit.
    pub max_batch_tasks: u32,
    /// Largest `tasks:batch` request body.
    pub max_batch_mb: u64,
    /// Longest `?wait=` a long-poll may ask for.
    pub max_wait_secs: u64,
    /// Finished tasks kept in memory for `GET /v1/tasks/{id}`; the oldest go first.
    pub retain_finished_tasks: u32,
    /// Events (logs, progress) kept per task for late subscribers; older ones are dropped.
    pub events_per_task: u32,
    /// How deep tasks may spawn tasks that spawn tasks.
    pub max_spawn_depth: u32,
    /// Versions kept per plugin for rollback; the oldest non-live ones are pruned.
    pub versions_per_plugin: u32,
    /// On SIGTERM/SIGINT, how long running tasks may take to finish before they are cancelled.
    pub shutdown_grace_secs: u64,
    /// New connections waiting to be accepted (the kernel caps it at net.core.somaxconn).
    pub listen_backlog: u32,
    /// Threads tasks run on, apart from the API's; one per CPU if unset.
    pub task_threads: Option<u32>,
    /// Largest output a task may return.
    pub max_output_mb: u64,
    /// Log lines (log calls and stdout/stderr lines) kept per task; the rest are counted.
    pub max_log_lines: u64,
    /// Tasks in one tree of spawned tasks (the first included).
    pub max_tasks_per_tree: u32,
    /// Call stack of one task's WebAssembly code.
    pub task_stack_kb: u64,
    /// Tokens that may exist at once (`/v1/tokens`).
    pub max_tokens: u32,
    /// How long a plugin's tasks stay in the background lane after its last task that reached
    /// a limit.
    pub background_secs: u64,
    /// OS priority (nice, 1–19) of the background lane's threads: higher leaves more CPU to
    /// the foreground under load; on an idle host the lane gets all of it either way.
    pub background_nice: i32,
    /// Running slots the background lane may hold; three quarters of `max_running_tasks`
    /// if unset.
    pub background_max_running: Option<u32>,
    /// Linear memory of a finished task reset in place (only the pages it wrote) instead of
    /// given back to the kernel, per instance slot: faster instantiation, at the price of
    /// that much resident memory per slot used.
    pub memory_keep_resident_kb: u64,
    /// Most runs a plugin with `on_interrupt = "retry"` may ask for (its `max_attempts`).
    pub max_task_attempts: u32,
    /// Schedules that may exist at once.
    pub max_schedules: u32,
}

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
    /// Client connections open at once; more wait in the listen backlog.
    pub max_connections: u32,
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
            max_control_body_kb: 64,
            refused_body_linger_secs: 5,
        }
    }
}

impl HttpConfig {
    pub fn max_control_body_bytes(&self) -> usize {
        usize::try_from(self.max_control_body_kb.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    pub fn refused_body_linger(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.refused_body_linger_secs)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.header_timeout_secs == 0 || self.body_idle_timeout_secs == 0 {
            bail!("http.header_timeout_secs and http.body_idle_timeout_secs must be at least 1");
        }
        if self.max_header_bytes < 1024 {
            bail!("http.max_header_bytes must be at least 1024 (got {})", self.max_header_bytes);
        }
        if self.max_headers < 8 {
            bail!("http.max_headers must be at least 8 (got {})", self.max_headers);
        }
        if self.refused_body_linger_secs > 300 {
            bail!("http.refused_body_linger_secs must be at most 300 (got {})", self.refused_body_linger_secs);
        }
        if self.max_connections == 0 || self.max_control_body_kb == 0 {
            bail!("http.max_connections and http.max_control_body_kb must be at least 1");
        }
        Ok(())
    }
}

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
    /// PEM files of certificate authorities trusted beside the built-in web roots (a private
    /// CA of the operator's network, say); each file may hold several certificates.
    pub ca_certificates: Vec<PathBuf>,
    /// Limits per destination host, shared by every task of every plugin on this host.
    #[serde(deserialize_with = "Politeness::with_host_defaults")]
    pub politeness: Politeness,
}

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
    pub rate: Option<(f64, u32)>,
}

/// Requests in flight to one destination host unless the operator says otherwise.
pub const DEFAULT_MAX_CONCURRENT_PER_HOST: u32 = 8;

impl Politeness {
    /// The host's defaults: 8 requests at once per destination, no rate cap.
    pub fn host_default() -> Self {
        Self { max_concurrent_per_host: Some(DEFAULT_MAX_CONCURRENT_PER_HOST), ..Self::default() }
    }

    /// The operator's rules always cap concurrency: an unset key keeps the default.
    fn with_host_defaults<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut rules = Self::deserialize(deserializer)?;
        rules.max_concurrent_per_host.get_or_insert(DEFAULT_MAX_CONCURRENT_PER_HOST);
        Ok(rules)
    }

    pub fn limits_for(&self, host: &str) -> HostLimits {
        let rule = self.hosts.get(host);
        let concurrent = rule.and_then(|r| r.max_concurrent_per_host).or(self.max_concurrent_per_host);
        let rate = rule.and_then(|r| r.requests_per_second).or(self.requests_per_second);
        let burst = rule.and_then(|r| r.burst).or(self.burst).unwrap_or(1);
        HostLimits { concurrent, rate: rate.map(|r| (r, burst)) }
    }

    /// Whether any rule limits anything.
    pub fn is_empty(&self) -> bool {
        self.max_concurrent_per_host.is_none()
            && self.requests_per_second.is_none()
            && self.hosts.values().all(|h| h.max_concurrent_per_host.is_none() && h.requests_per_second.is_none())
    }

    /// Refuses zero or non-finite limits, naming the key under `prefix`.
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
                && !(rate.is_finite() && rate > 0.0)
            {
                bail!(
                    "{prefix}{scope}requests_per_second must be a positive number (got {rate}); leave it out for no rate cap"
                );
            }
            if burst == Some(0) {
                bail!("{prefix}{scope}burst must be at least 1");
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

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_running_tasks: 1024,
            max_running_per_plugin: None,
            max_queued_tasks: 10_000,
            task_timeout_secs: 300,
            task_memory_mb: 128,
            max_component_mb: 64,
            max_input_mb: 4,
            max_batch_tasks: 10_000,
            max_batch_mb: 64,
            max_wait_secs: 60,
            retain_finished_tasks: 10_000,
            events_per_task: 1_000,
            max_spawn_depth: 8,
            versions_per_plugin: 10,
            shutdown_grace_secs: 30,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            task_threads: None,
            max_output_mb: 16,
            max_log_lines: 100_000,
            max_tasks_per_tree: 1_000,
            task_stack_kb: 512,
            max_tokens: 1_000,
            background_secs: 60,
            background_nice: 19,
            background_max_running: None,
            memory_keep_resident_kb: 4096,
            max_task_attempts: 10,
            max_schedules: 1_000,
        }
    }
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
            ca_certificates: Vec::new(),
            politeness: Politeness::host_default(),
        }
    }
}

const MIB: u64 = 1024 * 1024;
/// Most tasks one host may run at once: the instance pool is sized for all of them at start
/// (a million slots already reserve terabytes of address space).
const MAX_RUNNING_TASKS: u32 = 1_000_000;

impl Config {
    /// Reads a TOML file; unknown keys and bad values are errors that name the key.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Refuses values the host cannot run with, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let l = &self.limits;
        if !(1..=MAX_RUNNING_TASKS).contains(&l.max_running_tasks) {
            bail!(
                "limits.max_running_tasks must be between 1 and {MAX_RUNNING_TASKS} (got {}): it sizes the instance pool",
                l.max_running_tasks
            );
        }
        positive("limits.max_queued_tasks", l.max_queued_tasks.into())?;
        positive("limits.task_timeout_secs", l.task_timeout_secs)?;
        positive("limits.max_component_mb", l.max_component_mb)?;
        positive("limits.max_input_mb", l.max_input_mb)?;
        positive("limits.max_batch_tasks", l.max_batch_tasks.into())?;
        positive("limits.max_batch_mb", l.max_batch_mb)?;
        positive("limits.max_tokens", l.max_tokens.into())?;
        positive("limits.max_task_attempts", l.max_task_attempts.into())?;
        positive("limits.max_schedules", l.max_schedules.into())?;
        self.http.validate()?;
        positive("limits.events_per_task", l.events_per_task.into())?;
        positive("limits.versions_per_plugin", l.versions_per_plugin.into())?;
        positive("limits.listen_backlog", l.listen_backlog.into())?;
        positive("limits.max_output_mb", l.max_output_mb)?;
        positive("limits.max_tasks_per_tree", l.max_tasks_per_tree.into())?;
        if !(64..=16_384).contains(&l.task_stack_kb) {
            bail!("limits.task_stack_kb must be between 64 and 16384 (got {})", l.task_stack_kb);
        }
        if l.task_threads == Some(0) {
            bail!("limits.task_threads must be at least 1 (leave it out for one per CPU)");
        }
        if !(1..=4096).contains(&l.task_memory_mb) {
            bail!("limits.task_memory_mb must be between 1 and 4096 (got {})", l.task_memory_mb);
        }
        if !(1..=19).contains(&l.background_nice) {
            bail!("limits.background_nice must be between 1 and 19 (got {})", l.background_nice);
        }
        if let Some(background) = l.background_max_running
            && (background == 0 || background > l.max_running_tasks)
        {
            bail!(
                "limits.background_max_running must be between 1 and limits.max_running_tasks ({}), got {background}",
                l.max_running_tasks
            );
        }
        if let Some(per_plugin) = l.max_running_per_plugin
            && (per_plugin == 0 || per_plugin > l.max_running_tasks)
        {
            bail!(
                "limits.max_running_per_plugin must be between 1 and limits.max_running_tasks ({}), got {per_plugin}",
                l.max_running_tasks
            );
        }
        let o = &self.outbound;
        positive("store.retain_finished_secs", self.store.retain_finished_secs)?;
        positive("store.prune_interval_secs", self.store.prune_interval_secs)?;
        positive("outbound.request_timeout_ms", o.request_timeout_ms)?;
        positive("outbound.max_response_mb", o.max_response_mb)?;
        positive("outbound.fetch_all_concurrency", o.fetch_all_concurrency.into())?;
        if o.fetch_all_concurrency > o.max_fetch_all_concurrency {
            bail!(
                "outbound.fetch_all_concurrency ({}) exceeds outbound.max_fetch_all_concurrency ({})",
                o.fetch_all_concurrency,
                o.max_fetch_all_concurrency
            );
        }
        positive("outbound.max_retry_attempts", o.max_retry_attempts.into())?;
        positive("outbound.proxy_clients", o.proxy_clients as u64)?;
        positive("outbound.max_sessions_per_task", o.max_sessions_per_task.into())?;
        o.politeness.validate("outbound.politeness.")?;
        if let Some(token) = &self.token
            && token.trim().len() < 16
        {
            bail!("token must be at least 16 characters (IGNAREO_TOKEN / --token / token)");
        }
        Ok(())
    }
}

impl Limits {
    pub fn task_timeout(&self) -> Duration {
        Duration::from_secs(self.task_timeout_secs)
    }

    pub fn task_memory_bytes(&self) -> usize {
        usize::try_from(self.task_memory_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_component_bytes(&self) -> usize {
        usize::try_from(self.max_component_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_output_bytes(&self) -> usize {
        usize::try_from(self.max_output_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_batch_bytes(&self) -> usize {
        usize::try_from(self.max_batch_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_input_bytes(&self) -> usize {
        usize::try_from(self.max_input_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn task_threads(&self) -> usize {
        match self.task_threads {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    pub fn background_max_running(&self) -> u32 {
        self.background_max_running.unwrap_or_else(|| self.max_running_tasks.saturating_mul(3).div_ceil(4).max(1))
    }

    /// At most the task memory: more could never be written.
    pub fn memory_keep_resident_bytes(&self) -> usize {
        usize::try_from(self.memory_keep_resident_kb.saturating_mul(1024))
            .unwrap_or(usize::MAX)
            .min(self.task_memory_bytes())
    }

    pub fn running_per_plugin(&self) -> u32 {
        self.max_running_per_plugin.unwrap_or(self.max_running_tasks)
    }
}

impl OutboundConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_mb.saturating_mul(MIB)
    }
}

fn positive(key: &str, value: u64) -> anyhow::Result<()> {
    if value == 0 {
        bail!("{key} must be greater than 0");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        config.limits.max_running_tasks = MAX_RUNNING_TASKS + 1;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("limits.max_running_tasks must be between 1 and 1000000")
        );
    }

    #[test]
    fn politeness_rules_fall_back_per_key() {
        let config: Config = toml::from_str(
            "[outbound.politeness]\nrequests_per_second = 5.0\n[outbound.politeness.hosts.\"a.example\"]\nmax_concurrent_per_host = 2\n",
        )
        .unwrap();
        config.validate().unwrap();
        let rules = &config.outbound.politeness;
        assert_eq!(rules.limits_for("b.example"), HostLimits { concurrent: Some(8), rate: Some((5.0, 1)) });
        assert_eq!(rules.limits_for("a.example"), HostLimits { concurrent: Some(2), rate: Some((5.0, 1)) });
        assert_eq!(
            Config::default().outbound.politeness.limits_for("x"),
            HostLimits { concurrent: Some(8), rate: None }
        );

        let bad: Config = toml::from_str("[outbound.politeness.hosts.\"A.example\"]\nburst = 0\n").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("outbound.politeness.hosts.\"A.example\".burst"), "{err}");
    }
}
