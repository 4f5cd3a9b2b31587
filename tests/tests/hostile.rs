//! Hostile plugins: each way of misbehaving (`plugins/fixtures/hostile`) ends with a typed error that
//! names the limit it hit, while healthy tasks on the same host keep completing correctly.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::{Duration, Instant};

use ignareo_e2e::Host;
use serde_json::{Value, json};

/// The hostile plugin's manifest: its spawn bomb spawns copies of itself.
const SPAWNS_ITSELF: &str = "spawn = [\"hostile\"]\n";

async fn hostile_host() -> Host {
    let host = Host::start_with_config("[limits]\nmax_log_lines = 10000\nmax_tasks_per_tree = 200\n", &[]).await;
    host.upload_with("hostile", "hostile", SPAWNS_ITSELF).await;
    host.upload("hello", "hello").await;
    host
}

/// Runs one hostile kind (with a deadline) and returns the task's final view.
async fn misbehave(host: &Host, input: Value, timeout_secs: u64) -> Value {
    let response = host
        .client
        .post(host.url(&format!("/v1/plugins/hostile/tasks?timeout={timeout_secs}")))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(timeout_secs + 30);
    loop {
        let task = host.wait(&id, 30).await;
        if !matches!(task["state"].as_str(), Some("queued" | "running")) || Instant::now() > deadline {
            return task;
        }
    }
}

