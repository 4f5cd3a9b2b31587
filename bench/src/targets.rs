//! The targets the benchmarks are held to, as the issues that asked for them set them: the
//! report and the README's headline say of each whether the run met it, so that a miss is
//! never left out. A smoke run judges failures only, never speed.

/// Instantiate + run of `hello`, in-process.
pub const INVOKE_P50_US: f64 = 20.0;
pub const INVOKE_P99_US: f64 = 100.0;
/// `POST .../run` requests/s over a plain axum handler's.
pub const TRIGGER_VS_PLAIN: f64 = 0.5;
/// The concurrency at which the crawl targets apply.
pub const CRAWL_CONCURRENCY: usize = 1_000;
/// One `crawler` task's `fetch-all` over raw tokio + reqwest: fetches/s, and CPU per fetch.
pub const CRAWL_VS_RAW: f64 = 0.85;
pub const CRAWL_CPU_VS_RAW: f64 = 1.3;
/// Its fetches/s over the Python clients'.
pub const CRAWL_VS_GEVENT: f64 = 10.0;
pub const CRAWL_VS_AIOHTTP: f64 = 3.0;
/// Tasks asleep at once, and the peak RSS they must fit in.
pub const SLEEPERS_COUNT: usize = 100_000;
pub const SLEEPERS_PEAK_RSS_MIB: f64 = 4096.0;
/// From spawning a restarted host with 50 plugins to its listening line.
pub const RESTART_READY_S: f64 = 2.0;
/// Healthy `hello` requests/s beside the hostile set over alone (a drop under 20%).
pub const HOSTILE_VS_ALONE: f64 = 0.8;
/// Instantiate + run of the Python `hello`, in-process.
pub const PYTHON_INVOKE_P50_US: f64 = 1000.0;
/// Peak RSS per sleeping Python task.
pub const PYTHON_SLEEPER_MIB: f64 = 2.0;
/// The Python and JavaScript `crawler`s' fetch-all at the crawl concurrency: fetches/s over
/// asyncio + aiohttp's, and over the Rust `crawler`'s.
pub const GUEST_CRAWL_VS_AIOHTTP: f64 = 3.0;
pub const GUEST_CRAWL_VS_RUST: f64 = 0.8;

/// Every target in a sentence, for the README while no full run has judged them.
pub fn summary() -> String {
    format!(
        "instantiate + run of `hello` p50 ≤ {INVOKE_P50_US} µs and p99 ≤ {INVOKE_P99_US} µs; `POST .../run` ≥ {TRIGGER_VS_PLAIN}× a plain axum handler's requests/s; at crawl concurrency {CRAWL_CONCURRENCY}, one `crawler` task's `fetch-all` ≥ {CRAWL_VS_RAW}× raw tokio + reqwest's fetches/s at ≤ {CRAWL_CPU_VS_RAW}× its CPU per fetch, ≥ {CRAWL_VS_GEVENT}× gevent + requests and ≥ {CRAWL_VS_AIOHTTP}× asyncio + aiohttp; {SLEEPERS_COUNT} sleeping tasks in ≤ {SLEEPERS_PEAK_RSS_MIB} MiB peak RSS; no failed request during hot swaps; a restart with {} plugins ready in < {RESTART_READY_S} s without compiling; healthy throughput beside hostile plugins ≥ {HOSTILE_VS_ALONE}× alone",
        crate::restart::PLUGINS
    )
}

/// What to say of a target: met or missed in a full run; a smoke run's figures judge nothing.
pub fn verdict(full: bool, met: bool) -> &'static str {
    match (full, met) {
        (false, _) => "not judged in a smoke run",
        (true, true) => "met",
        (true, false) => "**missed**",
    }
}
