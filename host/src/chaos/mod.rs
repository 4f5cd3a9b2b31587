//! `ignareo chaos-proxy`: a proxy that degrades every HTTP link through it on purpose, to see
//! how tasks behave on a bad network (the seed's specification, Part 4).
//!
//! It works as a forward proxy (absolute-form requests, and `CONNECT` tunnels so HTTPS works
//! too) and, with `--upstream`, as a reverse proxy in front of one server. The weather
//! (latency, total speed, jitter, resets) comes from flags or a TOML file and can be changed
//! live through `/_chaos/config`; `/_chaos/stats` counts what was injected.
//!
//! An open proxy is a way into the network it runs in, so it listens on a loopback address
//! unless told otherwise (`--allow-remote`), holds a bounded number of links, closes clients
//! that send no request head in time, gives up on upstreams that do not answer the connection,
//! and can require a token on its control endpoint.

mod control;
mod link;
mod throttle;
mod weather;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::DEFAULT_LISTEN_BACKLOG;
use url::Url;

use throttle::Throttle;
use weather::Dice;
pub use weather::{Knobs, Weather};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8888";
/// Links open at once, unless `--max-connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Seconds a client has to send its request head, unless `--head-timeout-secs` says otherwise.
pub const DEFAULT_HEAD_TIMEOUT_SECS: u64 = 10;
/// Seconds an upstream has to accept the connection, unless `--connect-timeout-secs` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// How often the total speed is drawn again between `speed-min` and `speed-max`.
pub const SPEED_REDRAW: Duration = Duration::from_secs(1);

/// `ignareo chaos-proxy` flags; each is also a key of the `--config` TOML file (without the
/// dashes), and flags win over the file.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// Address to listen on [default: 127.0.0.1:8888].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Reverse-proxy origin-form requests to this server (http://host:port).
    #[arg(long)]
    pub upstream: Option<String>,
    /// Seed of the random draws, for reproducible runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// TOML file with any of these keys (`latency-min = 100`, `reset-enable = true`, ...).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen on an address other than a loopback one: anyone who reaches it may use the proxy.
    #[arg(long)]
    pub allow_remote: bool,
    /// Links open at once; more are refused with 503 [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
    /// A client must send its request head within this time or is closed [default: 10].
    #[arg(long, value_name = "SECS")]
    pub head_timeout_secs: Option<u64>,
    /// An upstream must accept the connection within this time, or the client gets 504 [default: 10].
    #[arg(long, value_name = "SECS")]
    pub connect_timeout_secs: Option<u64>,
    /// Requests to `/_chaos/*` must carry `Authorization: Bearer TOKEN` (else 401).
    #[arg(long, value_name = "TOKEN", env = "IGNAREO_CHAOS_CONTROL_TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,
    #[command(flatten)]
    pub knobs: Knobs,
}

/// A checked configuration.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `host:port` of the reverse-proxied server.
    pub upstream: Option<String>,
    pub seed: Option<u64>,
    pub weather: Weather,
    pub limits: LinkLimits,
}

/// What one client may hold of the proxy, and how long the proxy waits for either side.
#[derive(Debug, Clone)]
pub struct LinkLimits {
    pub max_connections: u32,
    pub head_timeout: Duration,
    pub connect_timeout: Duration,
    pub control_token: Option<String>,
}

impl ChaosArgs {
    pub fn settings(self) -> anyhow::Result<Settings> {
        let (file, file_knobs) = match &self.config {
            Some(path) => read_file(path)?,
            None => (FileSettings::default(), Knobs::default()),
        };
        let weather = self.knobs.over(&file_knobs).weather().map_err(anyhow::Error::msg)?;
        let upstream = self.upstream.or(file.upstream).map(|u| upstream_authority(&u)).transpose()?;
        let listen = match self.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse().context("the default address")?,
        };
        let allow_remote = self.allow_remote || file.allow_remote;
        if !(listen.ip().is_loopback() || allow_remote) {
            bail!(
                "chaos-proxy will not listen on {listen}, which is not a loopback address: anyone who can reach it \
                 could use it as an open proxy into this machine's network; pass --allow-remote to mean it"
            );
        }
        let limits = LinkLimits {
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
            head_timeout: seconds(
                "--head-timeout-secs",
                self.head_timeout_secs.or(file.head_timeout_secs).unwrap_or(DEFAULT_HEAD_TIMEOUT_SECS),
            )?,
            connect_timeout: seconds(
                "--connect-timeout-secs",
                self.connect_timeout_secs.or(file.connect_timeout_secs).unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS),
            )?,
            control_token: self.control_token.or(file.control_token),
        };
        if limits.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        if limits.control_token.as_deref().is_some_and(str::is_empty) {
            bail!("--control-token must not be empty");
        }
        Ok(Settings { listen, upstream, seed: self.seed.or(file.seed), weather, limits })
    }
}

