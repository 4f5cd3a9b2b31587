//! ignareo's benchmarks. `bench/run` builds everything in release mode and runs `all`, which
//! writes `bench/RESULTS.md`; `smoke` runs every scenario at a tenth of its size or less, for the
//! test command, and writes nothing. Every scenario is bounded in count and time and talks only to
//! 127.0.0.1.
//!
//! - `invoke`: instantiate + run of `hello` in-process, one invocation at a time (µs).
//! - `trigger`: `POST /v1/plugins/hello/run` at 64 keep-alive connections (wrk), next to a plain
//!   axum handler answering the same bytes.
//! - `sleepers`: 10,000, 50,000 and 100,000 tasks each sleeping 10 s at once: time to accept,
//!   time to finish, peak RSS.
//! - `outbound`: the policy layer next to a bare reqwest call, and `fetch-all` from one task
//!   through the host with and without per-host caps.
//! - `chaos`: the chaos proxy's own overhead (no faults) and the accuracy of its speed limit.
//! - `hostile`: healthy `hello` throughput alone and beside the hostile plugin set.
//! - `crawl`: 20,000 pages fetched by ignareo, raw tokio + reqwest, gevent and aiohttp.
//! - `hotswap`: the trigger load while a new version goes live every second.

mod accept;
mod chaos;
mod crawl;
mod hostile;
mod hotswap;
mod invoke;
mod outbound;
mod process;
mod report;
mod restart;
mod scale;
mod sleepers;
mod trigger;

use std::path::PathBuf;

use anyhow::{Context, bail};

pub struct Paths {
    /// The release `ignareo` binary.
    pub host: PathBuf,
    /// `target/wasm32-wasip2/release`.
    pub plugins: PathBuf,
}

impl Paths {
    fn discover() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let release = exe.parent().context("the bench binary has a directory")?.to_path_buf();
        let paths = Self {
            host: release.join("ignareo"),
            plugins: release.parent().context("target/release has a parent")?.join("wasm32-wasip2/release"),
        };
        if !paths.host.exists() {
            bail!("{} is missing: run bench/run (it builds the host in release mode)", paths.host.display());
        }
        Ok(paths)
    }

    pub fn plugin(&self, file: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.plugins.join(format!("{file}.wasm"));
        std::fs::read(&path).with_context(|| format!("cannot read {}: build the plugins first", path.display()))
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("all");
    match command {
        "plain-server" => trigger::plain_server(args.get(1).map_or("127.0.0.1:0", String::as_str)).await,
        "crawl-target" => crawl::target_server(args.get(1).map_or("127.0.0.1:0", String::as_str)).await,
        "raw-crawl" => {
            let [base, count, concurrency] = &args[1..] else {
                bail!("usage: raw-crawl BASE COUNT CONCURRENCY");
            };
            crawl::raw_client(base, count.parse()?, concurrency.parse()?).await
        }
        "trigger" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run trigger");
            report.trigger = trigger::run(&paths, 3).await?;
            println!("{}", report.trigger_markdown());
            Ok(())
        }
        "hotswap" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run hotswap");
            report.hotswap = Some(hotswap::run(&paths, 3).await?);
            println!("{}", report.hotswap_markdown());
            Ok(())
        }
        "crawl" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run crawl");
            report.crawl = crawl::run(&paths, 3).await?;
            println!("{}", report.crawl_markdown());
            Ok(())
        }
        "sleepers" => {
            let paths = Paths::discover()?;
            let counts = match &args[1..] {
                [] => SLEEPER_COUNTS.to_vec(),
                given => {
                    given.iter().map(|c| c.parse()).collect::<Result<_, _>>().context("usage: sleepers [COUNT ...]")?
                }
            };
            let mut report = report::Report::new("bench/run sleepers");
            report.sleepers = sleepers::run_all(&paths, &counts, SLEEP_MS, 3).await?;
            println!("{}", report.sleepers_markdown());
            Ok(())
        }
        "invoke" => {
            let paths = Paths::discover()?;
            println!("{}", invoke::run(&paths, INVOCATIONS).await?.markdown());
            Ok(())
        }
        "outbound" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run outbound");
            report.outbound = Some(outbound::run(&paths, 3).await?);
            println!("{}", report.outbound_markdown());
            Ok(())
        }
        "chaos" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run chaos");
            report.chaos = Some(chaos::run(&paths, 3).await?);
            println!("{}", report.chaos_markdown());
            Ok(())
        }
        "accept" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run accept");
            report.accept = accept::run(&paths, 3).await?;
            println!("{}", report.accept_markdown());
            Ok(())
        }
        "restart" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run restart");
            report.restart = Some(restart::run(&paths, 3).await?);
            println!("{}", report.restart_markdown());
            Ok(())
        }
        "hostile" => {
            let paths = Paths::discover()?;
            let mut report = report::Report::new("bench/run hostile");
            report.hostile = Some(hostile::run(&paths, 3).await?);
            println!("{}", report.hostile_markdown());
            Ok(())
        }
        "all" => {
            let paths = Paths::discover()?;
            let command_line = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "bench/run".to_owned());
            let report = every_scenario(&paths, &command_line, &SLEEPER_COUNTS, SLEEP_MS).await?;
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md");
            std::fs::write(&path, report.markdown())?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        "smoke" => {
            scale::set_smoke();
            let paths = Paths::discover()?;
            let report = every_scenario(&paths, "bench/run smoke", &[SMOKE_SLEEPERS], SMOKE_SLEEP_MS).await?;
            let problems = report.smoke_problems();
            if !problems.is_empty() {
                bail!("the smoke run completed with failures:\n{}", problems.join("\n"));
            }
            eprintln!("every scenario ran without a failure (smoke run: small counts, nothing written)");
            Ok(())
        }
        other => bail!(
            "unknown command {other:?}: use all, smoke, invoke, trigger, accept, restart, crawl, hotswap, sleepers, outbound, chaos, hostile, plain-server, crawl-target or raw-crawl"
        ),
    }
}

/// Runs every scenario in turn, each bounded in count and time.
async fn every_scenario(
    paths: &Paths,
    command_line: &str,
    sleeper_counts: &[usize],
    sleep_ms: u64,
) -> anyhow::Result<report::Report> {
    let mut report = report::Report::new(command_line);
    eprintln!("== invoke");
    for _ in 0..scale::repetitions(3) {
        report.invoke.push(invoke::run(paths, scale::count(INVOCATIONS)).await?);
    }
    eprintln!("== trigger");
    report.trigger = trigger::run(paths, 3).await?;
    eprintln!("== accept");
    report.accept = accept::run(paths, 3).await?;
    eprintln!("== restart");
    report.restart = Some(restart::run(paths, 3).await?);
    eprintln!("== crawl");
    report.crawl = crawl::run(paths, 3).await?;
    eprintln!("== hotswap");
    report.hotswap = Some(hotswap::run(paths, 3).await?);
    eprintln!("== sleepers");
    report.sleepers = sleepers::run_all(paths, sleeper_counts, sleep_ms, scale::repetitions(3)).await?;
    eprintln!("== outbound");
    report.outbound = Some(outbound::run(paths, 3).await?);
    eprintln!("== chaos");
    report.chaos = Some(chaos::run(paths, 3).await?);
    eprintln!("== hostile");
    report.hostile = Some(hostile::run(paths, 3).await?);
    Ok(report)
}
