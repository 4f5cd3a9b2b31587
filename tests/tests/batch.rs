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

    let deadline = Instant::now() + Duration::from_secs(120);
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
