//! Nothing accepted is lost: tasks answered 202 survive the process being killed, and come
//! back after a restart as their plugin's `on_interrupt` policy says.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ignareo_e2e::{Host, TOKEN, TempDir, refused_start};
use serde_json::{Value, json};

const RETRY: &str = "on_interrupt = \"retry\"\nmax_attempts = 3\n";

/// A fresh data directory holding the configuration `toml`: the directory, and the path to
/// give `--config`.
fn data_dir_with_config(toml: &str) -> (TempDir, String) {
    let data_dir = TempDir::new("durable");
    data_dir.write("test-config.toml", toml);
    let config = data_dir.arg("test-config.toml");
    (data_dir, config)
}

/// Flags a refused start needs besides the data directory: were it not refused, it must
/// neither bind the default port nor print a new admin token.
const REFUSED_FLAGS: [&str; 4] = ["--listen", "127.0.0.1:0", "--token", TOKEN];

/// Submits `count` tasks of `plugin` over a few connections at once; their ids.
async fn submit_many(host: &Host, plugin: &str, input: Value, count: usize) -> Vec<String> {
    let mut lanes = Vec::new();
    for lane in 0..8 {
        let (client, url, input) =
            (host.client.clone(), host.url(&format!("/v1/plugins/{plugin}/tasks")), input.clone());
        lanes.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in (lane..count).step_by(8) {
                let response = client.post(&url).json(&input).send().await.unwrap();
                assert_eq!(response.status(), 202);
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

/// Waits for every task to end; their final views by id.
async fn final_views(host: &Host, ids: &[String]) -> HashMap<String, Value> {
    let deadline = Instant::now() + Duration::from_mins(2);
    let mut views = HashMap::new();
    for id in ids {
        loop {
            let view = host.get_json(&format!("/v1/tasks/{id}?wait=30")).await;
            assert!(view["id"] == json!(id), "task {id} is known after the restart: {view}");
            if !matches!(view["state"].as_str(), Some("queued" | "running")) {
                views.insert(id.clone(), view);
                break;
            }
            assert!(Instant::now() < deadline, "task {id} did not end: {view}");
        }
    }
    views
}

fn count<'a>(views: impl IntoIterator<Item = &'a Value>, state: &str) -> usize {
    views.into_iter().filter(|v| v["state"] == state).count()
}

#[tokio::test]
async fn a_thousand_accepted_tasks_survive_sigkill_per_their_plugins_policy() {
    let (data_dir, config) = data_dir_with_config("[limits]\nmax_running_tasks = 100\nmax_queued_tasks = 2000\n");
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    host.upload("once", "sleep").await;
    host.upload_with("again", "sleep", RETRY).await;

    let (once, again) = tokio::join!(
        submit_many(&host, "once", json!({"ms": 400}), 500),
        submit_many(&host, "again", json!({"ms": 400}), 500),
    );
    // Let some finish and some start, with most still queued.
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.get_json("/healthz").await["load"]["ended"]["succeeded"].as_u64().unwrap() < 50 {
        assert!(Instant::now() < deadline, "tasks started running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.kill().await;

    let restarted_at = ignareo_e2e::now_ms();
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    assert_eq!(host.get_json("/healthz").await["compilations"], 0, "plugins come back without compiling");
    let once = final_views(&host, &once).await;
    let again = final_views(&host, &again).await;

    // on_interrupt = "fail" (the default): each task succeeded or reads interrupted, and
    // none ran twice.
    assert_eq!(count(once.values(), "succeeded") + count(once.values(), "interrupted"), 500, "{once:?}");
    assert!(once.values().all(|v| v["attempts"].as_u64() <= Some(1)), "a task of a fail plugin ran twice");
    let interrupted: Vec<&Value> = once.values().filter(|v| v["state"] == "interrupted").collect();
    assert!(!interrupted.is_empty(), "some tasks were running at the kill");
    for view in &interrupted {
        assert_eq!(view["attempts"], 1);
        let message = view["error"]["message"].as_str().unwrap();
        assert!(message.contains("on_interrupt = \"fail\""), "{message}");
    }
    let ran_after_restart = once.values().filter(|v| v["started_at_ms"].as_u64().unwrap_or(0) >= restarted_at).count();
    assert!(ran_after_restart > 0, "queued tasks ran after the restart");

    // on_interrupt = "retry": every task succeeds; those running at the kill ran again.
    assert_eq!(count(again.values(), "succeeded"), 500, "{again:?}");
    assert!(again.values().any(|v| v["attempts"] == 2), "tasks running at the kill ran a second time");
    assert!(again.values().all(|v| v["attempts"].as_u64() <= Some(2)));
    assert_eq!(again.values().next().unwrap()["output"], json!({"slept_ms": 400}));
}

#[tokio::test]
async fn sigterm_lets_running_tasks_finish_within_the_grace_then_leaves_the_rest_to_the_policy() {
    let (data_dir, config) = data_dir_with_config("[limits]\nmax_running_tasks = 2\nshutdown_grace_secs = 1\n");
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    host.upload("sleep", "sleep").await;
    let short = host.submit("sleep", &json!({"ms": 300})).await;
    let long = host.submit("sleep", &json!({"ms": 60_000})).await;
    let queued = host.submit("sleep", &json!({"ms": 10})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(host.get_json(&format!("/v1/tasks/{queued}")).await["state"], "queued");
    let started = Instant::now();
    assert!(host.terminate().await.success());
    assert!(started.elapsed() < Duration::from_secs(10), "the grace period bounds the shutdown");

    let restarted_at = ignareo_e2e::now_ms();
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    let views = final_views(&host, &[short.clone(), long.clone(), queued.clone()]).await;
    assert_eq!(views[&short]["state"], "succeeded", "a task that ends within the grace period succeeds");
    assert_eq!(views[&long]["state"], "interrupted", "{}", views[&long]);
    assert_eq!(views[&queued]["state"], "succeeded", "{}", views[&queued]);
    assert!(
        views[&queued]["started_at_ms"].as_u64().unwrap() >= restarted_at && views[&queued]["attempts"] == 1,
        "a recorded task still queued at SIGTERM does not start in the grace period; it runs once, after the restart: {}",
        views[&queued]
    );
}

#[tokio::test]
async fn a_corrupt_or_truncated_task_store_is_refused_with_a_clear_error() {
    let data_dir = TempDir::new("durable");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    host.upload("sleep", "sleep").await;
    for _ in 0..200 {
        host.submit("sleep", &json!({"ms": 1})).await;
    }
    assert!(host.terminate().await.success());
    let store = data_dir.join("ignareo.db");
    let length = std::fs::metadata(&store).unwrap().len();
    assert!(length > 8192, "the store holds the tasks ({length} bytes)");

    let intact = std::fs::read(&store).unwrap();
    std::fs::write(&store, &intact[..intact.len() / 2]).unwrap();
    let stderr = refused_start(data_dir.path(), &REFUSED_FLAGS, &[]).await;
    assert!(stderr.contains("ignareo.db") && stderr.contains("corrupt"), "{stderr}");
    assert_eq!(std::fs::metadata(&store).unwrap().len(), length / 2, "the damaged file is left as it was");

    std::fs::write(&store, b"this is not a database, but it is somebody's file").unwrap();
    let stderr = refused_start(data_dir.path(), &REFUSED_FLAGS, &[]).await;
    assert!(stderr.contains("ignareo.db") && stderr.contains("corrupt"), "{stderr}");
}

/// The store's schema version (`PRAGMA user_version`), or sets it.
fn schema_version(store: &std::path::Path, set: Option<i64>) -> i64 {
    let connection = rusqlite::Connection::open(store).unwrap();
    if let Some(version) = set {
        connection.pragma_update(None, "user_version", version).unwrap();
    }
    connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap()
}

#[tokio::test]
async fn a_store_written_by_a_newer_build_is_refused_and_left_as_it_was() {
    let data_dir = TempDir::new("durable");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    host.upload("hello", "hello").await;
    let id = host.submit("hello", &json!({"kept": true})).await;
    assert_eq!(host.wait(&id, 30).await["state"], "succeeded");
    assert!(host.terminate().await.success());

    let store = data_dir.join("ignareo.db");
    let supported = schema_version(&store, None);
    assert!(supported >= 1, "this build wrote its schema version: {supported}");
    let newer = supported + 1;
    schema_version(&store, Some(newer));
    let written = std::fs::read(&store).unwrap();

    let stderr = refused_start(data_dir.path(), &REFUSED_FLAGS, &[]).await;
    assert!(
        stderr.contains("newer ignareo")
            && stderr.contains(&format!("schema {newer}"))
            && stderr.contains(&format!("reads up to {supported}")),
        "the refusal names the cause: {stderr}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), written, "the store is left as it was");
    assert_eq!(schema_version(&store, None), newer);

    // Nothing was lost: at the version this build reads, the host starts with the task.
    schema_version(&store, Some(supported));
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    let task = host.get_json(&format!("/v1/tasks/{id}")).await;
    assert_eq!(task["output"], json!({"hello": {"kept": true}}), "{task}");
}

#[tokio::test]
async fn the_refusal_of_a_newer_store_names_the_file() {
    let data_dir = TempDir::new("durable");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    assert!(host.terminate().await.success());
    let store = data_dir.join("ignareo.db");
    schema_version(&store, Some(schema_version(&store, None) + 1));
    let stderr = refused_start(data_dir.path(), &REFUSED_FLAGS, &[]).await;
    // As the README says, and as the refusal of a damaged store does.
    assert!(stderr.contains(&store.display().to_string()), "the refusal names the file: {stderr}");
}

#[tokio::test]
async fn large_outputs_are_files_and_finished_tasks_past_their_retention_are_pruned_with_them() {
    let (data_dir, config) = data_dir_with_config(
        "[limits]\nretain_finished_tasks = 3\n[store]\ninline_output_kb = 1\nprune_interval_secs = 1\n",
    );
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    host.upload("hello", "hello").await;
    let pad = "x".repeat(4096);
    let mut ids = Vec::new();
    for n in 0..10 {
        let id = host.submit("hello", &json!({"n": n, "pad": pad})).await;
        assert_eq!(host.wait(&id, 30).await["state"], "succeeded");
        ids.push(id);
    }
    // Each 4 KiB output went to a file; pruning leaves the three newest tasks and their files.
    let outputs = data_dir.join("ignareo.outputs");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let files: Vec<String> =
            std::fs::read_dir(&outputs).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        if files.len() == 3 {
            let mut newest = ids[7..].to_vec();
            newest.sort();
            let mut files = files;
            files.sort();
            assert_eq!(files, newest, "the newest tasks keep their output files");
            break;
        }
        assert!(Instant::now() < deadline, "{} output files remain", files.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    assert!(host.terminate().await.success());
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    for id in &ids[7..] {
        let task = host.get_json(&format!("/v1/tasks/{id}")).await;
        assert_eq!(task["output"]["hello"]["pad"], json!(pad), "the output comes back from its file");
    }
    for id in &ids[..7] {
        let response = host.client.get(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap();
        assert_eq!(response.status(), 404, "a pruned task is gone");
    }
}

#[tokio::test]
async fn finished_tasks_older_than_their_retention_are_forgotten_in_memory_and_on_disk() {
    let (data_dir, config) =
        data_dir_with_config("[store]\nretain_finished_secs = 2\nprune_interval_secs = 1\ninline_output_kb = 1\n");
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    host.upload("hello", "hello").await;
    let id = host.submit("hello", &json!({"pad": "x".repeat(4096)})).await;
    assert_eq!(host.wait(&id, 30).await["state"], "succeeded");
    // A task's end is recorded just after it is visible.
    let outputs = data_dir.join("ignareo.outputs");
    let written = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&outputs).unwrap().count() == 0 {
        assert!(Instant::now() < written, "the output is written to a file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = host.client.get(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap().status();
        let files = std::fs::read_dir(&outputs).unwrap().count();
        if shown == 404 && files == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after its retention the task is still shown ({shown}) or its output kept ({files} files)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(host.terminate().await.success());
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    let shown = host.client.get(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap().status();
    assert_eq!(shown, 404, "nor does it come back after a restart");
}

#[tokio::test]
async fn a_plugin_index_file_of_an_earlier_version_is_imported_into_the_store_once() {
    let data_dir = TempDir::new("durable");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    let report = host.upload("hello", "hello").await;
    assert!(host.terminate().await.success());
    // What an earlier version leaves: components and artifacts, the index as a file, no store.
    for entry in std::fs::read_dir(data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("ignareo.db") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let version = report["version"].clone();
    let index = json!({"plugins": {"hello": {"live": version, "versions": [{
        "version": version, "component": report["component"], "manifest": null,
        "size": report["size"], "uploaded_at_ms": 1, "compile_ms": report["compile_ms"],
    }]}}});
    std::fs::write(data_dir.join("plugins.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    assert_eq!(host.get_json("/v1/plugins/hello").await["live"], version);
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})));
    assert_eq!(host.get_json("/healthz").await["compilations"], 0, "the imported plugin's artifact is reused");
    assert!(!data_dir.join("plugins.json").exists() && data_dir.join("plugins.json.imported").exists());
    assert!(host.terminate().await.success());
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    assert_eq!(host.get_json("/v1/plugins/hello").await["live"], version, "from the store now");
}

/// `DELETE /v1/tasks/{id}`: (status, body).
async fn cancel(host: &Host, id: &str) -> (u16, Value) {
    let response = host.client.delete(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits until task `id` runs.
async fn until_running(host: &Host, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.get_json(&format!("/v1/tasks/{id}")).await["state"] != "running" {
        assert!(Instant::now() < deadline, "task {id} never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tasks_left_in_the_backlog_at_a_restart_are_shown_and_cancelled_before_they_are_taken_up() {
    let (data_dir, config) = data_dir_with_config("[limits]\nmax_running_tasks = 1\n");
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    host.upload("sleep", "sleep").await;
    let blocker = host.submit("sleep", &json!({"ms": 600_000})).await;
    until_running(&host, &blocker).await;
    // After the restart the gate runs first and holds the only slot: two tasks wait in memory
    // (the queue's limit), the others in the backlog, as long as the gate runs.
    let gate = host.submit("sleep", &json!({"ms": 600_000})).await;
    let mut waiting = Vec::new();
    for _ in 0..12 {
        waiting.push(host.submit("sleep", &json!({"ms": 10})).await);
    }
    host.kill().await;

    data_dir.write("test-config.toml", "[limits]\nmax_running_tasks = 1\nmax_queued_tasks = 2\n");
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    until_running(&host, &gate).await;
    let (shown, withdrawn) = (&waiting[11], &waiting[10]);
    let view = host.get_json(&format!("/v1/tasks/{shown}")).await;
    assert_eq!(
        (&view["id"], &view["state"], &view["attempts"]),
        (&json!(shown), &json!("queued"), &json!(0)),
        "{view}"
    );
    let request = json!({"name": "other", "scopes": ["trigger"], "plugins": ["sleep"]});
    let other: Value =
        host.client.post(host.url("/v1/tokens")).json(&request).send().await.unwrap().json().await.unwrap();
    let seen = reqwest::Client::new()
        .get(host.url(&format!("/v1/tasks/{shown}")))
        .bearer_auth(other["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 404, "another trigger token's task does not exist to it, in the backlog too");

    let queued = host.get_json("/healthz").await["load"]["queued"].as_u64().unwrap();
    let (status, view) = cancel(&host, withdrawn).await;
    assert_eq!((status, &view["state"]), (200, &json!("cancelled")), "{view}");
    assert_eq!(host.get_json(&format!("/v1/tasks/{withdrawn}")).await["state"], "cancelled");
    assert_eq!(host.get_json("/healthz").await["load"]["queued"], queued - 1, "it left the backlog");
    let (status, again) = cancel(&host, withdrawn).await;
    assert_eq!((status, &again["error"]["code"]), (409, &json!("task_finished")), "{again}");

    // Once the gate is gone the backlog drains: a wait on a task read from the store follows
    // it as it is taken up and runs.
    assert_eq!(cancel(&host, &gate).await.0, 200);
    let view = host.get_json(&format!("/v1/tasks/{shown}?wait=30")).await;
    assert_eq!(view["state"], "succeeded", "{view}");
    let others: Vec<String> = waiting.iter().filter(|id| *id != withdrawn).cloned().collect();
    let views = final_views(&host, &others).await;
    assert_eq!(count(views.values(), "succeeded"), 11, "{views:?}");
    let view = host.get_json(&format!("/v1/tasks/{withdrawn}")).await;
    assert_eq!(
        (&view["state"], &view["started_at_ms"], &view["attempts"]),
        (&json!("cancelled"), &Value::Null, &json!(0))
    );
    let load = &host.get_json("/healthz").await["load"];
    assert_eq!((&load["queued"], &load["ended"]["succeeded"]), (&json!(0), &json!(11)), "{load}");
    assert_eq!(load["ended"]["cancelled"], 2, "the gate and the task cancelled in the backlog: {load}");
    host.submit("sleep", &json!({"ms": 1})).await;
}

#[tokio::test]
async fn finished_tasks_the_memory_no_longer_holds_are_read_from_the_store_after_a_restart() {
    let (data_dir, config) = data_dir_with_config("[limits]\nretain_finished_tasks = 3\n");
    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    host.upload("hello", "hello").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = host.submit("hello", &json!({"n": n})).await;
        assert_eq!(host.wait(&id, 30).await["state"], "succeeded");
        ids.push(id);
    }
    assert!(host.terminate().await.success());

    let host = Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap();
    // Runs that are not recorded count among the finished tasks in memory, not in the store:
    // the recorded ones leave the memory and stay in the store.
    for n in 0..3 {
        assert_eq!(host.run("hello", &json!(n)).await.0, 200);
    }
    let listed = host.get_json("/v1/tasks?plugin=hello").await;
    let in_memory: Vec<&Value> = listed["tasks"].as_array().unwrap().iter().map(|t| &t["id"]).collect();
    assert!(ids.iter().all(|id| !in_memory.contains(&&json!(id))), "the listing shows what memory holds: {listed}");
    for (n, id) in ids.iter().enumerate() {
        let view = host.get_json(&format!("/v1/tasks/{id}")).await;
        assert_eq!((&view["state"], &view["output"]), (&json!("succeeded"), &json!({"hello": {"n": n}})), "{view}");
    }
    let (status, view) = cancel(&host, &ids[0]).await;
    assert_eq!((status, &view["error"]["code"]), (409, &json!("task_finished")), "{view}");
}
