//! Plugin management over HTTP: upload, list, show, delete, roll back, and every refusal.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use ignareo_e2e::{Host, TOKEN, TempDir, plugin_bytes};
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

    let anonymous = reqwest::Client::new().delete(host.url("/v1/plugins/hello")).send().await.unwrap();
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

/// Components the host has compiled since it started, as `/healthz` counts them.
async fn compilations(host: &Host) -> u64 {
    let health: Value = host.client.get(host.url("/healthz")).send().await.unwrap().json().await.unwrap();
    health["compilations"].as_u64().expect("a count of compilations")
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
    let host = Host::start_with_config("[limits]\nmax_component_mb = 1\n", &[]).await;

    let (status, code, message) = refusal(host.upload_bytes("p", Vec::new()).await).await;
    assert_eq!((status, code.as_str()), (400, "empty_body"), "{message}");

    let (status, code, message) = refusal(host.upload_bytes("p", b"<html>not wasm</html>".to_vec()).await).await;
    assert_eq!((status, code.as_str()), (400, "not_wasm"), "{message}");

    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let (status, code, message) = refusal(host.upload_bytes("p", core_module).await).await;
    assert_eq!((status, code.as_str()), (422, "not_a_component"));
    assert!(message.contains("wasm32-wasip2"), "{message}");

    // Components for another world are refused from their imports and exports, uncompiled.
    let compiled = compilations(&host).await;
    let (status, code, message) = refusal(host.upload_bytes("p", plugin_bytes("not-a-task")).await).await;
    assert_eq!((status, code.as_str()), (422, "wrong_world"));
    assert!(message.contains("ignareo:task/task") && message.contains("run"), "{message}");
    let keyvalue = wat::parse_str(r#"(component (import "wasi:keyvalue/store@0.2.0" (instance)))"#).unwrap();
    let (status, code, message) = refusal(host.upload_bytes("p", keyvalue).await).await;
    assert_eq!((status, code.as_str()), (422, "wrong_world"));
    assert!(message.contains("wasi:keyvalue/store@0.2.0, which this host does not link"), "{message}");
    assert_eq!(compilations(&host).await, compiled, "nothing was compiled to refuse them");

    let mut truncated = plugin_bytes("hello");
    truncated.truncate(truncated.len() / 2);
    let (status, code, message) = refusal(host.upload_bytes("p", truncated).await).await;
    assert_eq!((status, code.as_str()), (422, "compile_failed"), "{message}");

    // The host answers before reading an oversized body and closes that connection.
    let oversized =
        reqwest::Client::new().put(host.url("/v1/plugins/p")).bearer_auth(TOKEN).body(vec![0u8; 2 * 1024 * 1024]);
    let (status, code, message) = refusal(oversized.send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    assert!(message.contains("max_component_mb"), "{message}");

    for bad_name in ["Hello", "-x", "a.b", &"x".repeat(65), "..%2F..%2Fetc", "a%00b", "a%2Fb"] {
        let (status, code, _) = refusal(host.upload_bytes(bad_name, plugin_bytes("hello")).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_name"), "{bad_name}");
    }

    let anonymous =
        reqwest::Client::new().put(host.url("/v1/plugins/p")).body(plugin_bytes("hello")).send().await.unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let (status, code, message) = refusal(anonymous).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("Bearer"), "{message}");
    let wrong = host
        .client
        .put(host.url("/v1/plugins/p"))
        .bearer_auth("not-the-token")
        .body(plugin_bytes("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(wrong).await.0, 401);

    assert_eq!(host.get_json("/v1/plugins").await["plugins"], json!([]), "nothing refused was registered");
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
    let unauthenticated = reqwest::Client::new().post(host.url("/v1/plugins/greet/rollback")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let missing = host.client.post(host.url("/v1/plugins/nope/rollback")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_restart_keeps_plugins_and_does_not_recompile() {
    let data_dir = TempDir::new("restart");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    host.upload("hello", "hello").await;
    host.upload("hello", "hello-v2").await;
    assert_eq!(host.get_json("/healthz").await["compilations"], 2);
    assert!(host.terminate().await.success());

    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    assert_eq!(host.get_json("/healthz").await["compilations"], 0, "compiled artifacts are reused");
    assert_eq!(host.get_json("/v1/plugins/hello").await["versions"].as_array().unwrap().len(), 2);
    assert_eq!(host.run("hello", &json!(1)).await.1, json!({"hello": 1, "version": 2}));
}

#[tokio::test]
async fn a_manifest_travels_with_its_component_as_a_version() {
    let host = Host::start().await;
    let manifest = "allowed_hosts = [\"https://*.example.com\"]\nproxies = [\"http://bob:s3cret@10.0.0.2:3128\"]\ntimeout = \"90s\"\n";
    let response = host.upload_form("probe", plugin_bytes("http-probe"), Some(manifest)).await;
    assert_eq!(response.status(), 201);
    let with_manifest: Value = response.json().await.unwrap();
    assert_eq!(with_manifest["manifest"]["allowed_hosts"], json!(["https://*.example.com"]));
    assert_eq!(with_manifest["manifest"]["timeout_secs"], 90.0);
    assert_ne!(with_manifest["version"], with_manifest["component"], "the version covers the manifest too");

    let shown = host.get_json("/v1/plugins/probe").await;
    assert_eq!(shown["manifest"]["proxies"], json!(["http://bob:***@10.0.0.2:3128"]));
    assert!(!shown.to_string().contains("s3cret"), "the proxy password is never shown: {shown}");

    // The same component without a manifest: another version, no recompilation, no grants.
    let bare = host.upload_form("probe", plugin_bytes("http-probe"), None).await;
    let bare: Value = bare.json().await.unwrap();
    assert_eq!(bare["component"], with_manifest["component"]);
    assert_eq!(bare["version"], bare["component"]);
    assert_eq!(bare["cached"], true);
    assert_eq!(bare["manifest"]["allowed_hosts"], json!([]));
    let versions = host.get_json("/v1/plugins/probe").await["versions"].clone();
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(
        (versions[0]["has_manifest"].as_bool(), versions[1]["has_manifest"].as_bool()),
        (Some(true), Some(false))
    );

    // Rolling back brings the manifest back with the component.
    let view: Value = host
        .client
        .post(host.url("/v1/plugins/probe/rollback"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["live"], with_manifest["version"]);
    assert_eq!(view["manifest"]["allowed_hosts"], json!(["https://*.example.com"]));
    assert_eq!(host.get_json("/healthz").await["compilations"], 1);
}

#[tokio::test]
async fn bad_manifests_and_forms_are_refused_naming_the_problem() {
    let host = Host::start().await;
    let cases = [
        ("alowed_hosts = []", "alowed_hosts"),
        ("allowed_hosts = [\"example.com\"]", "allowed_hosts[0]"),
        ("allowed_hosts = \"https://example.com\"", "allowed_hosts"),
        ("memory_limit = \"1TiB\"", "limits.task_memory_mb"),
        ("timeout = \"forever\"", "timeout"),
        ("max_concurrency = 0", "max_concurrency"),
        ("proxies = [\"socks5://10.0.0.1:1080\"]", "proxies[0]"),
        ("[politeness]\nburst = 0", "politeness.burst"),
        ("not toml at all", "invalid manifest"),
    ];
    for (manifest, named) in cases {
        let (status, code, message) = refusal(host.upload_form("p", plugin_bytes("hello"), Some(manifest)).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_manifest"), "{manifest}: {message}");
        assert!(message.contains(named), "{manifest}: {message}");
    }

    let form = |parts: Vec<(&'static str, Vec<u8>)>| {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in parts {
            form = form.part(name, reqwest::multipart::Part::bytes(bytes));
        }
        host.client.put(host.url("/v1/plugins/p")).bearer_auth(TOKEN).multipart(form).send()
    };
    let (status, code, message) = refusal(form(vec![("manifest", b"".to_vec())]).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_multipart"));
    assert!(message.contains("component"), "{message}");
    let (status, code, message) =
        refusal(form(vec![("component", plugin_bytes("hello")), ("extra", b"x".to_vec())]).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_multipart"));
    assert!(message.contains("extra"), "{message}");
    let (status, code, _) =
        refusal(form(vec![("component", plugin_bytes("hello")), ("manifest", vec![0xff, 0xfe])]).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "invalid_manifest"));
    let (status, code, _) = refusal(form(vec![("component", b"not wasm".to_vec())]).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "not_wasm"));

    assert_eq!(host.get_json("/v1/plugins").await["plugins"], json!([]), "nothing refused was registered");
}

/// Numbers no task could run under, slipped into a manifest: each is refused at upload with a
/// 400 naming its key, instead of reaching a task (a rate of 1e-300 requests per second made
/// a task's first request panic inside its host call, leaving the task running for ever).
#[tokio::test]
async fn manifest_numbers_out_of_range_are_refused_at_upload() {
    let host = Host::start().await;
    let cases = [
        ("[politeness]\nrequests_per_second = 1e-300", "politeness.requests_per_second"),
        ("[politeness]\nrequests_per_second = nan", "politeness.requests_per_second"),
        ("[politeness]\nrequests_per_second = inf", "politeness.requests_per_second"),
        (
            "[politeness.hosts.\"a.example\"]\nrequests_per_second = 1e300",
            "politeness.hosts.\"a.example\".requests_per_second",
        ),
        ("[politeness]\nburst = 4000000000", "politeness.burst"),
        ("timeout = nan", "timeout"),
        ("timeout = -5", "timeout"),
        ("timeout = 1e300", "timeout"),
        ("timeout = \"200000000000000000000s\"", "timeout"),
        ("memory_limit = -1", "memory_limit"),
        ("max_response_bytes = 1.5", "max_response_bytes"),
        ("spawn = [\"../etc\"]", "spawn[0]"),
    ];
    for (manifest, named) in cases {
        let (status, code, message) = refusal(host.upload_form("p", plugin_bytes("hello"), Some(manifest)).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_manifest"), "{manifest}: {message}");
        assert!(message.contains(named), "{manifest}: {message}");
    }
    assert_eq!(host.get_json("/v1/plugins").await["plugins"], json!([]), "nothing refused was registered");
    let fine = "timeout = 1.5\n[politeness]\nrequests_per_second = 0.5\nburst = 3\n";
    assert_eq!(host.upload_form("p", plugin_bytes("hello"), Some(fine)).await.status(), 201);
    assert_eq!(host.get_json("/healthz").await["status"], "ok");
}
