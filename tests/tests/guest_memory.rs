//! Host memory a guest drives: each flood (`plugins/fixtures/hostile`) and a component with
//! many memories is stopped at a configured cap, with the host's memory within a stated bound,
//! `/healthz` answering and another caller's task succeeding alongside; a component of many
//! core instances (as a Python one is) gets its pool share with every slot, and no more.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST};
use serde_json::{Value, json};

/// How much one attack may grow the host's peak resident memory: its guest's own memory (a
/// few MiB, in the instance pool) and what the host keeps for it within the caps.
const GROWTH_BOUND: u64 = 64 << 20;

/// Submits a hostile task and waits for its end.
async fn attack(host: &Host, input: Value) -> Value {
    let id = host.submit("hostile", &input).await;
    let task = host.wait(&id, 60).await;
    assert!(!matches!(task["state"].as_str(), Some("queued" | "running")), "the attack did not end: {task}");
    task
}

/// The host survived: it answers `/healthz` and runs another caller's task.
async fn still_serving(host: &Host) {
    let health = host.client.get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(host.run("hello", &json!({"n": 1})).await, (200, json!({"hello": {"n": 1}})));
}

fn assert_ended_at(task: &Value, key: &str) {
    assert_eq!(
        (task["state"].as_str(), task["error"]["kind"].as_str()),
        (Some("failed"), Some("resource-limit")),
        "{task}"
    );
    let message = task["error"]["message"].as_str().unwrap();
    assert!(message.contains(key), "{message}");
}

#[tokio::test]
async fn floods_of_headers_cookies_requests_and_events_stay_within_their_caps() {
    let host = Host::start().await;
    host.upload_with("hostile", "hostile", LOCAL_MANIFEST).await;
    host.upload("hello", "hello").await;
    let target = Target::start().await;
    still_serving(&host).await;

    // 20,000 default headers of 16 KiB: 320 MiB if the session kept them all.
    let before = host.peak_rss_bytes();
    let headers = attack(&host, json!({"kind": "header-flood", "n": 20_000})).await;
    assert_ended_at(&headers, "outbound.max_session_headers");
    assert!(
        host.peak_rss_bytes() - before < GROWTH_BOUND,
        "a header flood grew the host by {} MiB",
        (host.peak_rss_bytes() - before) >> 20
    );
    still_serving(&host).await;

    // 1,000 answers of 50 cookies of 2 KB each: 100 MB in the jar if it kept them all.
    let before = host.peak_rss_bytes();
    let cookies = attack(&host, json!({"kind": "cookie-flood", "n": 1_000, "url": target.url("/cookie-flood/")})).await;
    assert_ended_at(&cookies, "outbound.max_session_cookie");
    assert!(
        host.peak_rss_bytes() - before < GROWTH_BOUND,
        "a cookie flood grew the host by {} MiB",
        (host.peak_rss_bytes() - before) >> 20
    );
    still_serving(&host).await;

    let before = host.peak_rss_bytes();
    let requests =
        attack(&host, json!({"kind": "fetch-all-flood", "n": 50_000, "url": "http://denied.invalid/"})).await;
    assert_ended_at(&requests, "outbound.max_fetch_all_requests");
    assert!(
        host.peak_rss_bytes() - before < GROWTH_BOUND,
        "a fetch-all flood grew the host by {} MiB",
        (host.peak_rss_bytes() - before) >> 20
    );
    still_serving(&host).await;

    // Two tasks each keeping 1,000 events of 16 KB JSON arrays: 16 MB each as text, ten
    // times that as parsed trees. Events beyond the kept ones are dropped, as logs are.
    let before = host.peak_rss_bytes();
    let (first, second) = tokio::join!(
        attack(&host, json!({"kind": "event-flood", "n": 2_000})),
        attack(&host, json!({"kind": "event-flood", "n": 2_000}))
    );
    for task in [&first, &second] {
        assert_eq!(task["state"], "succeeded", "{task}");
    }
    assert!(
        host.peak_rss_bytes() - before < GROWTH_BOUND,
        "an event flood grew the host by {} MiB",
        (host.peak_rss_bytes() - before) >> 20
    );
    let events = host.events(first["id"].as_str().unwrap()).await;
    let last = events.iter().rev().find(|(name, _)| name == "custom").unwrap();
    assert_eq!(last.1["data"].as_array().map(Vec::len), Some(8_000), "the data reads back as JSON: {}", last.1["name"]);
    still_serving(&host).await;
}

