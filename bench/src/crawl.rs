//! Fan-out crawl: 20,000 pages of a target server that answers a small HTML page after a 50 ms
//! non-blocking delay, fetched at concurrency 100 and 1,000 by what a user would pick: ignareo
//! (one `crawler` task running `fetch-all`, in Rust, Python and JavaScript; as many Rust
//! `crawler` tasks as the concurrency, each fetching its share one page after another), raw
//! tokio + reqwest, Python gevent + requests and asyncio + aiohttp.
//!
//! Every run of every client is a process of its own, started for that run: a fresh host (no
//! connection pool warmed by an earlier run) against fresh baseline processes. The runs are
//! interleaved: each repetition runs every client once, in turn. CPU is counted the same way for
//! every client: the whole process's user + system time from its spawn, start-up included (for
//! ignareo: the host from spawn, plugin upload and compilation included, to the end of the
//! crawl; for a baseline: from spawn to exit), and peak RSS is that process's high-water mark.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Path as UrlPath;
use axum::response::Html;
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::Paths;
use crate::guests::Language;
use crate::process::Process;

pub const PAGES: usize = 20_000;
pub const DELAY: Duration = Duration::from_millis(50);
pub const CONCURRENCIES: [usize; 2] = [100, 1_000];
/// The longest one client's run may take, start-up included.
const RUN_LIMIT: Duration = Duration::from_mins(10);

/// Pages each client fetches in this run.
fn pages() -> usize {
    crate::scale::count(PAGES)
}

/// The `crawler` plugin's manifest: the target granted, room for 1,000 tasks of it at once.
pub const GRANT: &str = "allowed_hosts = [\"http://127.0.0.1:*\"]\nmax_concurrency = 1000\ntimeout = 600\n";
/// Room for 1,000 tasks and 1,000 requests in flight to one host, connections kept, and for
/// one `fetch-all` of every page. The report states what differs from the defaults as the
/// host reports it (`GET /v1/config`).
const HOST_CONFIG: &str = "[limits]\nmax_running_tasks = 2000\nmax_running_per_plugin = 1000\ntask_timeout_secs = 600\n\
                           [outbound]\npool_idle_per_host = 2000\nmax_fetch_all_requests = 100000\n\
                           [outbound.politeness]\nmax_concurrent_per_host = 100000\n";

pub const FETCH_ALL: &str = "ignareo: one task, fetch-all";
pub const PYTHON_FETCH_ALL: &str = "ignareo: the Python crawler, one task, fetch_all";
pub const JS_FETCH_ALL: &str = "ignareo: the JavaScript crawler, one task, fetchAll";
pub const TASK_PER_CONNECTION: &str = "ignareo: one task per connection, sequential";
pub const RAW: &str = "tokio + reqwest (no wasm)";
pub const GEVENT: &str = "Python gevent + requests";
pub const AIOHTTP: &str = "Python asyncio + aiohttp";
/// Every client, in the order each repetition runs them.
pub const CLIENTS: [&str; 7] = [FETCH_ALL, PYTHON_FETCH_ALL, JS_FETCH_ALL, TASK_PER_CONNECTION, RAW, GEVENT, AIOHTTP];

/// One run of one client at one concurrency.
pub struct CrawlRun {
    pub client: &'static str,
    pub concurrency: usize,
    pub fetched: usize,
    pub failed: usize,
    /// The crawl itself: from the first request to the last answer.
    pub elapsed_s: f64,
    /// The whole process from its spawn (see the module's comment).
    pub cpu_s: f64,
    /// The part of `cpu_s` spent before the crawl's first request.
    pub startup_cpu_s: f64,
    pub peak_rss_mib: f64,
    /// What this client was run with, beside the defaults, as it states it.
    pub settings: String,
}

impl CrawlRun {
    pub fn fetches_per_sec(&self) -> f64 {
        self.fetched as f64 / self.elapsed_s
    }

