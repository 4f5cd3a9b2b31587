//! The host through a bad network: 500 crawler tasks (and 100 single fetches) whose every
//! request crosses a chaos proxy that delays, stalls and cuts links. Every task must end in a
//! definite state, none may hang past its deadline, tasks with a retry policy must succeed,
//! and the host must stay responsive.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ignareo_e2e::target::Target;
use ignareo_e2e::{ChaosProxy, Host};
use serde_json::{Value, json};

/// Crawls with a retry policy, and without one.
const CRAWLS: usize = 400;
const BARE_CRAWLS: usize = 100;
const FETCHES: usize = 100;
const DEADLINE_SECS: u64 = 60;

#[tokio::test]
async fn every_task_is_accounted_for_through_a_bad_network() {
    let target = Target::start().await;
    let chaos = ChaosProxy::start(&[
        "--latency-min",
        "100",
        "--latency-max",
        "400",
        "--jitter-prob",
        "0.1",
        "--jitter-min",
        "50",
        "--jitter-max",
        "200",
        "--reset-enable",
        "--reset-prob",
        "0.3",
        "--seed",
        "2026",
    ])
    .await;
    let host = Host::start_with_config("[outbound.politeness]\nmax_concurrent_per_host = 256\n", &[]).await;

    // Every request of these plugins goes through the chaos proxy (the manifest's pool).
    let manifest = format!("allowed_hosts = [\"http://127.0.0.1:*\"]\nproxies = [\"{}\"]\n", chaos.base);
    host.upload_with("crawler", "crawler", &manifest).await;
    host.upload_with("fetch-title", "fetch-title", &manifest).await;

    let slowest_health_us = Arc::new(AtomicU64::new(0));
    let probe_client = reqwest::Client::new();
    probe_client.get(host.url("/healthz")).send().await.expect("the host answers");
    let probe = tokio::spawn(watch_health(probe_client, host.base.clone(), slowest_health_us.clone()));

    let submit = |plugin: &'static str, input: Value| {
        let request =
            host.client.post(host.url(&format!("/v1/plugins/{plugin}/tasks?timeout={DEADLINE_SECS}"))).json(&input);
        async move {
            let response = request.send().await.expect("the host answers");
            assert_eq!(response.status(), 202);
            response.json::<Value>().await.expect("JSON")["id"].as_str().expect("an id").to_owned()
        }
    };
    let started = Instant::now();
    let crawls = futures::future::join_all((0..CRAWLS).map(|i| {
        let urls = [target.url(&format!("/page/{i}")), target.url(&format!("/page/{}", i + 1000))];
        submit("crawler", json!({"urls": urls, "concurrency": 2, "retries": 10}))
    }))
    .await;
    let bare_crawls = futures::future::join_all((0..BARE_CRAWLS).map(|i| {
        let urls = [target.url(&format!("/page/{i}")), target.url(&format!("/page/{}", i + 2000))];
        submit("crawler", json!({"urls": urls, "concurrency": 2}))
    }))
    .await;
    let fetches = futures::future::join_all(
        (0..FETCHES).map(|i| submit("fetch-title", json!({"url": target.url(&format!("/page/{i}"))}))),
    )
    .await;

    let mut states = std::collections::HashMap::<String, usize>::new();
    for id in &crawls {
        let task = settle(&host, id, started).await;
        assert_eq!(task["state"], "succeeded", "a crawl with retries ends well: {task}");
        assert_eq!(task["output"]["failed"], 0, "every page was fetched in the end: {task}");
        *states.entry("crawl succeeded".into()).or_default() += 1;
    }
    // Without retries a crawl still ends well, reporting the pages it could not fetch.
    let mut pages_lost = 0;
    for id in &bare_crawls {
        let task = settle(&host, id, started).await;
        assert_eq!(task["state"], "succeeded", "{task}");
        pages_lost += task["output"]["failed"].as_u64().expect("a count of failed pages");
    }
    assert!(pages_lost > 0, "without retries some pages are lost to the resets");
    for id in &fetches {
        let task = settle(&host, id, started).await;
        match task["state"].as_str() {
            Some("succeeded") => assert_eq!(task["output"]["status"], 200, "{task}"),
            Some("failed") => {
                let message = task["error"]["message"].as_str().unwrap_or_default();
                let typed = ["protocol error", "connection failed", "proxy failed", "timed out"]
                    .iter()
                    .any(|cause| message.contains(cause));
                assert!(typed, "a failure names its cause: {task}");
            }
            other => panic!("task {id} ended as {other:?}: {task}"),
        }
        *states.entry(format!("fetch {}", task["state"].as_str().unwrap_or_default())).or_default() += 1;
    }
    let chaos_stats: Value = reqwest::get(chaos.url("/_chaos/stats")).await.unwrap().json().await.unwrap();
    assert!(chaos_stats["resets"].as_u64().unwrap() > 100, "the network misbehaved: {chaos_stats}");
    assert!(states.get("fetch failed").copied().unwrap_or(0) > 0, "without retries some fetches fail: {states:?}");

    probe.abort();
    let slowest = Duration::from_micros(slowest_health_us.load(Ordering::Relaxed));
    assert!(
        slowest < Duration::from_millis(100),
        "/healthz answers within 100 ms throughout; the slowest took {slowest:?}"
    );
    let load = host.get_json("/healthz").await["load"].clone();
    assert_eq!((load["running"].as_u64(), load["queued"].as_u64()), (Some(0), Some(0)), "{load}");
}

/// Waits for a task's final state; it must come before its deadline (plus the time the host
/// needs to notice).
async fn settle(host: &Host, id: &str, started: Instant) -> Value {
    loop {
        let task = host.wait(id, 10).await;
        if !matches!(task["state"].as_str(), Some("queued" | "running")) {
            return task;
        }
        assert!(
            started.elapsed() < Duration::from_secs(DEADLINE_SECS + 15),
            "task {id} hangs past its deadline: {task}"
        );
    }
}

/// Asks `/healthz` every 50 ms, recording the slowest answer (a failed one counts as endless).
async fn watch_health(client: reqwest::Client, base: String, slowest_us: Arc<AtomicU64>) {
    loop {
        let started = Instant::now();
        let answered = client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success());
        let took = if answered { u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX) } else { u64::MAX };
        slowest_us.fetch_max(took, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
