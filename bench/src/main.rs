//! ignareo's benchmarks. `bench/run` builds everything in release mode and runs `all`, which
//! writes `bench/RESULTS.md` and the README's headline block from the same run; `smoke` runs
//! every scenario at a tenth of its size or less, for the test command, fails on any failure a
//! scenario counts, and writes nothing. Every scenario is bounded in count and time and talks
//! only to 127.0.0.1.
//!
//! - `invoke`: instantiate + run of `hello` in-process, one invocation at a time (µs).
//! - `trigger`: `POST /v1/plugins/hello/run` at 64 keep-alive connections (wrk), next to a plain
//!   axum handler answering the same bytes.
//! - `accept`: `POST /v1/plugins/hello/tasks`, each task committed to the store before its 202.
//! - `restart`: a host with 50 plugins stopped and started again: time to listen, compilations.
//! - `crawl`: 20,000 pages fetched by ignareo, raw tokio + reqwest, gevent and aiohttp, each run
//!   a fresh process, the clients interleaved.
//! - `hotswap`: the trigger load while a new version goes live every second.
//! - `sleepers`: 10,000, 50,000 and 100,000 tasks each sleeping 10 s at once: time to accept,
//!   time to finish, peak RSS.
//! - `outbound`: the policy layer next to a bare reqwest call, and `fetch-all` from one task
//!   through the host with and without per-host caps.
//! - `chaos`: the chaos proxy's own overhead (no faults) and the accuracy of its speed limit.
//! - `hostile`: healthy `hello` throughput alone and beside the hostile plugin set.
//! - `guests`: `hello` in Rust, Python and JavaScript in-process and over HTTP, and the memory
//!   of sleeping Python and JavaScript tasks (their crawlers run in `crawl`).

mod accept;
mod chaos;
mod crawl;
mod guests;
mod hostile;
mod hotswap;
mod invoke;
mod outbound;
mod process;
mod report;
mod restart;
mod scale;
mod sleepers;
mod targets;
mod trigger;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub struct Paths {
    /// The release `ignareo` binary.
    pub host: PathBuf,
    /// `target/wasm32-wasip2/release`.
    pub plugins: PathBuf,
    /// `target`: the Python and JavaScript plugins are in its `python-plugins` and `js-plugins`.
    pub target: PathBuf,
}

impl Paths {
    fn discover() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let release = exe.parent().context("the bench binary has a directory")?.to_path_buf();
        let target = release.parent().context("target/release has a parent")?.to_path_buf();
        let paths = Self { host: release.join("ignareo"), plugins: target.join("wasm32-wasip2/release"), target };
        if !paths.host.exists() {
            bail!("{} is missing: run bench/run (it builds the host in release mode)", paths.host.display());
        }
        Ok(paths)
    }

    pub fn plugin(&self, file: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.plugins.join(format!("{file}.wasm"));
        std::fs::read(&path).with_context(|| format!("cannot read {}: build the plugins first", path.display()))
    }

    /// The plugin `name` in `language`: the Rust one, or the Python or JavaScript namesake
    /// that `scripts/build-python-plugins` / `scripts/build-js-plugins` built.
    pub fn plugin_in(&self, language: guests::Language, name: &str) -> anyhow::Result<Vec<u8>> {
        let dir = match language {
            guests::Language::Rust => return self.plugin(&name.replace('-', "_")),
            guests::Language::Python => "python-plugins",
            guests::Language::JavaScript => "js-plugins",
        };
        let path = self.target.join(dir).join(format!("{name}.wasm"));
        std::fs::read(&path).with_context(|| format!("cannot read {}: bench/run builds it", path.display()))
    }
}

/// Tasks asleep at once in the many-tasks scenario, and how long each sleeps.
const SLEEPER_COUNTS: [usize; 3] = [10_000, 50_000, 100_000];
const SLEEP_MS: u64 = 10_000;

/// The smoke run's many-tasks scenario: enough to exercise batching and the pool, in seconds.
const SMOKE_SLEEPERS: usize = 1_000;
const SMOKE_SLEEP_MS: u64 = 1_000;
/// Invocations per repetition of the in-process scenario.
const INVOCATIONS: usize = 20_000;
/// Repetitions of every scenario in a full run.
const REPETITIONS: usize = 3;