fn failure(task: &Value) -> (&str, &str, &str) {
    (
        task["state"].as_str().unwrap_or_default(),
        task["error"]["kind"].as_str().unwrap_or_default(),
        task["error"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn each_hostile_plugin_ends_with_a_typed_error_naming_its_limit() {
    let host = hostile_host().await;
    // Healthy tasks run all along and keep answering correctly.
    let healthy = {
        let host_base = host.base.clone();
        tokio::spawn(async move {
            let client = ignareo_e2e::client();
            let mut runs = 0;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(8) {
                let response = client
                    .post(format!("{host_base}/v1/plugins/hello/run"))
                    .json(&json!({"n": runs}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                assert_eq!(response.json::<Value>().await.unwrap(), json!({"hello": {"n": runs}}));
                runs += 1;
            }
            runs
        })
    };

    let (busy, sleeper, memory, stack, output, sessions) = tokio::join!(
        misbehave(&host, json!({"kind": "busy-with-host-calls"}), 2),
        misbehave(&host, json!({"kind": "sleep-forever"}), 2),
        misbehave(&host, json!({"kind": "memory-bomb"}), 30),
        misbehave(&host, json!({"kind": "stack-overflow"}), 30),
        misbehave(&host, json!({"kind": "huge-output", "n": 20}), 30),
        misbehave(&host, json!({"kind": "many-sessions", "n": 1000}), 30),
    );
    assert_eq!(failure(&busy).0, "timed-out", "a loop that keeps calling the host is stopped at its deadline: {busy}");
    assert_eq!(failure(&sleeper).0, "timed-out", "{sleeper}");
    assert!(busy["duration_ms"].as_u64().unwrap() < 10_000, "{busy}");

    let (state, kind, message) = failure(&memory);
    assert_eq!((state, kind), ("failed", "memory-limit"), "{memory}");
    assert!(message.contains("128 MiB"), "{message}");
    let (state, kind, message) = failure(&stack);
    assert_eq!((state, kind), ("failed", "resource-limit"), "{stack}");
    assert!(message.contains("limits.task_stack_kb"), "{message}");
    let (state, kind, message) = failure(&output);
    assert_eq!((state, kind), ("failed", "resource-limit"), "{output}");
    assert!(message.contains("limits.max_output_mb"), "{message}");
    let (state, kind, message) = failure(&sessions);
    assert_eq!((state, kind), ("failed", "resource-limit"), "{sessions}");
    assert!(message.contains("outbound.max_sessions_per_task"), "{message}");

    // 100 MB of output cannot even be built inside a 128 MiB task.
    let hundred = misbehave(&host, json!({"kind": "huge-output", "n": 100}), 30).await;
    assert_eq!(failure(&hundred).1, "memory-limit", "{hundred}");

    let runs = healthy.await.unwrap();
    assert!(runs > 10, "healthy tasks kept completing: {runs}");
    let load = host.get_json("/healthz").await["load"].clone();
    assert_eq!(load["running"], 0, "{load}");
}

#[tokio::test]
async fn a_log_flood_is_capped_and_summed_up() {
    let host = hostile_host().await;
    let before = host.peak_rss_bytes();
    let response = host
        .client
        .post(host.url("/v1/plugins/hostile/tasks"))
        .json(&json!({"kind": "log-flood", "n": 1_000_000}))
        .send()
        .await
        .unwrap();
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let task = host.wait(&id, 60).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["output"]["logged"], 1_000_000);
    let events = host.events(&id).await;
    let summary = events.iter().filter_map(|(_, e)| e["message"].as_str()).find(|m| m.contains("limits.max_log_lines"));
    assert_eq!(summary, Some("990000 more log lines were dropped: the task wrote past limits.max_log_lines (10000)"));
    assert!(events.len() <= 1_010, "the kept history stays bounded: {}", events.len());
    let grown = host.peak_rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "a million log lines grew the host's peak memory by {} MiB", grown >> 20);
}

#[tokio::test]
async fn a_spawn_bomb_stops_at_the_tree_limit() {
    let host = hostile_host().await;
    let root = misbehave(&host, json!({"kind": "spawn-bomb", "n": 4}), 60).await;
    let (state, _, message) = failure(&root);
    assert_eq!(state, "failed", "{root}");
    assert!(message.contains("limits.max_tasks_per_tree") || message.contains("limits.max_spawn_depth"), "{message}");

    // Every task of the tree ends; there are no more of them than the limit allows.
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let tasks = host.get_json("/v1/tasks?plugin=hostile&limit=1000").await["tasks"].as_array().unwrap().clone();
        assert!(tasks.len() <= 200, "{} tasks in one tree", tasks.len());
        if tasks.iter().all(|t| !matches!(t["state"].as_str(), Some("queued" | "running"))) {
            break;
        }
        assert!(Instant::now() < deadline, "the tree did not wind down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})), "the host is fine");
}

#[tokio::test]
async fn a_plugin_sees_no_files_environment_or_arguments_only_clocks_and_randomness() {
    let host = hostile_host().await;
    let (status, first) = host.run("hostile", &json!({"kind": "peek"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["env"], json!([]), "no environment variables from the host");
    assert_eq!(first["args"], json!([]), "no arguments");
    for path in ["root", "passwd", "cwd_entries"] {
        assert!(first[path]["error"].is_string(), "no file system: {path}: {first}");
    }
    assert!(first["unix_secs"].as_u64().unwrap() > 1_700_000_000, "the wall clock works: {first}");
    let (_, second) = host.run("hostile", &json!({"kind": "peek"})).await;
    assert_ne!(first["random"], second["random"], "randomness works and differs between tasks");
}

#[tokio::test]
async fn a_spawned_tree_ends_by_its_first_tasks_deadline() {
    // Trees larger than the running slots: the parents hold slots while they join children
    // that queue behind them, until the first task's deadline ends the whole tree.
    let host = Host::start_with_config("[limits]\nmax_running_tasks = 16\nmax_tasks_per_tree = 200\n", &[]).await;
    host.upload_with("hostile", "hostile", SPAWNS_ITSELF).await;
    host.upload("hello", "hello").await;
    let started = Instant::now();
    let roots: Vec<Value> =
        futures::future::join_all((0..2).map(|_| misbehave(&host, json!({"kind": "spawn-bomb", "n": 3}), 2))).await;
    for root in &roots {
        assert_eq!(root["state"], "timed-out", "{root}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let tasks = loop {
        let tasks = host.get_json("/v1/tasks?plugin=hostile&limit=1000").await["tasks"].as_array().unwrap().clone();
        if tasks.iter().all(|t| !matches!(t["state"].as_str(), Some("queued" | "running"))) {
            break tasks;
        }
        assert!(Instant::now() < deadline, "descendants outlived their first task's deadline by far");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(tasks.len() > 16, "the trees outgrew the running slots ({} tasks)", tasks.len());
    let inherited = tasks
        .iter()
        .filter(|t| t["error"]["message"].as_str().is_some_and(|m| m.contains("deadline of the task that spawned it")))
        .count();
    assert!(inherited > 0, "descendants end on the inherited deadline: {tasks:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})), "the host's slots are free again");
}

#[tokio::test]
async fn a_plugin_with_a_deep_queue_does_not_make_others_wait_behind_it() {
    let host = Host::start_with_config("[limits]\nmax_running_tasks = 4\n", &[]).await;
    host.upload("sleep", "sleep").await;
    host.upload("hello", "hello").await;
    let mut backlog = Vec::new();
    for _ in 0..200 {
        backlog.push(host.submit("sleep", &json!({"ms": 200})).await);
    }
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})));
    let tasks = host.get_json("/v1/tasks?plugin=sleep&state=queued&limit=1000").await;
    let still_queued = tasks["tasks"].as_array().unwrap().len();
    assert!(still_queued > 150, "hello waited for the sleep plugin's backlog: only {still_queued} of 200 still queued");
    for id in backlog {
        let _ = host.client.delete(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap();
    }
}

#[tokio::test]
async fn free_running_slots_go_round_the_plugins_that_wait() {
    // 3 of 4 slots held by long tasks; a second plugin's backlog has 1 running task and could
    // line up 3 more for the last slot. hello must get that slot after at most one of them:
    // when it answers, the backlog has started its first, that one, and the one taking the
    // slot hello gives back (5 if hello had waited behind the 3 lined up).
    let host = Host::start_with_config("[limits]\nmax_running_tasks = 4\n", &[]).await;
    host.upload("sleep", "sleep").await;
    host.upload("nap", "sleep").await;
    host.upload("hello", "hello").await;
    let mut long = Vec::new();
    for _ in 0..3 {
        long.push(host.submit("sleep", &json!({"ms": 20000})).await);
    }
    for id in &long {
        let deadline = Instant::now() + Duration::from_secs(10);
        while host.get_json(&format!("/v1/tasks/{id}")).await["state"] != "running" {
            assert!(Instant::now() < deadline, "the long tasks start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The backlog arrives in one batch (one commit): submitted one by one, each waiting for
    // its own commit to disk, the first naps could end before the last one is in line.
    let batch = json!({"inputs": vec![json!({"ms": 300}); 20]});
    let accepted: Value = host
        .client
        .post(host.url("/v1/plugins/nap/tasks:batch"))
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let naps: Vec<String> =
        accepted["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    assert_eq!(naps.len(), 20, "{accepted}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})));
    let tasks = host.get_json("/v1/tasks?plugin=nap&limit=1000").await;
    let started = tasks["tasks"].as_array().unwrap().iter().filter(|t| t["state"] != "queued").count();
    assert!(started <= 3, "{started} of the backlog's tasks started before hello got a slot");
    for id in long.iter().chain(&naps) {
        let _ = host.client.delete(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap();
    }
}

#[tokio::test]
async fn a_plugin_that_hogs_the_host_moves_to_the_background_lane_and_still_runs() {
    let host = Host::start_with_config("[limits]\nmax_running_tasks = 4\nbackground_max_running = 1\n", &[]).await;
    host.upload("spin", "spin").await;
    host.upload("hello", "hello").await;
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})));
    assert_eq!(host.get_json("/healthz").await["load"]["background_plugins"], json!([]));

    // One task computing to its deadline sends the plugin to the background lane.
    let first = host.client.post(host.url("/v1/plugins/spin/tasks?timeout=1")).send().await.unwrap();
    let first = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(host.wait(&first, 30).await["state"], "timed-out");
    assert_eq!(host.get_json("/healthz").await["load"]["background_plugins"], json!(["spin"]));

    // There it holds at most background_max_running slots; the rest wait, and the foreground
    // keeps its slots.
    let mut spins = Vec::new();
    for _ in 0..3 {
        let response = host.client.post(host.url("/v1/plugins/spin/tasks?timeout=2")).send().await.unwrap();
        spins.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = host.get_json("/v1/tasks?plugin=spin&state=running").await["tasks"].as_array().unwrap().len();
    assert_eq!(running, 1, "the background lane holds one slot");
    assert_eq!(host.run("hello", &json!(2)).await, (200, json!({"hello": 2})));
    assert_eq!(
        host.get_json("/healthz").await["load"]["background_plugins"],
        json!(["spin"]),
        "hello stays in the foreground"
    );

    // Background tasks still run, one after another, to their own end.
    for id in &spins {
        assert_eq!(host.wait(id, 30).await["state"], "timed-out");
    }
}
