//! Running tasks: sync and async, long-polling, cancellation, traps, deadlines, back-pressure,
//! child tasks, and the refusals of the task endpoints.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::{Duration, Instant};

use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST};
use serde_json::{Value, json};

async fn wait_until_running(host: &Host, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.get_json(&format!("/v1/tasks/{id}")).await["state"] != "running" {
        assert!(Instant::now() < deadline, "task {id} never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sync_runs_answer_the_output() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    host.upload("sleep", "sleep").await;
    let response =
        host.client.post(host.url("/v1/plugins/hello/run")).json(&json!({"a": [1, 2]})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("ignareo-task-id"));
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"hello": {"a": [1, 2]}}));
    assert_eq!(host.run("hello", &json!(null)).await, (200, json!({"hello": null})));
    assert_eq!(host.run("sleep", &json!({"ms": 50})).await, (200, json!({"slept_ms": 50})));

    let (status, body) = host.run("sleep", &json!({"ms": "soon"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "invalid_input");
    assert!(body["error"]["message"].as_str().unwrap().contains("ms"), "{body}");
    assert!(body["error"]["task_id"].is_string());
}

#[tokio::test]
async fn async_tasks_are_accepted_and_long_polled() {
    let host = Host::start().await;
    host.upload("sleep", "sleep").await;
    let response =
        host.client.post(host.url("/v1/plugins/sleep/tasks")).json(&json!({"ms": 700})).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/tasks/{id}"));
    assert!(matches!(accepted["state"].as_str(), Some("queued" | "running")));

    let started = Instant::now();
    let done = host.wait(id, 30).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the long-poll returned when the task ended, not at its limit"
    );
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["output"], json!({"slept_ms": 700}));
    assert!(done["duration_ms"].as_u64().unwrap() >= 700);
    assert_eq!(done["version"], host.get_json("/v1/plugins/sleep").await["live"]);

    let listed = host.get_json("/v1/tasks?plugin=sleep&state=succeeded").await;
    assert_eq!(listed["tasks"][0]["id"], id);
    assert_eq!(host.get_json("/v1/tasks?plugin=hello").await["tasks"], json!([]));
}

#[tokio::test]
async fn guest_output_becomes_log_events_and_explains_traps() {
    let host = Host::start().await;
    host.upload("trap", "trap").await;
    let (status, body) = host.run("trap", &json!({"kind": "panic"})).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "task_trapped");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unreachable") && message.contains("panics on purpose"), "{message}");
    let id = body["error"]["task_id"].as_str().unwrap();
    let task = host.get_json(&format!("/v1/tasks/{id}")).await;
    assert_eq!(task["state"], "failed");
    assert_eq!(task["error"]["kind"], "trap");
    let events = host.events(id).await;
    assert!(
        events.iter().any(|(name, data)| name == "log"
            && data["level"] == "warn"
            && data["message"].as_str().is_some_and(|m| m.contains("panics on purpose"))),
        "the panic message was a warn log event: {events:?}"
    );

    for kind in ["unreachable", "divide-by-zero"] {
        let (status, body) = host.run("trap", &json!({"kind": kind})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (502, Some("task_trapped")), "{kind}: {body}");
    }
}

