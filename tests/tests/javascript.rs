//! JavaScript plugins (`plugins/tasks-js`, built with componentize-js by
//! `scripts/build-js-plugins`) keep the JSON contracts of their Rust namesakes, reach the
//! network only through the host (the standard `fetch` included) and end at each limit as a
//! Rust plugin does. One host serves each group of checks: a JavaScript component takes
//! seconds to compile.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use ignareo_e2e::guests::assert_each_limit_ends_the_task;
use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST, as_contract, js_plugin_bytes};
use serde_json::{Value, json};

async fn upload_js(host: &Host, name: &str, file: &str, manifest: Option<&str>) -> Value {
    host.upload_component(name, js_plugin_bytes(file), manifest).await
}

#[tokio::test]
async fn javascript_plugins_keep_the_contracts_of_the_rust_ones() {
    let host = Host::start().await;
    let target = Target::start().await;
    for (name, manifest) in
        [("hello", None), ("sleep", None), ("fetch-title", Some(LOCAL_MANIFEST)), ("crawler", Some(LOCAL_MANIFEST))]
    {
        match manifest {
            Some(manifest) => host.upload_with(name, name, manifest).await,
            None => host.upload(name, name).await,
        };
        upload_js(&host, &format!("{name}-js"), name, manifest).await;
    }

    let urls: Vec<String> = (0..200)
        .map(|i| if i % 50 == 49 { target.url("/status/503") } else { target.url(&format!("/page/{i}")) })
        .collect();
    let cases = [
        ("hello", json!({"n": 1})),
        ("hello", json!([1, 2.5, null, true, "text"])),
        ("hello", Value::Null),
        ("sleep", json!({"ms": 20})),
        ("sleep", json!({"ms": -1})),
        // The standard `fetch`, through the host.
        ("fetch-title", json!({"url": target.url("/page/7")})),
        ("fetch-title", json!({"url": target.url("/redirect")})),
        ("fetch-title", json!({"url": target.url("/status/404")})),
        ("crawler", json!({"urls": urls, "concurrency": 20})),
        ("crawler", json!({"urls": urls[..60], "retries": 2})),
        ("crawler", json!({"urls": [], "concurrency": 0})),
    ];
    for (plugin, input) in cases {
        let js = host.run(&format!("{plugin}-js"), &input).await;
        assert_eq!(as_contract(js), as_contract(host.run(plugin, &input).await), "{plugin} of {input}");
    }

    let not_json = host.client.post(host.url("/v1/plugins/hello-js/run")).body("nope").send().await.unwrap();
    assert_eq!(not_json.status(), 422);

    // Deny by default, for the standard `fetch` too (the engine's own, over wasi:http): the
    // task fails with fetch's network error, and its events say why.
    let (status, body) = host.run("fetch-title-js", &json!({"url": "http://example.com/"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("task_failed")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("TypeError: NetworkError"), "{message}");
    let events = host.events(body["error"]["task_id"].as_str().unwrap()).await;
    let denial = events.iter().find(|(kind, data)| kind == "log" && data["level"] == "warn").map(|(_, data)| data);
    let denial = denial.and_then(|data| data["message"].as_str()).unwrap_or_default();
    let expected = "wasi:http request denied: http://example.com:80 is not in this plugin's allowed_hosts";
    assert_eq!(denial, expected, "{events:?}");
    // A redirect's every hop is checked: a granted page that redirects elsewhere is denied too.
    let away = target.url("/redirect-to?url=http://example.com/");
    let (status, body) = host.run("fetch-title-js", &json!({ "url": away })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("task_failed")), "{body}");

    // A thousand JavaScript tasks at once: they queue for the pool, none fails for want of room.
    let inputs = (0..1_000).map(|n| json!({"n": n})).collect();
    for (n, task) in host.run_batch_to_end("hello-js", inputs).await.iter().enumerate() {
        assert_eq!(task["output"], json!({"hello": {"n": n}}), "{task}");
    }
}

#[tokio::test]
async fn a_javascript_task_ends_with_the_right_state_at_each_limit() {
    let host = Host::start().await;
    let target = Target::start().await;
    upload_js(&host, "limits", "js-limits", Some(LOCAL_MANIFEST)).await;
    assert_each_limit_ends_the_task(&host, &target, "limits").await;
}
