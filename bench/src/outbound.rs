//! Outbound HTTP: what the policy layer (grants, politeness gates, redirects handled by the
//! host, size limits) costs next to a bare reqwest call, and what `fetch-all` from one task
//! achieves through the host with and without a per-host cap.
//!
//! The target is an axum server in this process answering a ~2 KB page at once, so the
//! figures are about the client side.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Path;
use axum::response::Html;
use axum::routing::get;
use futures::StreamExt;
use ignareo::capabilities::Capabilities;
use ignareo::capabilities::bindings::http::Request;
use ignareo::capabilities::outbound::TaskOutbound;
use ignareo::config::Config;
use ignareo::manifest::{Ceilings, Manifest};
use ignareo::task::{Origin, Task};
use serde_json::json;

use crate::Paths;
use crate::invoke::NoSpawn;
use crate::process::Process;

const GRANT: &str = "allowed_hosts = [\"http://127.0.0.1:*\"]\n";
/// Requests per parallel run, and the concurrency of every parallel run.
const PARALLEL_REQUESTS: usize = 20_000;
pub const CONCURRENCY: u32 = 64;
const SEQUENTIAL_REQUESTS: usize = 2_000;
/// The rate-capped run: this many requests at this cap.
const PACED_REQUESTS: usize = 1_000;
const PACED_RATE: f64 = 500.0;
/// A per-host cap high enough never to bind.
const UNCAPPED: u32 = 100_000;

