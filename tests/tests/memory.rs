//! Memory is bounded by configuration, not by luck: a caller with a trigger token who fills
//! the host with large inputs and outputs, lists them, sends a huge batch, or leaves a large
//! backlog for the next start, grows the host's memory by no more than its budgets
//! (`limits.finished_memory_mb`, `limits.queued_inputs_memory_mb`, `limits.max_list_page`),
//! and loses nothing it was told was accepted.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ignareo_e2e::{Host, TempDir};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MIB: u64 = 1024 * 1024;
/// One MiB, as a length.
const MIB_LEN: usize = 1024 * 1024;

/// A token that may only trigger `plugins`, made by the admin: the attacker's.
async fn trigger_token(host: &Host, plugins: &[&str]) -> String {
    let request = json!({"name": "attacker", "scopes": ["trigger"], "plugins": plugins});
    let response = host.client.post(host.url("/v1/tokens")).json(&request).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// Submits `count` tasks of `hello`, each with an input of `bytes` bytes, over four
/// connections at once, with `token`; their ids.
async fn flood(host: &Host, token: &str, count: usize, bytes: usize) -> Vec<String> {
    let input = json!("x".repeat(bytes));
    let mut lanes = Vec::new();
    for lane in 0..4 {
        let (url, input, token) = (host.url("/v1/plugins/hello/tasks"), input.clone(), token.to_owned());
        lanes.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            for _ in (lane..count).step_by(4) {
                let response = client.post(&url).bearer_auth(&token).json(&input).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                ids.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for lane in lanes {
        ids.extend(lane.await.unwrap());
    }
    ids
}

/// Waits until `count` tasks have succeeded since the host started.
async fn until_succeeded(host: &Host, count: u64) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while host.get_json("/healthz").await["load"]["ended"]["succeeded"].as_u64().unwrap() < count {
        assert!(Instant::now() < deadline, "{count} tasks did not all succeed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every task `GET /v1/tasks` lists, page by page of `limit`; checks each page's bound.
async fn list_all(host: &Host, limit: usize) -> Vec<Value> {
    let (mut tasks, mut after) = (Vec::new(), None::<String>);
    loop {
        let path = match &after {
            None => format!("/v1/tasks?plugin=hello&limit={limit}"),
            Some(cursor) => format!("/v1/tasks?plugin=hello&limit={limit}&after={cursor}"),
        };
        let page = host.get_json(&path).await;
        let items = page["tasks"].as_array().unwrap();
        assert!(items.len() <= limit, "a page holds at most its limit");
        tasks.extend(items.iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return tasks,
        }
    }
}

fn output_len(view: &Value) -> usize {
    view["output"]["hello"].as_str().map_or(0, str::len)
}

#[tokio::test]
async fn large_outputs_stay_within_the_budget_are_read_back_on_demand_and_a_restart_loads_none() {
    let data_dir = TempDir::new("memory");
    let config = data_dir.write(
        "config.toml",
        "[limits]\nmax_running_tasks = 4\nfinished_memory_mb = 8\nqueued_inputs_memory_mb = 8\nmax_list_page = 50\n\
         [store]\nsynchronous = \"normal\"\n",
    );
    let args = ["--config", config.to_str().unwrap()];
    let host = Host::start_in(data_dir.path(), &args).await.unwrap();
    host.upload("hello", "hello").await;
    let token = trigger_token(&host, &["hello"]).await;
    let warmup = flood(&host, &token, 4, MIB_LEN).await;
    until_succeeded(&host, 4).await;
    let baseline = host.peak_rss_bytes();

    // 200 MiB of outputs, 25 times the budget for them.
    let ids = flood(&host, &token, 200, MIB_LEN).await;
    until_succeeded(&host, 204).await;
    let listed = list_all(&host, 50).await;
    let bound = baseline + 64 * MIB;
    let peak = host.peak_rss_bytes();
    assert!(peak < bound, "peak RSS {} MiB over the bound of {} MiB", peak / MIB, bound / MIB);

    assert_eq!(listed.len(), 204, "every task is listed once, page after page");
    let distinct: HashSet<&str> = listed.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), 204);
    assert!(listed.iter().all(|t| output_len(t) == MIB_LEN), "outputs read back from the store are whole");
    let over = host.get_json("/v1/tasks?limit=51").await;
    assert_eq!(over["error"]["code"], "bad_query", "a page over limits.max_list_page is refused: {over}");
    let first = host.get_json(&format!("/v1/tasks/{}", warmup[0])).await;
    assert_eq!(output_len(&first), MIB_LEN, "the oldest output is read from the store: {}", first["state"]);

    assert!(host.terminate().await.success());
    let host = Host::start_in(data_dir.path(), &args).await.unwrap();
    let task = host.get_json(&format!("/v1/tasks/{}", ids[100])).await;
    assert_eq!((task["state"].as_str(), output_len(&task)), (Some("succeeded"), MIB_LEN));
    let restarted = host.peak_rss_bytes();
    assert!(
        restarted < baseline + 32 * MIB,
        "a restart over 204 MiB of kept outputs peaks at {} MiB (first start: {} MiB)",
        restarted / MIB,
        baseline / MIB
    );
}

#[tokio::test]
async fn a_huge_batch_is_refused_before_anything_is_built_from_it() {
    let host = Host::start_with_config("[limits]\nmax_input_mb = 1\n", &[]).await;
    host.upload("hello", "hello").await;
    let token = trigger_token(&host, &["hello"]).await;
    let baseline = host.peak_rss_bytes();
    let post = |body: Vec<u8>| {
        reqwest::Client::new()
            .post(host.url("/v1/plugins/hello/tasks:batch"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // 16 million inputs of one digit each: 32 MiB of body, gigabytes as a tree.
    let mut body = b"{\"inputs\":[".to_vec();
    body.extend(b"0,".repeat(16 * 1024 * 1024));
    body.extend(b"0]}");
    let response = post(body).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "too_many_inputs");
    let peak = host.peak_rss_bytes();
    let bound = baseline + 128 * MIB;
    assert!(peak < bound, "peak RSS {} MiB over the bound of {} MiB", peak / MIB, bound / MIB);

    let large = serde_json::to_vec(&json!({"inputs": [1, "x".repeat(2 * MIB_LEN)]})).unwrap();
    let response = post(large).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let refusal = response.json::<Value>().await.unwrap();
    assert_eq!(refusal["error"]["code"], "input_too_large", "{refusal}");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("inputs[1]"), "{refusal}");
    assert_eq!(host.get_json("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn a_backlog_over_the_queue_limit_is_kept_at_restart_within_the_input_budget() {
    let data_dir = TempDir::new("memory");
    let write = |toml: &str| data_dir.write("config.toml", toml);
    let config = write("[limits]\nmax_running_tasks = 1\n[store]\nsynchronous = \"normal\"\n");
    let args = ["--config", config.to_str().unwrap()];
    let host = Host::start_in(data_dir.path(), &args).await.unwrap();
    host.upload("sleep", "sleep").await;
    host.upload("hello", "hello").await;
    let baseline = host.peak_rss_bytes();
    let blocker = host.submit("sleep", &json!({"ms": 600_000})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.get_json(&format!("/v1/tasks/{blocker}")).await["state"] != "running" {
        assert!(Instant::now() < deadline, "the blocker never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 400 queued tasks with 512 KiB inputs each: 200 MiB waiting behind the blocker.
    let mut ids = Vec::new();
    for batch in 0..4 {
        let inputs: Vec<Value> = (0..100).map(|n| json!(format!("{batch}-{n}-{}", "x".repeat(512 * 1024)))).collect();
        let response =
            host.client.post(host.url("/v1/plugins/hello/tasks:batch")).json(&json!({"inputs": inputs})).send().await;
        let accepted: Value = response.unwrap().json().await.unwrap();
        ids.extend(accepted["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()));
    }
    assert_eq!(ids.len(), 400);
    host.kill().await;

    write(
        "[limits]\nmax_running_tasks = 1\nmax_queued_tasks = 50\nqueued_inputs_memory_mb = 4\nfinished_memory_mb = 4\n\
         [store]\nsynchronous = \"normal\"\n",
    );
    let host = Host::start_in(data_dir.path(), &args).await.unwrap();
    let late = host.client.post(host.url("/v1/plugins/hello/tasks")).json(&json!(1)).send().await.unwrap();
    assert_eq!(late.status(), StatusCode::TOO_MANY_REQUESTS, "the recovered backlog fills the queue");
    let last = host.get_json(&format!("/v1/tasks/{}", ids[399])).await;
    assert_eq!(last["id"], json!(ids[399]), "a task of the backlog is shown before it is taken up: {last}");
    until_succeeded(&host, 400).await;
    let peak = host.peak_rss_bytes();
    let bound = baseline + 48 * MIB;
    assert!(peak < bound, "peak RSS {} MiB over the bound of {} MiB", peak / MIB, bound / MIB);
    for (n, id) in [(0, &ids[0]), (399, &ids[399])] {
        let task = host.get_json(&format!("/v1/tasks/{id}")).await;
        let output = task["output"]["hello"].as_str().unwrap();
        assert!(output.starts_with(&format!("{}-{}-x", n / 100, n % 100)), "task {n} ran on its own input");
        assert_eq!(output.len(), format!("{}-{}-", n / 100, n % 100).len() + 512 * 1024);
    }
    assert_eq!(host.get_json(&format!("/v1/tasks/{blocker}")).await["state"], "interrupted");
    let accepted = host.client.post(host.url("/v1/plugins/hello/tasks")).json(&json!(1)).send().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED, "once the backlog is done, the queue takes tasks again");
}
