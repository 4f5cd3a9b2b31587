//! Hot swap: a new version takes every new invocation at once, in-flight tasks finish on the
//! version they started with, and no request fails meanwhile.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ignareo_e2e::Host;
use serde_json::{Value, json};

/// Most rounds a client makes; it stops earlier once it has seen the new version.
const MAX_ROUNDS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_under_200_concurrent_triggers_fails_nothing() {
    let host = Arc::new(Host::start().await);
    host.upload("hello", "hello").await;
    let completed = Arc::new(AtomicUsize::new(0));

    let clients: Vec<_> = (0..200)
        .map(|i| {
            let (host, completed) = (host.clone(), completed.clone());
            tokio::spawn(async move {
                let mut outputs = Vec::new();
                for round in 0..MAX_ROUNDS {
                    let (status, body) = host.run("hello", &json!([i, round])).await;
                    assert_eq!(status, 200, "client {i} round {round}: {body}");
                    completed.fetch_add(1, Ordering::Relaxed);
                    let new_version = body.get("version") == Some(&json!(2));
                    outputs.push(body);
                    if new_version {
                        break;
                    }
                }
                outputs
            })
        })
        .collect();
    // Swap once the load is well under way.
    while completed.load(Ordering::Relaxed) < 1000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    host.upload("hello", "hello-v2").await;

    let mut versions = [0usize; 2];
    for client in clients {
        for body in client.await.expect("no client failed") {
            assert_eq!(body["hello"].as_array().map(Vec::len), Some(2), "{body}");
            versions[usize::from(body.get("version") == Some(&json!(2)))] += 1;
        }
    }
    assert!(versions[0] >= 1000, "the old version answered before the swap: {versions:?}");
    assert_eq!(versions[1], 200, "every client saw the new version: {versions:?}");
    let (_, last) = host.run("hello", &json!(0)).await;
    assert_eq!(last["version"], 2, "new invocations use the new version");
}

#[tokio::test]
async fn tasks_in_flight_finish_on_the_version_they_started_with() {
    let host = Host::start().await;
    let old = host.upload("swap", "sleep").await["version"].as_str().unwrap().to_owned();
    let id = host.submit("swap", &json!({"ms": 1500})).await;
    let new = host.upload("swap", "hello-v2").await["version"].as_str().unwrap().to_owned();
    assert_eq!(host.run("swap", &json!({"ms": 1500})).await.1, json!({"hello": {"ms": 1500}, "version": 2}));
    let finished: Value = host.wait(&id, 30).await;
    assert_eq!(finished["state"], "succeeded");
    assert_eq!(finished["output"], json!({"slept_ms": 1500}));
    assert_eq!(finished["version"], old);
    assert_ne!(old, new);
}

#[tokio::test]
async fn an_upload_works_while_every_task_slot_is_busy() {
    let host = Host::start_with(&["--max-running-tasks", "1"]).await;
    host.upload("sleep", "sleep").await;
    let id = host.submit("sleep", &json!({"ms": 600_000})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while host.get_json(&format!("/v1/tasks/{id}")).await["state"] != "running" {
        assert!(std::time::Instant::now() < deadline, "the sleeper never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.upload("sleep", "hello-v2").await;
    host.upload("hello", "hello").await;
    assert_eq!(host.get_json("/healthz").await["load"]["running"], 1);
    host.client.delete(host.url(&format!("/v1/tasks/{id}"))).send().await.unwrap();
    assert_eq!(host.run("sleep", &json!(1)).await.1, json!({"hello": 1, "version": 2}));
}

#[tokio::test]
async fn deleting_a_plugin_lets_its_running_tasks_finish_and_refuses_new_ones() {
    let host = Host::start().await;
    let version = host.upload("doomed", "sleep").await["version"].as_str().unwrap().to_owned();
    let input = json!({"ms": 1500});
    let ids: Vec<String> = futures::future::join_all((0..3).map(|_| host.submit("doomed", &input))).await;
    let synchronous = tokio::spawn(host.client.post(host.url("/v1/plugins/doomed/run")).json(&input).send());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while host.get_json("/healthz").await["load"]["running"] != 4 {
        assert!(std::time::Instant::now() < deadline, "the four tasks never ran at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let deleted = host.client.delete(host.url("/v1/plugins/doomed")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    for path in ["/v1/plugins/doomed/tasks", "/v1/plugins/doomed/run"] {
        let refused = host.client.post(host.url(path)).json(&input).send().await.unwrap();
        assert_eq!(refused.status(), 404, "{path} after the delete");
        assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    }
    let batch = host.client.post(host.url("/v1/plugins/doomed/tasks:batch")).json(&json!({"inputs": [input]}));
    assert_eq!(batch.send().await.unwrap().status(), 404);
    assert_eq!(host.client.get(host.url("/v1/plugins/doomed")).send().await.unwrap().status(), 404);

    // The tasks that were running finish, on the version they started with.
    for id in &ids {
        let task = host.wait(id, 30).await;
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(task["output"], json!({"slept_ms": 1500}));
        assert_eq!(task["version"], version.as_str());
    }
    let answer = synchronous.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"slept_ms": 1500}));
    assert_eq!(host.get_json("/healthz").await["load"]["running"], 0);

    // The name is free again: an upload under it makes a new plugin.
    assert_eq!(host.upload_bytes("doomed", ignareo_e2e::plugin_bytes("hello")).await.status(), 201);
    assert_eq!(host.run("doomed", &json!(1)).await, (200, json!({"hello": 1})));
}
