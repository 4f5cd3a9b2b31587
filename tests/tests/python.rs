//! Python plugins (`plugins/tasks-python`, built with componentize-py by
//! `scripts/build-python-plugins`) keep the JSON contracts of their Rust namesakes and meet
//! the host's policy like them. One host serves every check: a Python component takes
//! seconds to compile.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST, python_plugin_bytes};
use serde_json::{Value, json};

async fn upload_python(host: &Host, name: &str, file: &str, manifest: Option<&str>) {
    let response = host.upload_form(name, python_plugin_bytes(file), manifest).await;
    let status = response.status();
    assert!(status.is_success(), "upload of {file}: {status} {}", response.text().await.unwrap());
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
