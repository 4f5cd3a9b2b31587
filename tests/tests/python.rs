//! Python plugins (`plugins/tasks-python`, built with componentize-py by
//! `scripts/build-python-plugins`) keep the JSON contracts of their Rust namesakes and meet
//! the host's policy like them. One host serves every check: a Python component takes
//! seconds to compile.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use ignareo_e2e::guests::assert_each_limit_ends_the_task;
use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST, as_contract, python_plugin_bytes};
use serde_json::{Value, json};

async fn upload_python(host: &Host, name: &str, file: &str, manifest: Option<&str>) -> Value {
    host.upload_component(name, python_plugin_bytes(file), manifest).await
}

#[tokio::test]
async fn python_plugins_keep_the_contracts_of_the_rust_ones() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload("hello", "hello").await;
    host.upload_with("fetch-title", "fetch-title", LOCAL_MANIFEST).await;
    upload_python(&host, "hello-py", "hello", None).await;
    upload_python(&host, "fetch-title-py", "fetch-title", Some(LOCAL_MANIFEST)).await;

    for input in [json!({"n": 1}), json!("text"), json!([1, 2.5, null, true]), Value::Null] {
        assert_eq!(host.run("hello-py", &input).await, host.run("hello", &input).await, "hello of {input}");
    }
    for path in ["/page/7", "/redirect", "/status/404"] {
        let input = json!({"url": target.url(path)});
        assert_eq!(
            host.run("fetch-title-py", &input).await,
            host.run("fetch-title", &input).await,
            "fetch-title of {path}"
        );
    }

    host.upload_with("crawler", "crawler", LOCAL_MANIFEST).await;
    upload_python(&host, "crawler-py", "crawler", Some(LOCAL_MANIFEST)).await;
    let urls: Vec<String> = (0..200)
        .map(|i| if i % 50 == 49 { target.url("/status/503") } else { target.url(&format!("/page/{i}")) })
        .collect();
    for input in [
        json!({"urls": urls, "concurrency": 20}),
        json!({"urls": urls[..60], "retries": 2}),
        json!({"urls": [], "concurrency": 0}),
    ] {
        let (python, rust) = (host.run("crawler-py", &input).await, host.run("crawler", &input).await);
        assert_eq!(
            as_contract(python),
            as_contract(rust),
            "crawler of {}",
            &input.to_string()[..60.min(input.to_string().len())]
        );
    }

    // A thousand Python tasks at once: they queue for the pool, none fails for want of room.
    let inputs = (0..1_000).map(|n| json!({"n": n})).collect();
    for (n, task) in host.run_batch_to_end("hello-py", inputs).await.iter().enumerate() {
        assert_eq!(task["output"], json!({"hello": {"n": n}}), "{task}");
    }

    // Input that is not JSON, or not what the task takes: 422, as from Rust plugins.
    let not_json = host.client.post(host.url("/v1/plugins/hello-py/run")).body("nope").send().await.unwrap();
    assert_eq!(not_json.status(), 422);
    let (status, body) = host.run("fetch-title-py", &json!([1])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_input")), "{body}");

    // Deny by default: a destination the manifest does not allow fails the task, saying so.
    let (status, body) = host.run("fetch-title-py", &json!({"url": "http://example.com/"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("task_failed")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("ignareo.http.Denied: destination denied: http://example.com:80"), "{message}");
    assert!(message.contains("app.py"), "the task's own line is named: {message}");
}

#[tokio::test]
async fn a_bot_written_for_plain_requests_keeps_its_session_cookie_through_the_host() {
    let host = Host::start().await;
    let target = Target::start_with_stock_after(4).await;
    upload_python(&host, "monitor-and-order", "monitor-and-order", Some(LOCAL_MANIFEST)).await;
    let input = json!({"shop": target.base, "item": "rtx-5090", "poll_ms": 50});

    // `requests.Session`, `time.sleep`: polls until in stock, then orders with the cookie the
    // shop set on the first page.
    let id = host.submit("monitor-and-order", &input).await;
    let task = host.wait(&id, 60).await;
    assert_eq!(task["output"], json!({"order_id": "order-1", "polls": 4}), "{task}");
    let orders = target.shop.orders.lock().unwrap().clone();
    assert_eq!((orders.len(), orders[0].1.as_str()), (1, "rtx-5090"));
    let events = host.events(&id).await;
    assert!(events.iter().any(|(name, data)| name == "progress" && data["done"] == 3), "{events:?}");

    // Two bots at once keep separate sessions: each needs its own four polls.
    let (a, b) = tokio::join!(host.run("monitor-and-order", &input), host.run("monitor-and-order", &input));
    assert_eq!((a.1["polls"].as_u64(), b.1["polls"].as_u64()), (Some(4), Some(4)), "{a:?} {b:?}");
    let orders = target.shop.orders.lock().unwrap().clone();
    assert_ne!(orders[1].0, orders[2].0, "cookies never leak between tasks");

    // A destination the manifest does not allow is refused under `requests` too.
    let (status, body) =
        host.run("monitor-and-order", &json!({"shop": "http://example.com", "item": "x", "poll_ms": 1})).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("requests.exceptions.ConnectionError: destination denied"), "{message}");
}

#[tokio::test]
async fn a_rust_plugin_is_swapped_for_a_python_one_with_tasks_in_flight() {
    let host = Host::start().await;
    let rust_version = host.upload("sleep", "sleep").await["version"].clone();
    // Compiled once ahead: the swap itself then takes no compile, while the tasks still run.
    upload_python(&host, "sleep-compiled", "sleep", None).await;
    let mut before = Vec::new();
    for _ in 0..20 {
        before.push(host.submit("sleep", &json!({"ms": 1_500})).await);
    }

    let python_version = upload_python(&host, "sleep", "sleep", None).await["version"].clone();
    assert_ne!(python_version, rust_version);
    let first = host.get_json(&format!("/v1/tasks/{}", before[0])).await;
    assert_eq!(first["state"], "running", "swapped with tasks in flight: {first}");
    let mut after = Vec::new();
    for _ in 0..20 {
        after.push(host.submit("sleep", &json!({"ms": 100})).await);
    }

    // Each task ends on the version it started with (or was accepted for, if still queued).
    for (ids, ms) in [(&before, 1_500), (&after, 100)] {
        for id in ids {
            let task = host.wait(id, 60).await;
            assert_eq!(task["output"], json!({"slept_ms": ms}), "{task}");
        }
    }
    for id in &before {
        assert_eq!(host.get_json(&format!("/v1/tasks/{id}")).await["version"], rust_version);
    }
    for id in &after {
        assert_eq!(host.get_json(&format!("/v1/tasks/{id}")).await["version"], python_version);
    }
}

#[tokio::test]
async fn a_python_task_ends_with_the_right_state_at_each_limit() {
    let host = Host::start().await;
    let target = Target::start().await;
    upload_python(&host, "limits", "py-limits", Some(LOCAL_MANIFEST)).await;
    assert_each_limit_ends_the_task(&host, &target, "limits").await;
}

#[tokio::test]
async fn a_large_compile_holds_up_neither_other_uploads_nor_the_live_version() {
    let host = Host::start().await;
    host.upload("crawl", "hello").await;
    // A Python component takes seconds to compile: its upload goes on in the background.
    let form = reqwest::multipart::Form::new()
        .part("component", reqwest::multipart::Part::bytes(python_plugin_bytes("crawler")).file_name("app.wasm"))
        .text("manifest", LOCAL_MANIFEST);
    let upload = host.client.put(host.url("/v1/plugins/crawl")).multipart(form);
    let compiling = tokio::spawn(async move { upload.send().await.unwrap().status() });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Meanwhile another plugin is uploaded (and compiled) and swapped, the live version of the
    // plugin being replaced keeps serving, and the API answers.
    let sleep = host.upload("sleep", "sleep").await;
    assert_eq!(sleep["cached"], false, "{sleep}");
    host.upload("sleep", "hello").await;
    let (status, output) = host.run("crawl", &json!(1)).await;
    assert_eq!((status, output), (200, json!({"hello": 1})), "the version live before the upload");
    assert!(!compiling.is_finished(), "the large component was still compiling all along");

    assert!(compiling.await.unwrap().is_success());
    let (status, body) = host.run("crawl", &json!(1)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_input")), "now the crawler: {body}");
}

#[tokio::test]
async fn a_python_wasi_http_client_is_sent_under_the_manifest() {
    let host = Host::start().await;
    let target = Target::start().await;
    upload_python(&host, "wasi-http", "py-wasi-http", Some(LOCAL_MANIFEST)).await;
    for path in ["/page/2", "/redirect"] {
        let (status, output) = host.run("wasi-http", &json!({"url": target.url(path)})).await;
        assert_eq!((status, &output["status"]), (200, &json!(200)), "{path}: {output}");
        assert!(output["bytes"].as_u64().unwrap() > 0, "{path}: {output}");
    }
    let (status, body) = host.run("wasi-http", &json!({"url": "http://example.com/"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("task_failed")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("HttpRequestDenied"), "{body}");
    let events = host.events(body["error"]["task_id"].as_str().unwrap()).await;
    let expected = json!("wasi:http request denied: http://example.com:80 is not in this plugin's allowed_hosts");
    assert!(events.iter().any(|(kind, data)| kind == "log" && data["message"] == expected), "{events:?}");
}