    pub fn cpu_s_per_1000(&self) -> f64 {
        self.cpu_s * 1000.0 / self.fetched.max(1) as f64
    }
}

pub struct CrawlResult {
    pub runs: Vec<CrawlRun>,
    /// (key, value in the crawl's hosts, default) for every host setting that differs.
    pub host_settings: Vec<(String, String, String)>,
    /// The target's page, as every client receives it.
    pub page_bytes: usize,
}

/// The target's page `n`: its title and some paragraphs.
pub fn page(n: u64) -> String {
    let padding = "<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p>\n".repeat(30);
    format!("<!doctype html><html><head><title>Page {n}</title></head><body>\n{padding}</body></html>\n")
}

/// The target: `GET /page/{n}` answers a page with its title after the delay, without
/// holding a thread.
pub async fn target_server(listen: &str) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/page/{n}",
        get(|UrlPath(n): UrlPath<u64>| async move {
            tokio::time::sleep(DELAY).await;
            Html(page(n))
        }),
    );
    let address: SocketAddr = listen.parse()?;
    let listener = ignareo::net::bind(address, 8192)?;
    println!("crawl target listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The raw client: every page through one reqwest client, `concurrency` at a time. Prints
/// the same JSON line as the Python clients.
pub async fn raw_client(base: &str, count: usize, concurrency: usize) -> anyhow::Result<()> {
    let startup_cpu_s = own_cpu_s();
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(concurrency).build()?;
    let started = Instant::now();
    let titles: Vec<Option<String>> = futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let response = client.get(format!("{base}/page/{i}")).send().await.ok()?;
                if !response.status().is_success() {
                    return None;
                }
                let page = response.text().await.ok().filter(|page| !page.is_empty())?;
                Some(title(&page))
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    let fetched = titles.iter().flatten().count();
    let elapsed_s = started.elapsed().as_secs_f64();
    let settings = format!("`pool_max_idle_per_host({concurrency})`, `no_proxy()`, `buffered({concurrency})`");
    println!(
        "{}",
        json!({"fetched": fetched, "failed": count - fetched, "elapsed_s": elapsed_s, "startup_cpu_s": startup_cpu_s, "settings": settings})
    );
    Ok(())
}

/// A page's title, whitespace collapsed: what the `crawler` plugin keeps of every page, so
/// that every client does the same work.
fn title(page: &str) -> String {
    let lower = page.to_ascii_lowercase();
    let Some(open) = lower.find("<title") else { return String::new() };
    let Some(start) = lower[open..].find('>').map(|at| open + at + 1) else { return String::new() };
    let Some(len) = lower[start..].find("</title") else { return String::new() };
    page[start..start + len].split_whitespace().collect::<Vec<_>>().join(" ")
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<CrawlResult> {
    let config = std::env::temp_dir().join(format!("ignareo-bench-crawl-{}.toml", std::process::id()));
    std::fs::write(&config, HOST_CONFIG)?;
    let result = run_with(paths, repetitions, config.to_str().context("a UTF-8 temp path")?).await;
    let _ = std::fs::remove_file(&config);
    result
}

/// Every client at every concurrency, `repetitions` times, the hosts started with `config`.
async fn run_with(paths: &Paths, repetitions: usize, config: &str) -> anyhow::Result<CrawlResult> {
    let target = start_target().await?;
    let python = python_venv()?.join("bin/python");
    let host_settings = host_settings(paths, config).await?;
    let repetitions = crate::scale::repetitions(repetitions);
    let mut runs = Vec::new();
    for concurrency in CONCURRENCIES {
        for repetition in 1..=repetitions {
            eprintln!("   concurrency {concurrency} ({repetition}/{repetitions})");
            for client in CLIENTS {
                let run = match client {
                    FETCH_ALL | PYTHON_FETCH_ALL | JS_FETCH_ALL | TASK_PER_CONNECTION => {
                        ignareo(paths, config, client, &target.base, concurrency).await
                    }
                    RAW => {
                        let mut command = std::process::Command::new(std::env::current_exe()?);
                        command.arg("raw-crawl");
                        client_process(client, command, &target.base, concurrency).await
                    }
                    GEVENT | AIOHTTP => {
                        let script = if client == GEVENT { "crawl_gevent.py" } else { "crawl_aiohttp.py" };
                        let mut command = std::process::Command::new(&python);
                        command.arg(python_script(script));
                        client_process(client, command, &target.base, concurrency).await
                    }
                    other => bail!("no crawl client {other:?}"),
                };
                runs.push(run.with_context(|| format!("{client} at concurrency {concurrency}"))?);
            }
        }
    }
    Ok(CrawlResult { runs, host_settings, page_bytes: page(0).len() })
}

async fn start_target() -> anyhow::Result<Process> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["crawl-target", "127.0.0.1:0"]);
    Process::spawn(command).await
}

