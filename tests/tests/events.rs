//! A task's events (`GET /v1/tasks/{id}/events`, Server-Sent Events): logs, progress, custom
//! events and states in order, history first for late subscribers, and resumption after the
//! event a reconnecting client names in `Last-Event-ID`.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::Duration;

use ignareo_e2e::Host;
use ignareo_e2e::sse::SseEvent;
use serde_json::{Value, json};

#[tokio::test]
async fn events_stream_logs_and_progress_in_order_then_the_final_state() {
    let host = Host::start().await;
    host.upload("chatter", "chatter").await;
    let id = host.submit("chatter", &json!({"steps": 4, "ms": 100})).await;
    let events = host.events(&id).await;

    let seqs: Vec<u64> = events.iter().map(|(_, d)| d["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "events are in order: {seqs:?}");
    let expected: Vec<(&str, Value)> = vec![
        ("state", json!("queued")),
        ("state", json!("running")),
        ("log", json!("step 1")),
        ("progress", json!(1)),
        ("log", json!("step 2")),
        ("progress", json!(2)),
        ("log", json!("step 3")),
        ("progress", json!(3)),
        ("log", json!("step 4")),
        ("progress", json!(4)),
        ("state", json!("succeeded")),
    ];
    let observed: Vec<(&str, Value)> = events
        .iter()
        .map(|(name, data)| {
            let key = match name.as_str() {
                "state" => data["state"].clone(),
                "log" => data["message"].clone(),
                "progress" => data["done"].clone(),
                other => panic!("unexpected event {other}: {data}"),
            };
            (name.as_str(), key)
        })
        .collect();
    assert_eq!(observed, expected);
    assert_eq!(events[3].1["total"], 4);

    // A late subscriber gets the same history and the stream still ends.
    assert_eq!(host.events(&id).await.len(), expected.len());
}

#[tokio::test]
async fn custom_events_reach_the_stream_with_their_name_and_data() {
    let host = Host::start().await;
    host.upload("emitter", "emitter").await;
    let emitted = json!([
        {"name": "price", "data": {"item": "rtx-5090", "eur": 1999.5, "in_stock": false}},
        {"name": "stage", "data": "checkout"},
        {"name": "seen", "data": [1, 2, 3]},
        {"name": "nothing", "data": null},
        {"name": "größe", "data": {"ü": "✓"}},
    ]);
    let id = host.submit("emitter", &json!({"events": emitted})).await;
    assert_eq!(host.wait(&id, 30).await["output"], json!({"emitted": 5}));

    let events = host.event_stream(&id, None).await.rest(Duration::from_secs(30)).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["state", "state", "custom", "custom", "custom", "custom", "custom", "state"], "{events:?}");
    for (event, sent) in events[2..7].iter().zip(emitted.as_array().unwrap()) {
        assert_eq!(event.data["type"], "custom", "{event:?}");
        assert_eq!(event.data["name"], sent["name"], "the name as emitted: {event:?}");
        assert_eq!(event.data["data"], sent["data"], "the data as emitted, as JSON: {event:?}");
        assert_eq!(event.id.as_deref(), Some(event.data["seq"].to_string().as_str()), "{event:?}");
    }
    assert_eq!(events[7].data["state"], "succeeded");

    // The host keeps a bounded text per event: a larger one is replaced by its size.
    let huge = "x".repeat(20_000);
    let id = host.submit("emitter", &json!({"events": [{"name": "huge", "data": huge}]})).await;
    host.wait(&id, 30).await;
    let custom: Vec<Value> =
        host.events(&id).await.into_iter().filter(|(n, _)| n == "custom").map(|(_, d)| d).collect();
    assert_eq!(custom.len(), 1, "{custom:?}");
    assert_eq!(custom[0]["name"], "huge");
    assert_eq!(custom[0]["data"], json!({"truncated": true, "bytes": 20_002}), "the JSON text was 20,002 bytes");
}

/// The `id:` of each event, as numbers.
fn ids(events: &[SseEvent]) -> Vec<u64> {
    events.iter().map(|e| e.id.as_deref().expect("every event has an id").parse().expect("a numeric id")).collect()
}

#[tokio::test]
async fn last_event_id_resumes_after_that_event_up_to_the_final_state() {
    let host = Host::start().await;
    host.upload("emitter", "emitter").await;
    let emitted: Vec<Value> = (0..8).map(|n| json!({"name": "step", "data": {"n": n}})).collect();
    let id = host.submit("emitter", &json!({"events": emitted, "ms": 150})).await;

    // A client reads part of the stream while the task runs, loses the connection, and
    // reconnects with the id of the last event it got.
    let mut first = host.event_stream(&id, None).await;
    let mut seen = Vec::new();
    while seen.iter().filter(|e: &&SseEvent| e.name == "custom").count() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(30), first.next()).await.unwrap().unwrap();
        seen.push(event);
    }
    drop(first);
    let last = seen.last().unwrap().id.clone().unwrap();
    let resumed = host.event_stream(&id, Some(&last)).await.rest(Duration::from_secs(30)).await;
    assert_ne!(host.get_json(&format!("/v1/tasks/{id}")).await["state"], "running", "the stream ended with the task");
    assert_eq!(resumed.last().unwrap().data["state"], "succeeded", "{resumed:?}");
    let mut joined = seen.clone();
    joined.extend(resumed.iter().cloned());
    let joined_ids = ids(&joined);
    assert!(joined_ids.windows(2).all(|w| w[1] == w[0] + 1), "nothing missed, nothing twice, in order: {joined_ids:?}");
    let steps: Vec<&Value> = joined.iter().filter(|e| e.name == "custom").map(|e| &e.data["data"]["n"]).collect();
    assert_eq!(steps, (0..8).map(|n| json!(n)).collect::<Vec<_>>().iter().collect::<Vec<_>>());

    // After the task ended, from any event on: exactly the events after it, as first sent.
    let all = host.event_stream(&id, None).await.rest(Duration::from_secs(30)).await;
    assert_eq!(all, joined, "a late subscriber gets the same events");
    for at in [0, 1, all.len() / 2, all.len() - 2] {
        let after = all[at].id.as_deref().unwrap();
        let rest = host.event_stream(&id, Some(after)).await.rest(Duration::from_secs(30)).await;
        assert_eq!(rest, all[at + 1..], "resumed after event {after}");
    }
    // Last-Event-ID: 0 (no event seen yet) is the whole stream.
    assert_eq!(host.event_stream(&id, Some("0")).await.rest(Duration::from_secs(30)).await, all);

    for bad in ["step-3", "-1", "1.5"] {
        let response = host
            .client
            .get(host.url(&format!("/v1/tasks/{id}/events")))
            .header("last-event-id", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "Last-Event-ID: {bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_header", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("Last-Event-ID"), "{body}");
    }
}

#[tokio::test]
async fn resuming_after_the_final_state_ends_at_once() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let id = host.submit("hello", &json!(1)).await;
    host.wait(&id, 30).await;
    let all = host.event_stream(&id, None).await.rest(Duration::from_secs(30)).await;
    let last = all.last().unwrap().clone();
    assert_eq!(last.data["state"], "succeeded");

    // An EventSource reconnects by itself when a stream ends, naming the last event it got.
    // Nothing follows the final state: the answer must end at once, empty, or be 204, which
    // tells an EventSource to stop reconnecting. An id past the end is answered the same.
    let final_id: u64 = last.id.as_deref().unwrap().parse().unwrap();
    for resume_after in [final_id, final_id + 50] {
        let request = host
            .client
            .get(host.url(&format!("/v1/tasks/{id}/events")))
            .header("last-event-id", resume_after.to_string())
            .send();
        let read = async {
            let response = request.await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        };
        let (status, body) = tokio::time::timeout(Duration::from_secs(5), read).await.expect("the answer ends at once");
        assert!(
            status == 204 || (status == 200 && !body.contains("data:")),
            "no event follows the final state (resumed after {resume_after}): {status} {body:?}"
        );
    }
}