#[tokio::test]
async fn a_guest_that_outgrows_its_memory_limit_fails_naming_the_limit() {
    let host = Host::start_with(&["--task-memory-mb", "16"]).await;
    host.upload("trap", "trap").await;
    let (status, body) = host.run("trap", &json!({"kind": "out-of-memory"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("memory_limit")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("memory limit of 16 MiB"), "{body}");
    let id = body["error"]["task_id"].as_str().unwrap();
    assert_eq!(host.get_json(&format!("/v1/tasks/{id}")).await["error"]["kind"], "memory-limit");
}

/// Submits `count` tasks of `plugin` sleeping `ms` each, watches them to their (successful)
/// end, and returns the most that were running at once.
async fn most_running_at_once(host: &Host, plugin: &str, count: usize, ms: u64) -> usize {
    let input = json!({ "ms": ms });
    let ids: Vec<String> = futures::future::join_all((0..count).map(|_| host.submit(plugin, &input))).await;
    let deadline = Instant::now() + Duration::from_mins(1);
    let mut most = 0;
    loop {
        let running =
            host.get_json(&format!("/v1/tasks?plugin={plugin}&state=running")).await["tasks"].as_array().unwrap().len();
        most = most.max(running);
        let mut states = Vec::with_capacity(ids.len());
        for id in &ids {
            states.push(host.get_json(&format!("/v1/tasks/{id}")).await["state"].clone());
        }
        if states.iter().all(|s| s.as_str().is_some_and(|s| s != "queued" && s != "running")) {
            assert!(states.iter().all(|s| s == "succeeded"), "{states:?}");
            return most;
        }
        assert!(Instant::now() < deadline, "the tasks did not end: {states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_manifest_narrows_memory_timeout_and_concurrency_for_its_plugin() {
    let host = Host::start().await;
    host.upload_with("small-trap", "trap", "memory_limit = \"16MiB\"\n").await;
    let (status, body) = host.run("small-trap", &json!({"kind": "out-of-memory"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("memory_limit")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("memory limit of 16 MiB"), "{body}");

    host.upload_with("brief", "sleep", "timeout = 1\n").await;
    let (status, body) = host.run("brief", &json!({"ms": 60_000})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (504, Some("timed_out")), "{body}");
    let too_long =
        host.client.post(host.url("/v1/plugins/brief/run?timeout=5")).json(&json!({"ms": 1})).send().await.unwrap();
    assert_eq!(too_long.status(), 400);
    let message = too_long.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("manifest") && message.contains("1 s"), "{message}");

    host.upload_with("pair", "sleep", "max_concurrency = 2\n").await;
    let most = most_running_at_once(&host, "pair", 6, 300).await;
    assert_eq!(most, 2, "at most max_concurrency tasks of the plugin ran at once, and that many did");

    // A new version with another max_concurrency takes effect for the tasks that follow.
    host.upload_with("pair", "sleep", "max_concurrency = 1\n").await;
    assert_eq!(most_running_at_once(&host, "pair", 3, 200).await, 1);
}

#[tokio::test]
async fn a_spinning_guest_is_stopped_at_its_deadline_while_others_run() {
    let host = Host::start().await;
    host.upload("spin", "spin").await;
    host.upload("sleep", "sleep").await;
    let spin = host.client.post(host.url("/v1/plugins/spin/tasks?timeout=5")).send().await.unwrap();
    let spin: Value = spin.json().await.unwrap();
    let spin_id = spin["id"].as_str().unwrap().to_owned();
    wait_until_running(&host, &spin_id).await;

    // While it spins, other tasks start and finish.
    let input = json!({"ms": 100});
    let sleepers: Vec<String> = futures::future::join_all((0..20).map(|_| host.submit("sleep", &input))).await;
    for id in &sleepers {
        assert_eq!(host.wait(id, 30).await["state"], "succeeded");
    }
    assert_eq!(
        host.get_json(&format!("/v1/tasks/{spin_id}")).await["state"],
        "running",
        "the spinner was still running"
    );

    let ended = host.wait(&spin_id, 30).await;
    assert_eq!(ended["state"], "timed-out");
    assert_eq!(ended["error"]["kind"], "timeout");
    assert_eq!(ended["timeout_ms"], 5000);
    assert_eq!(host.get_json("/healthz").await["load"]["running"], 0);
}

#[tokio::test]
async fn cancelling_stops_a_sleeping_task_and_one_mid_request() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload("sleep", "sleep").await;
    host.upload_with("fetch-title", "fetch-title", LOCAL_MANIFEST).await;

    let sleeping = host.submit("sleep", &json!({"ms": 600_000})).await;
    wait_until_running(&host, &sleeping).await;
    let started = Instant::now();
    let response = host.client.delete(host.url(&format!("/v1/tasks/{sleeping}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["state"], "cancelled");
    assert!(started.elapsed() < Duration::from_secs(5));

    let fetching = host.submit("fetch-title", &json!({"url": target.url("/slow?ms=600000")})).await;
    wait_until_running(&host, &fetching).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while target.requests.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the request never reached the target");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = host.client.delete(host.url(&format!("/v1/tasks/{fetching}"))).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["state"], "cancelled");

    let again = host.client.delete(host.url(&format!("/v1/tasks/{fetching}"))).send().await.unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().await.unwrap()["error"]["code"], "task_finished");
    assert_eq!(host.get_json("/healthz").await["load"]["running"], 0);
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let host = Host::start_with(&["--max-running-tasks", "1", "--max-queued-tasks", "2"]).await;
    host.upload("sleep", "sleep").await;
    let running = host.submit("sleep", &json!({"ms": 600_000})).await;
    wait_until_running(&host, &running).await;
    let queued = [host.submit("sleep", &json!({"ms": 1})).await, host.submit("sleep", &json!({"ms": 1})).await];
    assert_eq!(host.get_json(&format!("/v1/tasks/{}", queued[0])).await["state"], "queued");

    for path in ["/v1/plugins/sleep/tasks", "/v1/plugins/sleep/run"] {
        let response = host.client.post(host.url(path)).json(&json!({"ms": 1})).send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "queue_full");
    }
    let load = host.get_json("/healthz").await["load"].clone();
    assert_eq!((load["running"].as_u64(), load["queued"].as_u64()), (Some(1), Some(2)));

    // A queued task can be cancelled, and the slot it frees is usable at once.
    let cancelled = host.client.delete(host.url(&format!("/v1/tasks/{}", queued[0]))).send().await.unwrap();
    assert_eq!(cancelled.json::<Value>().await.unwrap()["state"], "cancelled");
    host.submit("sleep", &json!({"ms": 1})).await;
    host.client.delete(host.url(&format!("/v1/tasks/{running}"))).send().await.unwrap();
    assert_eq!(host.wait(&queued[1], 30).await["state"], "succeeded");
}

#[tokio::test]
async fn tasks_spawn_and_join_children() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    host.upload_with("spawner", "spawner", "spawn = [\"hello\", \"spawner\", \"missing\"]\n").await;
    let (status, body) = host.run("spawner", &json!({"plugin": "hello", "inputs": [1, "two", {"three": 3}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"], json!([{"hello": 1}, {"hello": "two"}, {"hello": {"three": 3}}]));
    let child = body["children"][0].as_str().unwrap();
    assert_eq!(host.get_json(&format!("/v1/tasks/{child}")).await["parent"], body["task_id"]);

    let (status, body) = host.run("spawner", &json!({"plugin": "missing", "inputs": [1]})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("no plugin named missing"), "{body}");

    // A task that spawns itself forever is stopped by the depth limit.
    let nested = (0..12).fold(json!([1]), |inner, _| json!([{"plugin": "spawner", "inputs": inner}]));
    let (status, body) = host.run("spawner", &json!({"plugin": "spawner", "inputs": nested})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("spawn depth limit"), "{body}");
}

#[tokio::test]
async fn task_endpoints_refuse_bad_requests_clearly() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let get = |path: &str| host.client.get(host.url(path)).send();

    let missing = get("/v1/tasks/6f1f4d5e-8c4b-4f7e-9d3e-0a1b2c3d4e5f").await.unwrap();
    assert_eq!(missing.status(), 404);
    let bad_id = get("/v1/tasks/not-a-uuid").await.unwrap();
    assert_eq!(bad_id.status(), 400);
    assert_eq!(bad_id.json::<Value>().await.unwrap()["error"]["code"], "invalid_task_id");
    let bad_wait = get("/v1/tasks/6f1f4d5e-8c4b-4f7e-9d3e-0a1b2c3d4e5f?wait=abc").await.unwrap();
    assert_eq!(bad_wait.status(), 400);
    let no_route = get("/v2/anything").await.unwrap();
    assert_eq!(no_route.status(), 404);
    assert_eq!(no_route.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let wrong_method = host.client.patch(host.url("/v1/plugins/hello/run")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.json::<Value>().await.unwrap()["error"]["code"], "method_not_allowed");

    let too_long = host.client.post(host.url("/v1/plugins/hello/tasks?timeout=999999")).send().await.unwrap();
    assert_eq!(too_long.status(), 400);
    assert!(
        too_long.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("task_timeout_secs")
    );
    let bad_json = host.client.post(host.url("/v1/plugins/hello/run")).body("{not json").send().await.unwrap();
    assert_eq!(bad_json.status(), 422);
    assert_eq!(bad_json.json::<Value>().await.unwrap()["error"]["code"], "invalid_input");
    let unknown_param = get("/v1/tasks?colour=red").await.unwrap();
    assert_eq!(unknown_param.status(), 400);
    // Refused from its declared length before it is read; the host discards the rest the
    // client still writes before closing, so that the answer arrives rather than a reset.
    let big = ignareo_e2e::client()
        .post(host.url("/v1/plugins/hello/run"))
        .body(vec![b' '; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(big.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
}
