//! `POST /v1/plugins/{name}/tasks:batch`: many tasks in one request, committed together (all
//! or none), within the batch's and the inputs' limits and the queue's room.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::{Duration, Instant};

use ignareo_e2e::Host;
use serde_json::{Value, json};

#[tokio::test]
async fn a_batch_of_ten_thousand_tasks_is_accepted_in_one_call() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let batch = |count: usize| json!({"inputs": (0..count).map(|n| json!({"n": n})).collect::<Vec<_>>()});
    let post = |body: Value| host.client.post(host.url("/v1/plugins/hello/tasks:batch")).json(&body).send();

    let response = post(batch(10_000)).await.unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["count"], 10_000);
    let ids: Vec<String> =
        accepted["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 10_000, "distinct ids");

    let deadline = Instant::now() + Duration::from_mins(2);
    while host.get_json("/healthz").await["load"]["ended"]["succeeded"].as_u64().unwrap() < 10_000 {
        assert!(Instant::now() < deadline, "the batch ran to its end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, id) in [(0, &ids[0]), (9_999, &ids[9_999])] {
        let task = host.get_json(&format!("/v1/tasks/{id}")).await;
        assert_eq!(task["output"], json!({"hello": {"n": i}}), "the inputs keep their order");
    }

    let refusals = [
        (json!({"inputs": []}), 400, "bad_batch"),
        (json!([1, 2]), 400, "bad_json"),
        (batch(10_001), 400, "too_many_inputs"),
    ];
    for (body, status, code) in refusals {
        let response = post(body).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    let missing = host.client.post(host.url("/v1/plugins/nope/tasks:batch")).json(&batch(2)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// The tasks of `plugin` the host knows, in any state.
async fn tasks_of(host: &Host, plugin: &str) -> Vec<Value> {
    host.get_json(&format!("/v1/tasks?plugin={plugin}&limit=1000")).await["tasks"].as_array().unwrap().clone()
}

/// (status, `Retry-After`, body) of a `tasks:batch` request with `inputs`.
async fn submit_batch(host: &Host, inputs: Vec<Value>) -> (u16, Option<String>, Value) {
    let response = host
        .client
        .post(host.url("/v1/plugins/sleep/tasks:batch"))
        .json(&json!({ "inputs": inputs }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

#[tokio::test]
async fn a_batch_is_accepted_whole_or_refused_whole() {
    let host = Host::start_with_config(
        "[limits]\nmax_running_tasks = 1\nmax_queued_tasks = 5\nmax_input_mb = 1\nmax_batch_mb = 2\n",
        &[],
    )
    .await;
    host.upload("sleep", "sleep").await;
    let running = host.submit("sleep", &json!({"ms": 600_000})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.get_json(&format!("/v1/tasks/{running}")).await["state"] != "running" {
        assert!(Instant::now() < deadline, "the sleeper never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let short = |n: usize| (0..n).map(|i| json!({"ms": 1, "i": i})).collect::<Vec<_>>();
    let nothing_accepted = |what: &'static str| {
        let host = &host;
        async move {
            assert_eq!(tasks_of(host, "sleep").await.len(), 1, "{what}: no task of the batch was accepted");
            assert_eq!(host.get_json("/healthz").await["load"]["queued"], 0, "{what}: nothing was queued");
        }
    };

    // Six inputs for the five places left in the queue: none is taken.
    let (status, retry_after, body) = submit_batch(&host, short(6)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("queue_full")), "{body}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)), "429 says when to come back");
    nothing_accepted("a batch larger than the room in the queue").await;

    // One input over limits.max_input_mb among good ones: none is taken.
    let mut inputs = short(3);
    inputs[1]["pad"] = json!("x".repeat(1024 * 1024));
    let (status, _, body) = submit_batch(&host, inputs).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("input_too_large")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("inputs[1]") && message.contains("limits.max_input_mb"), "{message}");
    nothing_accepted("a batch with one input over the limit").await;

    // Each input within its limit, the whole body over limits.max_batch_mb: none is taken.
    let inputs: Vec<Value> = (0..3).map(|_| json!({"ms": 1, "pad": "x".repeat(900 * 1024)})).collect();
    let (status, _, body) = submit_batch(&host, inputs).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("limits.max_batch_mb"), "{body}");
    nothing_accepted("a batch over its size limit").await;

    // A batch that fits is taken whole; the next one, even of one input, no longer fits.
    let (status, _, accepted) = submit_batch(&host, short(5)).await;
    assert_eq!((status, accepted["count"].as_u64()), (202, Some(5)), "{accepted}");
    assert_eq!(host.get_json("/healthz").await["load"]["queued"], 5);
    let (status, retry_after, _) = submit_batch(&host, short(1)).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    assert_eq!(tasks_of(&host, "sleep").await.len(), 6);

    host.client.delete(host.url(&format!("/v1/tasks/{running}"))).send().await.unwrap();
    for id in accepted["ids"].as_array().unwrap() {
        let task = host.wait(id.as_str().unwrap(), 30).await;
        assert_eq!(task["state"], "succeeded", "{task}");
    }
}