/// The host settings of the crawl that differ from the defaults, as two hosts report them: one
/// started with the crawl's configuration file, one without.
async fn host_settings(paths: &Paths, config: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut reported = Vec::new();
    for args in [&["--config", config][..], &[]] {
        let host = Process::host(&paths.host, args).await?;
        reported.push(host.config().await?);
        host.terminate().await?;
    }
    let (mut used, mut defaults) = (Vec::new(), Vec::new());
    flatten("", &reported[0], &mut used);
    flatten("", &reported[1], &mut defaults);
    // Every host of the bench has a listening address and a data directory of its own.
    let own = ["listen", "data_dir"];
    Ok(used
        .into_iter()
        .filter(|(key, _)| !own.contains(&key.as_str()))
        .filter_map(|(key, value)| {
            let default =
                defaults.iter().find(|(k, _)| *k == key).map_or_else(|| "none".to_owned(), |(_, v)| v.clone());
            (value != default).then_some((key, value, default))
        })
        .collect())
}

/// `value`'s leaves as (dotted key, JSON text).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&key, value, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), "unset".to_owned())),
        leaf => out.push((prefix.to_owned(), leaf.to_string())),
    }
}

fn urls(base: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{base}/page/{i}")).collect()
}

/// One ignareo run on a host started for it (data directory fresh, so the upload compiles the
/// plugin), measured from the host's spawn to the end of the crawl.
async fn ignareo(
    paths: &Paths,
    config: &str,
    client: &'static str,
    target: &str,
    concurrency: usize,
) -> anyhow::Result<CrawlRun> {
    let language = match client {
        PYTHON_FETCH_ALL => Language::Python,
        JS_FETCH_ALL => Language::JavaScript,
        _ => Language::Rust,
    };
    let host = Process::host(&paths.host, &["--config", config]).await?;
    let crawler = paths.plugin_in(language, "crawler")?;
    host.upload_with_manifest(&crate::process::client(), "crawler", crawler, GRANT).await?;
    let startup_cpu_s = host.cpu_s()?;
    let started = Instant::now();
    let crawl = async {
        if client == TASK_PER_CONNECTION {
            task_per_connection(&host, target, concurrency).await
        } else {
            fetch_all(&host, target, concurrency).await
        }
    };
    let fetched = tokio::time::timeout(RUN_LIMIT, crawl).await.context("the crawl did not end in time")??;
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu_s = host.cpu_s()?;
    let peak_rss_mib = host.memory_mib("VmHWM")?;
    // Gone before the next client starts, so that no two clients share the machine.
    host.terminate().await?;
    let settings = if client == TASK_PER_CONNECTION {
        format!("{concurrency} tasks in one `tasks:batch`, each `fetch-all` with concurrency 1")
    } else {
        format!("`fetch-all` with concurrency {concurrency}")
    };
    Ok(CrawlRun {
        client,
        concurrency,
        fetched,
        failed: pages() - fetched,
        elapsed_s,
        cpu_s,
        startup_cpu_s,
        peak_rss_mib,
        settings,
    })
}

