//! The store never lies and never blocks a restart: racing changes to one plugin, a plugin
//! whose files were damaged on disk, and a disk that refuses writes (a file size limit on the
//! host process) leave a store the host starts from, with every committed task in it.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::{Duration, Instant};

use ignareo_e2e::{Host, TempDir};
use serde_json::{Value, json};

/// Plugin changes raced in each round.
const ROUNDS: usize = 12;

/// An upload of `hello` as `name` under a manifest that changes nothing but the version (a
/// comment): every such version shares one component, so its files are shared too.
async fn upload_variant(host: &Host, name: &str, variant: usize) -> u16 {
    let manifest = format!("# variant {variant}\n");
    host.upload_form(name, ignareo_e2e::plugin_bytes("hello"), Some(&manifest)).await.status().as_u16()
}

async fn rollback(host: &Host, name: &str) -> u16 {
    let url = host.url(&format!("/v1/plugins/{name}/rollback"));
    host.client.post(url).json(&json!({})).send().await.unwrap().status().as_u16()
}

async fn delete(host: &Host, name: &str) -> u16 {
    host.client.delete(host.url(&format!("/v1/plugins/{name}"))).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn racing_uploads_rollbacks_and_deletes_of_one_plugin_leave_a_store_the_host_restarts_from() {
    let data_dir = TempDir::new("store-race");
    let config = data_dir.write("test-config.toml", "[limits]\nversions_per_plugin = 2\n");
    let args = ["--config", config.to_str().unwrap()];
    let host = Host::start_in(data_dir.path(), &args).await.unwrap();
    host.upload("bystander", "sleep").await;
    for round in 0..ROUNDS {
        let (first, back, gone, second) = tokio::join!(
            upload_variant(&host, "contested", 2 * round),
            rollback(&host, "contested"),
            delete(&host, "contested"),
            upload_variant(&host, "contested", 2 * round + 1),
        );
        for status in [first, second] {
            assert!(status == 200 || status == 201, "an upload answers {status}");
        }
        assert!(
            matches!(back, 200 | 404 | 409),
            "a rollback answers {back}: not found, nothing to roll back to, or done"
        );
        assert!(matches!(gone, 204 | 404), "a delete answers {gone}");
    }
    // Whatever order the changes took, the plugin ends with an upload of its own.
    assert!(matches!(upload_variant(&host, "contested", 2 * ROUNDS).await, 200 | 201));
    let before = host.get_json("/v1/plugins/contested").await;
    assert!(host.terminate().await.success());

    let host = Host::start_in(data_dir.path(), &args).await.expect("the host starts from the store the races left");
    let health = host.get_json("/healthz").await;
    assert_eq!(health["unavailable_plugins"], json!({}), "every plugin loads: {health}");
    let after = host.get_json("/v1/plugins/contested").await;
    assert_eq!(after["live"], before["live"], "the live version is the one last made live: {after}");
    assert_eq!(host.run("contested", &json!("still here")).await, (200, json!({"hello": "still here"})));
    let (status, _) = host.run("bystander", &json!({"ms": 1})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_plugin_whose_files_are_damaged_is_reported_and_skipped_and_the_others_are_served() {
    let data_dir = TempDir::new("store-damaged");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    host.upload("healthy", "hello").await;
    let damaged = host.upload_with("damaged", "sleep", "max_concurrency = 1\n").await;
    host.upload_with("bystander", "chatter", "max_concurrency = 1\non_interrupt = \"retry\"\nmax_attempts = 3\n").await;
    // One task runs, one waits behind it when the host is killed: both stay recorded.
    let running = host.submit("damaged", &json!({"ms": 60_000})).await;
    let waiting = host.submit("damaged", &json!({"ms": 1})).await;
    // Then a bystander's task that runs again after the restart, and three that wait behind
    // it, the last two in the backlog (submitted a few milliseconds apart: taken up in order).
    let gate = host.submit("bystander", &json!({"steps": 1, "ms": 60_000})).await;
    let mut behind = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        behind.push(host.submit("bystander", &json!({"steps": 1, "ms": 1})).await);
    }
    host.kill().await;

    // Its component removed and its compiled artifact overwritten with garbage.
    let component = damaged["component"].as_str().unwrap();
    std::fs::remove_file(data_dir.join("components").join(format!("{component}.wasm"))).unwrap();
    for entry in std::fs::read_dir(data_dir.join("compiled")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with(component) {
            std::fs::write(&path, b"not a compiled component").unwrap();
        }
    }

    let config = data_dir.write("test-config.toml", "[limits]\nmax_queued_tasks = 1\n");
    let args = ["--config", config.to_str().unwrap()];
    let host = Host::start_in(data_dir.path(), &args).await.expect("one damaged plugin does not stop the host");
    // The damaged plugin's tasks stay in the store, shown as they wait; cancelling one does not
    // take it from the backlog's count a second time (the start already left it out).
    assert_eq!(host.get_json(&format!("/v1/tasks/{waiting}")).await["state"], "queued");
    while host.get_json(&format!("/v1/tasks/{gate}")).await["state"] != "running" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = || async { host.get_json("/healthz").await["load"]["queued"].as_u64().unwrap() };
    assert_eq!(queued().await, 3, "one bystander task in memory, two in the backlog");
    assert_eq!(cancel(&host, &running).await, 200);
    assert_eq!(queued().await, 3, "the damaged plugin's tasks are not counted");
    assert_eq!(cancel(&host, &behind[2]).await, 200);
    assert_eq!(queued().await, 2, "a backlog task cancelled leaves the count");
    assert_eq!(cancel(&host, &gate).await, 200);
    for id in &behind[..2] {
        assert_eq!(host.wait(id, 30).await["state"], "succeeded");
    }
    assert_eq!(queued().await, 0);
    let health = host.get_json("/healthz").await;
    let why = health["unavailable_plugins"]["damaged"].as_str().unwrap_or_else(|| panic!("{health}"));
    assert!(why.contains("cannot be loaded") && why.contains(component), "the reason names the file: {why}");
    let shown = host.get_json("/v1/plugins/damaged").await;
    assert_eq!(shown["unavailable"], why, "the plugin's view says why it is not served: {shown}");
    assert_eq!(shown["live"], damaged["version"]);
    assert_eq!(host.run("healthy", &json!(1)).await, (200, json!({"hello": 1})), "the others are served");
    let (status, body) = host.run("damaged", &json!({"ms": 1})).await;
    assert_eq!(status, 503, "a plugin that is not served runs nothing: {body}");
    assert_eq!(body["error"]["code"], "plugin_unavailable", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(component), "it says why: {body}");

    // Uploading it again serves it again.
    host.upload("damaged", "sleep").await;
    assert_eq!(host.run("damaged", &json!({"ms": 1})).await, (200, json!({"slept_ms": 1})));
    assert_eq!(host.get_json("/healthz").await["unavailable_plugins"], json!({}));
    assert!(host.get_json("/v1/plugins/damaged").await.get("unavailable").is_none());

    // The task that waited while its plugin could not be loaded was kept, and runs at the
    // next start; the cancelled ones never run.
    assert!(host.terminate().await.success());
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    let view = host.wait(&waiting, 30).await;
    assert_eq!(view["state"], "succeeded", "a task accepted for an unloadable plugin is not lost: {view}");
    for id in [&running, &behind[2]] {
        let view = host.get_json(&format!("/v1/tasks/{id}")).await;
        assert_eq!((&view["state"], &view["finished_at_ms"].is_u64()), (&json!("cancelled"), &true), "{view}");
    }
    assert_eq!(host.get_json(&format!("/v1/tasks/{}", behind[2])).await["started_at_ms"], Value::Null);
}

async fn cancel(host: &Host, id: &str) -> u16 {
    host.client.delete(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap().status().as_u16()
}

/// Limits the size of any file the process `pid` writes (`RLIMIT_FSIZE`), as a full disk or a
/// quota would.
fn limit_file_size(pid: u32, bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: `limit` outlives the call; the old limit is not asked for.
    let result = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &raw const limit, std::ptr::null_mut()) };
    assert_eq!(result, 0, "cannot set the host's file size limit: {}", std::io::Error::last_os_error());
}

/// Waits for every task to reach a final state; their views.
async fn ended(host: &Host, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_mins(1);
    let mut views = Vec::new();
    for id in ids {
        loop {
            let view = host.wait(id, 10).await;
            if !matches!(view["state"].as_str(), Some("queued" | "running")) {
                views.push(view);
                break;
            }
            assert!(Instant::now() < deadline, "task {id} did not end: {view}");
        }
    }
    views
}

#[tokio::test]
async fn a_disk_that_refuses_an_output_fails_that_task_alone_and_loses_no_committed_task() {
    let data_dir = TempDir::new("store-full");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    host.upload("hello", "hello").await;
    host.upload("hostile", "hostile").await;
    // From now on no file of the host's may grow past 6 MiB: a 12 MiB output cannot be
    // written; the store's own files (its log is checkpointed at about 4 MiB) and 80 KiB output
    // files can.
    limit_file_size(host.pid(), 6 << 20);

    let pad = "x".repeat(80 << 10);
    let mut submissions = Vec::new();
    for n in 0..24 {
        let (plugin, input) = match n % 8 {
            0 => ("hostile", json!({"kind": "huge-output", "n": 12})),
            1 | 2 => ("hello", json!({"n": n, "pad": pad})),
            _ => ("hello", json!({"n": n})),
        };
        let url = host.url(&format!("/v1/plugins/{plugin}/tasks"));
        let client = host.client.clone();
        submissions.push(tokio::spawn(async move {
            let response = client.post(url).json(&input).send().await.unwrap();
            assert_eq!(response.status(), 202, "every submission is committed");
            (plugin, input, response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned())
        }));
    }
    let mut accepted = Vec::new();
    for submission in submissions {
        accepted.push(submission.await.unwrap());
    }
    let ids: Vec<String> = accepted.iter().map(|(_, _, id)| id.clone()).collect();
    as_committed(&accepted, &ended(&host, &ids).await);
    assert_eq!(host.get_json("/healthz").await["status"], "ok", "the host lives on");
    assert!(host.terminate().await.success());

    let outputs = data_dir.join("ignareo.outputs");
    let names: Vec<String> =
        std::fs::read_dir(&outputs).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|name| !name.ends_with(".partial")), "no partial output file is left: {names:?}");

    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    as_committed(&accepted, &ended(&host, &ids).await);
}

/// Every task ended as recorded: the ones whose output could not be written failed, saying
/// why; every other one succeeded, with its output.
fn as_committed(accepted: &[(&str, Value, String)], views: &[Value]) {
    for ((plugin, input, id), view) in accepted.iter().zip(views) {
        if *plugin == "hostile" {
            assert_eq!(view["state"], "failed", "{id}: {view}");
            assert_eq!(view["error"]["kind"], "resource-limit", "{view}");
            let message = view["error"]["message"].as_str().unwrap();
            assert!(message.contains("could not store") && message.contains("File too large"), "{message}");
        } else {
            assert_eq!(view["state"], "succeeded", "a committed task is there: {view}");
            assert_eq!(view["output"], json!({"hello": input}), "with its output");
        }
    }
}
