//! Plugin management over HTTP: upload, list, show, delete, roll back, and every refusal.

use ignareo_e2e::{Host, TOKEN, plugin_bytes};
use serde_json::{Value, json};

#[tokio::test]
async fn upload_list_show_and_delete() {
    let host = Host::start().await;
    let first = host.upload_bytes("hello", plugin_bytes("hello")).await;
    assert_eq!(first.status(), 201);
    let report: Value = first.json().await.unwrap();
    let version = report["version"].as_str().unwrap().to_owned();
    assert_eq!(version.len(), 64, "the version is a sha256: {report}");
    assert!(report["size"].as_u64().unwrap() > 1000);
    assert_eq!(report["cached"], false);

    let again = host.upload_bytes("hello", plugin_bytes("hello")).await;
    assert_eq!(again.status(), 200, "re-uploading an existing plugin is not a creation");
    assert_eq!(again.json::<Value>().await.unwrap()["cached"], true);

    let list = host.get_json("/v1/plugins").await;
    assert_eq!(list["plugins"][0]["name"], "hello");
    let shown = host.get_json("/v1/plugins/hello").await;
    assert_eq!(shown["live"], version);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1);

    let anonymous = host.client.delete(host.url("/v1/plugins/hello")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let deleted = host.client.delete(host.url("/v1/plugins/hello")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = host.client.get(host.url("/v1/plugins/hello")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let (status, body) = host.run("hello", &json!(1)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let again = host.client.delete(host.url("/v1/plugins/hello")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(again.status(), 404);
}

async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("refusals are JSON");
    let code = body["error"]["code"].as_str().expect("an error code").to_owned();
    let message = body["error"]["message"].as_str().expect("an error message").to_owned();
    (status, code, message)
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_reason() {
    let config = std::env::temp_dir().join(format!("ignareo-small-upload-{:x}.toml", rand::random::<u64>()));
    std::fs::write(&config, "[limits]\nmax_component_mb = 1\n").unwrap();
    let host = Host::start_with(&["--config", config.to_str().unwrap()]).await;

    let (status, code, message) = refusal(host.upload_bytes("p", Vec::new()).await).await;
    assert_eq!((status, code.as_str()), (400, "empty_body"), "{message}");

    let (status, code, message) = refusal(host.upload_bytes("p", b"<html>not wasm</html>".to_vec()).await).await;
    assert_eq!((status, code.as_str()), (400, "not_wasm"), "{message}");

    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let (status, code, message) = refusal(host.upload_bytes("p", core_module).await).await;
    assert_eq!((status, code.as_str()), (422, "not_a_component"));
    assert!(message.contains("wasm32-wasip2"), "{message}");

    let (status, code, message) = refusal(host.upload_bytes("p", plugin_bytes("not-a-task")).await).await;
    assert_eq!((status, code.as_str()), (422, "wrong_world"));
    assert!(message.contains("ignareo:task/task") && message.contains("run"), "{message}");

    let mut truncated = plugin_bytes("hello");
    truncated.truncate(truncated.len() / 2);
    let (status, code, message) = refusal(host.upload_bytes("p", truncated).await).await;
    assert_eq!((status, code.as_str()), (422, "compile_failed"), "{message}");

    // The host answers before reading an oversized body and closes that connection.
    let oversized = reqwest::Client::new().put(host.url("/v1/plugins/p")).bearer_auth(TOKEN).body(vec![0u8; 2 * 1024 * 1024]);
    let (status, code, message) = refusal(oversized.send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    assert!(message.contains("max_component_mb"), "{message}");

    for bad_name in ["Hello", "-x", "a.b", &"x".repeat(65)] {
        let (status, code, _) = refusal(host.upload_bytes(bad_name, plugin_bytes("hello")).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_name"), "{bad_name}");
    }

    let anonymous = host.client.put(host.url("/v1/plugins/p")).body(plugin_bytes("hello")).send().await.unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let (status, code, message) = refusal(anonymous).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("Bearer"), "{message}");
    let wrong = host.client.put(host.url("/v1/plugins/p")).bearer_auth("not-the-token").body(plugin_bytes("hello")).send().await.unwrap();
    assert_eq!(refusal(wrong).await.0, 401);

    assert_eq!(host.get_json("/v1/plugins").await["plugins"], json!([]), "nothing refused was registered");
    std::fs::remove_file(config).unwrap();
}

#[tokio::test]
async fn rollback_makes_an_earlier_version_live() {
    let host = Host::start().await;
    let v1 = host.upload("greet", "hello").await["version"].as_str().unwrap().to_owned();
    let rollback = |body: Option<Value>| {
        let mut request = host.client.post(host.url("/v1/plugins/greet/rollback")).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let (status, code, _) = refusal(rollback(None).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (409, "no_previous_version"));

    let v2 = host.upload("greet", "hello-v2").await["version"].as_str().unwrap().to_owned();
    assert_eq!(host.run("greet", &json!("x")).await.1, json!({"hello": "x", "version": 2}));

    let view: Value = rollback(None).await.unwrap().json().await.unwrap();
    assert_eq!(view["live"], v1);
    assert_eq!(host.run("greet", &json!("x")).await.1, json!({"hello": "x"}));

    let view: Value = rollback(Some(json!({"version": v2}))).await.unwrap().json().await.unwrap();
    assert_eq!(view["live"], v2);
    assert_eq!(host.run("greet", &json!("x")).await.1["version"], 2);

    let (status, _, _) = refusal(rollback(Some(json!({"version": "0".repeat(64)}))).await.unwrap()).await;
    assert_eq!(status, 404);
    let unauthenticated = host.client.post(host.url("/v1/plugins/greet/rollback")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let missing = host.client.post(host.url("/v1/plugins/nope/rollback")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_restart_keeps_plugins_and_does_not_recompile() {
    let data_dir = std::env::temp_dir().join(format!("ignareo-restart-{:016x}", rand::random::<u64>()));
    let host = Host::start_in(&data_dir, &[]).await.unwrap();
    host.upload("hello", "hello").await;
    host.upload("hello", "hello-v2").await;
    assert_eq!(host.get_json("/healthz").await["compilations"], 2);
    assert!(host.terminate().await.success());

    let host = Host::start_in(&data_dir, &[]).await.unwrap();
    assert_eq!(host.get_json("/healthz").await["compilations"], 0, "compiled artifacts are reused");
    assert_eq!(host.get_json("/v1/plugins/hello").await["versions"].as_array().unwrap().len(), 2);
    assert_eq!(host.run("hello", &json!(1)).await.1, json!({"hello": 1, "version": 2}));
    drop(host);
    std::fs::remove_dir_all(data_dir).unwrap();
}