/// Every scenario, in the order a run takes them and the report shows them.
pub const SCENARIOS: [&str; 11] = [
    "invoke", "trigger", "accept", "restart", "crawl", "hotswap", "sleepers", "outbound", "chaos", "hostile", "guests",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map_or("all", String::as_str);
    match command {
        "plain-server" => trigger::plain_server(args.get(1).map_or("127.0.0.1:0", String::as_str)).await,
        "crawl-target" => crawl::target_server(args.get(1).map_or("127.0.0.1:0", String::as_str)).await,
        "raw-crawl" => {
            let [base, count, concurrency] = &args[1..] else {
                bail!("usage: raw-crawl BASE COUNT CONCURRENCY");
            };
            crawl::raw_client(base, count.parse()?, concurrency.parse()?).await
        }
        "all" => {
            let paths = Paths::discover()?;
            let command_line = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "bench/run".to_owned());
            let mut report = report::Report::new(&command_line, true);
            for scenario in SCENARIOS {
                run_scenario(&paths, scenario, &mut report, &SLEEPER_COUNTS, SLEEP_MS).await?;
            }
            write(&report)
        }
        "smoke" => {
            scale::set_smoke();
            let write_report = args.iter().any(|a| a == "--write");
            let chosen: Vec<&str> = args[1..].iter().map(String::as_str).filter(|a| *a != "--write").collect();
            if let Some(unknown) = chosen.iter().find(|c| !SCENARIOS.contains(c)) {
                bail!("unknown scenario {unknown:?}: use {}", SCENARIOS.join(", "));
            }
            if write_report && !chosen.is_empty() {
                bail!("smoke --write runs every scenario: name none");
            }
            let paths = Paths::discover()?;
            let mut line = vec!["bench/run", "smoke"];
            line.extend(args[1..].iter().map(String::as_str));
            let mut report = report::Report::new(&line.join(" "), false);
            for scenario in SCENARIOS.into_iter().filter(|s| chosen.is_empty() || chosen.contains(s)) {
                run_scenario(&paths, scenario, &mut report, &[SMOKE_SLEEPERS], SMOKE_SLEEP_MS).await?;
            }
            let problems = report.smoke_problems();
            if !problems.is_empty() {
                bail!("the smoke run completed with failures:\n{}", problems.join("\n"));
            }
            eprintln!("every scenario ran without a failure (smoke run: small counts, speed not judged)");
            // Scenarios named on the command line show their sections, to see the layout.
            for scenario in &chosen {
                println!("{}", report.section(scenario));
            }
            if write_report { write(&report) } else { Ok(()) }
        }
        scenario if SCENARIOS.contains(&scenario) => {
            let paths = Paths::discover()?;
            let counts = match (scenario, &args[1..]) {
                ("sleepers", given) if !given.is_empty() => {
                    given.iter().map(|c| c.parse()).collect::<Result<_, _>>().context("usage: sleepers [COUNT ...]")?
                }
                _ => SLEEPER_COUNTS.to_vec(),
            };
            let mut report = report::Report::new(&format!("bench/run {}", args.join(" ")), true);
            run_scenario(&paths, scenario, &mut report, &counts, SLEEP_MS).await?;
            println!("{}", report.section(scenario));
            Ok(())
        }
        other => bail!(
            "unknown command {other:?}: use all, smoke [--write] [SCENARIO ...], one of {}, plain-server, crawl-target or raw-crawl",
            SCENARIOS.join(", ")
        ),
    }
}

/// Writes RESULTS.md and the README's headline block, both from `report`.
fn write(report: &report::Report) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let results = root.join("RESULTS.md");
    std::fs::write(&results, report.markdown())?;
    eprintln!("wrote {}", results.display());
    let readme = root.join("../README.md");
    report::rewrite_readme(&readme, &report.headline())?;
    eprintln!("wrote the headline block of {}", readme.display());
    Ok(())
}

/// Runs one scenario, each bounded in count and time, into `report`; an error names it.
async fn run_scenario(
    paths: &Paths,
    scenario: &str,
    report: &mut report::Report,
    sleeper_counts: &[usize],
    sleep_ms: u64,
) -> anyhow::Result<()> {
    eprintln!("== {scenario}");
    let repetitions = REPETITIONS;
    let ran: anyhow::Result<()> = async {
        match scenario {
            "invoke" => {
                for _ in 0..scale::repetitions(repetitions) {
                    report.invoke.push(invoke::run(paths, scale::count(INVOCATIONS)).await?);
                }
            }
            "trigger" => report.trigger = trigger::run(paths, repetitions).await?,
            "accept" => report.accept = accept::run(paths, repetitions).await?,
            "restart" => report.restart = Some(restart::run(paths, repetitions).await?),
            "crawl" => report.crawl = Some(crawl::run(paths, repetitions).await?),
            "hotswap" => report.hotswap = Some(hotswap::run(paths, repetitions).await?),
            "sleepers" => {
                report.sleepers =
                    sleepers::run_all(paths, sleeper_counts, sleep_ms, scale::repetitions(repetitions)).await?;
            }
            "outbound" => report.outbound = Some(outbound::run(paths, repetitions).await?),
            "chaos" => report.chaos = Some(chaos::run(paths, repetitions).await?),
            "hostile" => report.hostile = Some(hostile::run(paths, repetitions).await?),
            "guests" => report.guests = Some(guests::run(paths, repetitions).await?),
            other => bail!("no scenario {other:?}"),
        }
        Ok(())
    }
    .await;
    ran.with_context(|| format!("scenario {scenario}"))
}