pub struct OutboundResult {
    /// (what, mean µs per request) for one request at a time.
    pub sequential: Vec<(&'static str, f64)>,
    /// (what, requests, requests/s) for each repetition of each parallel run.
    pub parallel: Vec<(String, usize, f64)>,
    /// The page every request fetches.
    pub page_bytes: usize,
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<OutboundResult> {
    let target = start_target().await?;
    let urls: Vec<String> = (0..crate::scale::count(PARALLEL_REQUESTS)).map(|i| format!("{target}/page/{i}")).collect();
    let bare = reqwest::Client::builder().no_proxy().build()?;
    let policy = policy_layer()?;

    let mut result =
        OutboundResult { sequential: Vec::new(), parallel: Vec::new(), page_bytes: crate::crawl::page(0).len() };
    let count = urls.len();
    for _ in 0..crate::scale::repetitions(repetitions) {
        result.sequential.push(("bare reqwest", sequential(|url| bare_get(&bare, url), &urls).await?));
        result.sequential.push(("policy layer", sequential(|url| policy_get(&policy, url), &urls).await?));
        result.parallel.push(("bare reqwest, in-process".into(), count, bare_parallel(&bare, &urls).await?));
        result.parallel.push((
            format!("policy layer fetch-all, in-process, cap lifted, {CONCURRENCY} idle kept"),
            count,
            policy_parallel(&policy, &urls).await?,
        ));
    }

    // Every host takes one fetch-all of all the pages (the default stops at 10,000) and keeps
    // as many idle connections to the target as requests run at once (the default keeps 16).
    let one_fetch_all = format!("[outbound]\nmax_fetch_all_requests = 100000\npool_idle_per_host = {CONCURRENCY}\n");
    let uncapped = format!("{one_fetch_all}[outbound.politeness]\nmax_concurrent_per_host = {UNCAPPED}\n");
    let paced = format!("{uncapped}requests_per_second = {PACED_RATE}\n");
    for (what, config, count) in [
        ("cap lifted", uncapped.clone(), count),
        ("default cap", one_fetch_all.clone(), count),
        ("cap lifted, rate capped", paced, crate::scale::count(PACED_REQUESTS)),
    ] {
        let host = host_with(paths, &config).await?;
        // The caps as the host reports them, so that the label says what was in effect.
        let outbound = &host.config().await?["outbound"];
        let politeness = &outbound["politeness"];
        let mut label = format!(
            "host: crawler task fetch-all, {what} ({} per host, {} idle kept",
            politeness["max_concurrent_per_host"].as_u64().context("no max_concurrent_per_host in /v1/config")?,
            outbound["pool_idle_per_host"].as_u64().context("no pool_idle_per_host in /v1/config")?
        );
        if let Some(rate) = politeness["requests_per_second"].as_f64() {
            let _ = write!(label, ", {rate} requests/s");
        }
        label += ")";
        for _ in 0..crate::scale::repetitions(repetitions) {
            result.parallel.push((label.clone(), count, crawl(&host, &urls[..count]).await?));
        }
    }
    Ok(result)
}

/// The crawl's page, answered at once.
async fn start_target() -> anyhow::Result<String> {
    let app = Router::new().route("/page/{n}", get(|Path(n): Path<u64>| async move { Html(crate::crawl::page(n)) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

/// The host's outbound machinery for one task of a plugin granted 127.0.0.1, with the
/// per-host cap lifted so that only the layer's own cost shows, and as many idle connections
/// kept as requests run at once (bare reqwest keeps every one).
fn policy_layer() -> anyhow::Result<Arc<TaskOutbound>> {
    let mut config = Config::default();
    config.outbound.politeness.max_concurrent_per_host = Some(100_000);
    config.outbound.pool_idle_per_host = CONCURRENCY as usize;
    let ceilings = Ceilings::of(&config);
    let manifest = Manifest::parse(GRANT, &ceilings)?;
    let capabilities = Capabilities::new(&config.outbound)?;
    let task =
        Arc::new(Task::new("bench".into(), "bench".into(), Origin::Caller(None), Duration::from_mins(10), 16, 1_000));
    Ok(capabilities.prepare(&manifest.capabilities("bench", &ceilings), task, Arc::new(NoSpawn)).outbound)
}

fn request(url: &str) -> Request {
    Request {
        method: "GET".into(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
        proxy: None,
        retry: None,
    }
}

async fn bare_get(client: &reqwest::Client, url: String) -> anyhow::Result<usize> {
    let response = client.get(url).send().await?.error_for_status()?;
    Ok(response.bytes().await?.len())
}

async fn policy_get(policy: &TaskOutbound, url: String) -> anyhow::Result<usize> {
    match policy.send(request(&url), None).await {
        Ok(response) if response.status == 200 => Ok(response.body.len()),
        Ok(response) => bail!("{url} answered {}", response.status),
        Err(e) => bail!("{url}: {e:?}"),
    }
}

/// Mean µs per request, one at a time.
async fn sequential<F, Fut>(get: F, urls: &[String]) -> anyhow::Result<f64>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    for url in &urls[..100] {
        get(url.clone()).await?;
    }
    let started = Instant::now();
    for url in &urls[..crate::scale::count(SEQUENTIAL_REQUESTS)] {
        get(url.clone()).await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / crate::scale::count(SEQUENTIAL_REQUESTS) as f64)
}

async fn bare_parallel(client: &reqwest::Client, urls: &[String]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<usize>> = futures::stream::iter(urls.iter().cloned())
        .map(|url| bare_get(client, url))
        .buffered(CONCURRENCY as usize)
        .collect()
        .await;
    let elapsed = started.elapsed();
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(urls.len() as f64 / elapsed.as_secs_f64())
}

async fn policy_parallel(policy: &TaskOutbound, urls: &[String]) -> anyhow::Result<f64> {
    let requests = urls.iter().map(|u| request(u)).collect();
    let started = Instant::now();
    let results = policy.fetch_all(requests, Some(CONCURRENCY), None).await;
    let elapsed = started.elapsed();
    if let Some(failed) = results.iter().find(|r| !matches!(r, Ok(response) if response.status == 200)) {
        bail!("a policy-layer request failed: {failed:?}");
    }
    Ok(urls.len() as f64 / elapsed.as_secs_f64())
}

async fn host_with(paths: &Paths, config: &str) -> anyhow::Result<Process> {
    let file = std::env::temp_dir().join(format!("ignareo-bench-outbound-{}.toml", std::process::id()));
    std::fs::write(&file, config)?;
    let host = Process::host(&paths.host, &["--config", file.to_str().context("UTF-8 temp path")?]).await;
    // The host has read it at start.
    let _ = std::fs::remove_file(&file);
    let host = host?;
    host.upload_with_manifest(&crate::process::client(), "crawler", paths.plugin("crawler")?, GRANT).await?;
    Ok(host)
}

/// One crawler task fetching `urls` with fetch-all at `CONCURRENCY`: requests/s.
async fn crawl(host: &Process, urls: &[String]) -> anyhow::Result<f64> {
    let client = crate::process::client();
    let input = json!({"urls": urls, "concurrency": CONCURRENCY});
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/plugins/crawler/run", host.base))
        .timeout(Duration::from_mins(10))
        .json(&input)
        .send()
        .await?;
    let elapsed = started.elapsed();
    let body: serde_json::Value = response.json().await?;
    if body["fetched"] != urls.len() {
        bail!("the crawl did not fetch every URL: {}", body["error"]);
    }
    Ok(urls.len() as f64 / elapsed.as_secs_f64())
}