#[tokio::test]
async fn arguments_whose_entries_share_one_buffer_are_copied_within_the_task_memory() {
    let host = Host::start_with_config("[limits]\ntask_memory_mb = 32\n", &[]).await;
    host.upload_with("hostile", "hostile", LOCAL_MANIFEST).await;
    host.upload("hello", "hello").await;
    let target = Target::start().await;
    let url = target.url("/api/orders");
    still_serving(&host).await;

    // Honest sizes pass: 4 headers of 1 MiB names and values, one request of a 1 MiB body.
    let headers = attack(&host, json!({"kind": "aliased-headers", "n": 4, "url": url})).await;
    assert_eq!(headers["state"], "succeeded", "{headers}");
    let bodies = attack(&host, json!({"kind": "aliased-bodies", "n": 1, "url": url})).await;
    assert_eq!(bodies["output"], json!({"results": 1}), "{bodies}");

    // 1,000 MiB of headers and 600 MiB of bodies if each entry were copied, from 1 MiB each.
    for (kind, n) in [("aliased-headers", 500), ("aliased-bodies", 600)] {
        let before = host.peak_rss_bytes();
        let task = attack(&host, json!({"kind": kind, "n": n, "url": url})).await;
        assert_ended_at(&task, "more than the task's memory limit of 32 MiB");
        assert!(
            host.peak_rss_bytes() - before < GROWTH_BOUND,
            "{kind} grew the host by {} MiB",
            (host.peak_rss_bytes() - before) >> 20
        );
        still_serving(&host).await;
    }
}

/// A component of `memories` core instances, each with a memory; `run` grows every memory by
/// `pages` pages of 64 KiB and answers `{}`.
fn component_with_memories(memories: usize, pages: u32) -> Vec<u8> {
    component(memories, pages, 0)
}

/// A component as [`component_with_memories`], with `empty` more core instances of a module
/// that has nothing in it.
fn component(memories: usize, pages: u32, empty: usize) -> Vec<u8> {
    let empties =
        (0..empty).map(|i| format!("(core instance $e{i} (instantiate $empty))")).collect::<Vec<_>>().concat();
    // One piece of text per memory beyond the main module's.
    let each = |piece: &dyn Fn(usize) -> String| (0..memories - 1).map(piece).collect::<Vec<_>>().concat();
    let imports = each(&|i| format!("(import \"m{i}\" \"grow\" (func $grow{i} (param i32) (result i32)))"));
    let calls = each(&|i| format!("(drop (call $grow{i} (i32.const {pages})))"));
    let instances = each(&|i| format!("(core instance $m{i} (instantiate $grower))"));
    let with = each(&|i| format!("(with \"m{i}\" (instance $m{i}))"));
    let text = format!(
        r#"(component
          (core module $grower
            (memory (export "memory") 1)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
          (core module $empty)
          {empties}
          (core module $main
            {imports}
            (memory (export "memory") 1)
            ;; result<list<u8>, _>: ok, then the list's pointer and length.
            (data (i32.const 16) "\00\00\00\00\20\00\00\00\02\00\00\00")
            (data (i32.const 32) "{{}}")
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
            (func (export "run") (param i32 i32) (result i32)
              (drop (memory.grow (i32.const {pages})))
              {calls}
              (i32.const 16)))
          {instances}
          (core instance $main (instantiate $main {with}))
          (type $error (variant (case "invalid-input" string) (case "failed" string)))
          (export $task-error "task-error" (type $error))
          (func $run (param "input" (list u8)) (result (result (list u8) (error $task-error)))
            (canon lift (core func $main "run") (memory (core memory $main "memory")) (realloc (core func $main "cabi_realloc"))))
          (export "run" (func $run)))"#
    );
    wat::parse_str(text).unwrap()
}

#[tokio::test]
async fn a_component_with_many_memories_gets_the_task_memory_in_total_and_no_more_slots() {
    let host = Host::start_with_config("[limits]\ntask_memory_mb = 16\nmax_memories_per_task = 3\n", &[]).await;
    host.upload("hello", "hello").await;

    // Three memories of 6.25 MiB each fit one by one, not together.
    let response = host.upload_bytes("many-memories", component_with_memories(3, 100)).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let (status, body) = host.run("many-memories", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("memory_limit")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("memory limit of 16 MiB"), "{body}");
    let response = host.upload_bytes("few-pages", component_with_memories(3, 50)).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert_eq!(host.run("few-pages", &json!({})).await, (200, json!({})), "within the limit in total, it runs");

    // A fourth memory would take another task's pool slot: refused at upload.
    let response = host.upload_bytes("more-memories", component_with_memories(4, 1)).await;
    let status = response.status();
    let message = response.text().await.unwrap();
    assert!(status.is_client_error(), "{status} {message}");
    assert!(message.contains("limits.max_memories_per_task"), "{message}");
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})));
}

#[tokio::test]
async fn a_component_of_many_core_instances_runs_in_every_slot_and_queues_beyond() {
    let host =
        Host::start_with_config("[limits]\nmax_running_tasks = 8\nmax_core_instances_per_task = 16\n", &[]).await;

    // 14 core instances, as a Python component has: a thousand tasks at once all run, eight
    // at a time, none failing for want of pool room.
    let response = host.upload_bytes("fourteen", component(1, 1, 13)).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    for task in host.run_batch_to_end("fourteen", vec![json!({}); 1_000]).await {
        assert_eq!(task["state"], "succeeded", "{task}");
    }

    // More than the configured share is refused at upload, naming the key.
    let response = host.upload_bytes("seventeen", component(1, 1, 16)).await;
    let status = response.status();
    let message = response.text().await.unwrap();
    assert!(status.is_client_error(), "{status} {message}");
    assert!(message.contains("limits.max_core_instances_per_task"), "{message}");
}