/// One `crawler` task fetching every page with `fetch-all`: the pages fetched.
async fn fetch_all(host: &Process, target: &str, concurrency: usize) -> anyhow::Result<usize> {
    let client = crate::process::client();
    let input = json!({"urls": urls(target, 0..pages()), "concurrency": concurrency});
    let response = client.post(format!("{}/v1/plugins/crawler/run", host.base)).json(&input).send().await?;
    if !response.status().is_success() {
        bail!("the crawler task failed: {}", response.text().await?);
    }
    let output: Value = response.json().await?;
    Ok(usize::try_from(output["fetched"].as_u64().context("the crawler answers fetched")?)?)
}

/// `concurrency` `crawler` tasks, submitted in one batch, each fetching its share of the pages
/// one after another: the pages fetched.
async fn task_per_connection(host: &Process, target: &str, concurrency: usize) -> anyhow::Result<usize> {
    let client = crate::process::client();
    let share = pages() / concurrency;
    let inputs: Vec<Value> =
        (0..concurrency).map(|t| json!({"urls": urls(target, t * share..(t + 1) * share), "concurrency": 1})).collect();
    let response = client
        .post(format!("{}/v1/plugins/crawler/tasks:batch", host.base))
        .json(&json!({"inputs": inputs}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the batch was refused: {}", response.text().await?);
    }
    let accepted: Value = response.json().await?;
    let ids: Vec<String> = accepted["ids"]
        .as_array()
        .context("the batch answers ids")?
        .iter()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    let mut fetched = 0;
    for id in ids {
        loop {
            let task: Value = client.get(format!("{}/v1/tasks/{id}?wait=30", host.base)).send().await?.json().await?;
            match task["state"].as_str() {
                Some("queued" | "running") => continue,
                Some("succeeded") => fetched += usize::try_from(task["output"]["fetched"].as_u64().unwrap_or(0))?,
                _ => bail!("a crawler task did not succeed: {task}"),
            }
            break;
        }
    }
    Ok(fetched)
}

/// A baseline client in a process of its own, which prints what it fetched as one JSON line;
/// its CPU time and peak memory are measured from the outside, spawn to exit.
async fn client_process(
    client: &'static str,
    mut command: std::process::Command,
    target: &str,
    concurrency: usize,
) -> anyhow::Result<CrawlRun> {
    command.args([target, &pages().to_string(), &concurrency.to_string()]);
    let exited = crate::process::run_to_exit(command, RUN_LIMIT).await?;
    if !exited.success {
        bail!("{client} failed (its stderr is above)");
    }
    let figures: Value =
        serde_json::from_slice(&exited.stdout).with_context(|| format!("{client} printed no figures"))?;
    let number = |key: &str| figures[key].as_f64().with_context(|| format!("{client} printed no {key}"));
    Ok(CrawlRun {
        client,
        concurrency,
        fetched: usize::try_from(figures["fetched"].as_u64().context("no fetched")?)?,
        failed: usize::try_from(figures["failed"].as_u64().context("no failed")?)?,
        elapsed_s: number("elapsed_s")?,
        cpu_s: exited.cpu_s,
        startup_cpu_s: number("startup_cpu_s")?,
        peak_rss_mib: exited.peak_rss_mib,
        settings: figures["settings"].as_str().context("no settings")?.to_owned(),
    })
}

fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

/// The virtual environment bench/run made with the Python clients' packages.
fn python_venv() -> anyhow::Result<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-venv");
    if !venv.join("bin/python").exists() {
        bail!("{} is missing: bench/run installs bench/python/requirements.txt there", venv.display());
    }
    Ok(venv)
}

/// This process's CPU seconds so far (user + system).
fn own_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct given, which is zeroed and owned here.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &raw mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