/// A timeout flag's value, checked: 1 second to 1 hour.
fn seconds(flag: &str, secs: u64) -> anyhow::Result<Duration> {
    if !(1..=3600).contains(&secs) {
        bail!("{flag} must be between 1 and 3600 seconds (got {secs})");
    }
    Ok(Duration::from_secs(secs))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    listen: Option<SocketAddr>,
    upstream: Option<String>,
    seed: Option<u64>,
    #[serde(default)]
    allow_remote: bool,
    max_connections: Option<u32>,
    head_timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    control_token: Option<String>,
}

/// The keys of [`FileSettings`], told apart from the weather's in a file that holds both.
const FILE_KEYS: [&str; 8] = [
    "listen",
    "upstream",
    "seed",
    "allow-remote",
    "max-connections",
    "head-timeout-secs",
    "connect-timeout-secs",
    "control-token",
];

/// The file's own keys, then the weather's: each set refuses keys it does not know.
fn read_file(path: &std::path::Path) -> anyhow::Result<(FileSettings, Knobs)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid TOML in {}", path.display()))?;
    let mut own = toml::Table::new();
    for key in FILE_KEYS {
        if let Some(value) = table.remove(key) {
            own.insert(key.to_owned(), value);
        }
    }
    let settings = own.try_into().with_context(|| format!("invalid settings in {}", path.display()))?;
    let knobs = table.try_into().with_context(|| format!("invalid chaos parameters in {}", path.display()))?;
    Ok((settings, knobs))
}

fn upstream_authority(text: &str) -> anyhow::Result<String> {
    let url = Url::parse(text).with_context(|| format!("--upstream {text:?} is not a URL; write http://host:port"))?;
    match (url.scheme(), url.host_str(), url.port_or_known_default()) {
        ("http", Some(host), Some(port)) if matches!(url.path(), "" | "/") => Ok(format!("{host}:{port}")),
        _ => bail!("--upstream must be http://host[:port] without a path (got {text:?})"),
    }
}

/// What every link shares.
pub struct Chaos {
    weather: RwLock<Weather>,
    dice: Dice,
    throttle: Throttle,
    stats: Stats,
    upstream: Option<String>,
    limits: LinkLimits,
}

#[derive(Default)]
struct Stats {
    links: AtomicU64,
    active: AtomicI64,
    bytes_to_clients: AtomicU64,
    bytes_to_upstreams: AtomicU64,
    resets: AtomicU64,
    jitters: AtomicU64,
    jitter_ms: AtomicU64,
    refused: AtomicU64,
    upstream_failures: AtomicU64,
    over_capacity: AtomicU64,
    head_timeouts: AtomicU64,
}

impl Chaos {
    fn weather(&self) -> Weather {
        *self.weather.read()
    }

    fn set_weather(&self, weather: Weather) {
        *self.weather.write() = weather;
        self.draw_speed();
    }

    /// Draws the total speed for the next interval (fixed in simple mode).
    fn draw_speed(&self) {
        let speed = self.weather().speed.map(|(min, max)| self.dice.in_range(min, max));
        self.throttle.set_rate(speed);
    }
}

pub struct ChaosProxy {
    listener: TcpListener,
    chaos: Arc<Chaos>,
}

impl ChaosProxy {
    pub fn bind(settings: Settings) -> anyhow::Result<Self> {
        if let Err(e) = crate::net::raise_descriptor_limit() {
            tracing::warn!(error = %e, "cannot read the file-descriptor limit");
        }
        let listener = crate::net::bind(settings.listen, DEFAULT_LISTEN_BACKLOG)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let chaos = Arc::new(Chaos {
            weather: RwLock::new(settings.weather),
            dice: Dice::new(settings.seed),
            throttle: Throttle::default(),
            stats: Stats::default(),
            upstream: settings.upstream,
            limits: settings.limits,
        });
        chaos.draw_speed();
        Ok(Self { listener, chaos })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Accepts links until `shutdown` resolves; links in flight are dropped with the process.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let redraw = tokio::spawn(redraw_speed(self.chaos.clone()));
        let mut shutdown = std::pin::pin!(shutdown);
        let links = Arc::new(Semaphore::new(self.chaos.limits.max_connections as usize));
        loop {
            let (client, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let chaos = self.chaos.clone();
            let Ok(held) = links.clone().try_acquire_owned() else {
                chaos.stats.over_capacity.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(link::over_capacity(client, chaos.limits.max_connections));
                continue;
            };
            tokio::spawn(async move {
                let _held = held;
                if let Err(e) = link::serve(client, chaos).await {
                    tracing::debug!(%peer, error = %e, "link ended with an error");
                }
            });
        }
        redraw.abort();
        Ok(())
    }
}

async fn redraw_speed(chaos: Arc<Chaos>) {
    let mut ticks = tokio::time::interval(SPEED_REDRAW);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        chaos.draw_speed();
    }
}
