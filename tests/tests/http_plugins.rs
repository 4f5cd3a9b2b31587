//! HTTP plugins: stock `wasi:http/proxy` components, written to componentize-py's and
//! componentize-js's own conventions (`plugins/fixtures-http`, no ignareo SDK), answer at
//! `/v1/plugins/{name}/http/…`; each request is a task of the plugin, under its manifest's
//! grants and timeout, the caller's token, cancellation and hot swap. One host serves the checks: the
//! components take seconds to compile.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::Duration;

use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST, js_plugin_bytes, python_plugin_bytes};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PLUGINS: [&str; 2] = ["py-proxy", "js-proxy"];

fn task_id(response: &reqwest::Response) -> String {
    response.headers()["ignareo-task-id"].to_str().unwrap().to_owned()
}

fn version(response: &reqwest::Response) -> String {
    response.headers()["ignareo-plugin-version"].to_str().unwrap().to_owned()
}

/// `GET /fetch?url=URL` of `plugin`: the plugin fetches URL itself, over wasi:http.
async fn fetch_through(host: &Host, plugin: &str, url: &str) -> reqwest::Response {
    let path = host.url(&format!("/v1/plugins/{plugin}/http/fetch"));
    host.client.get(path).query(&[("url", url)]).send().await.unwrap()
}

#[tokio::test]
async fn stock_proxy_components_answer_requests_under_the_plugins_manifest() {
    let host = Host::start().await;
    let target = Target::start().await;
    let manifest = format!("{LOCAL_MANIFEST}timeout = \"3s\"\n");
    let uploaded = host.upload_component("py-proxy", python_plugin_bytes("py-proxy"), Some(&manifest)).await;
    assert_eq!(uploaded["kind"], "http", "{uploaded}");
    host.upload_component("js-proxy", js_plugin_bytes("js-proxy"), Some(&manifest)).await;
    assert_eq!(host.get_json("/v1/plugins/js-proxy").await["kind"], "http");

    for plugin in PLUGINS {
        // The request as the plugin sees it: its own path and query, the caller's headers but
        // not the host's token, the body.
        let url = host.url(&format!("/v1/plugins/{plugin}/http/orders/7?pretty=1"));
        let response = host.client.post(url).header("x-shop", "north").body("two items").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{plugin}");
        let id = task_id(&response);
        let echo: Value = response.json().await.unwrap();
        assert_eq!(
            (&echo["method"], &echo["path"], &echo["body"], &echo["headers"]["x-shop"]),
            (&json!("POST"), &json!("/orders/7?pretty=1"), &json!("two items"), &json!("north")),
            "{plugin}: {echo}"
        );
        assert!(echo["headers"].get("authorization").is_none(), "{plugin} saw the host's token: {echo}");
        assert_eq!(host.wait(&id, 10).await["state"], "succeeded", "{plugin}: each request is a task");
        let root = host.get_json(&format!("/v1/plugins/{plugin}/http")).await;
        assert_eq!(root["path"], "/", "{plugin}");

        // Its own HTTP client goes through the host: a granted destination answers...
        let response = fetch_through(&host, plugin, &target.url("/page/3")).await;
        assert_eq!(response.status(), StatusCode::OK, "{plugin}");
        let fetched: Value = response.json().await.unwrap();
        assert_eq!(fetched["status"], 200, "{plugin}: {fetched}");
        assert!(fetched["bytes"].as_u64().unwrap() > 0, "{plugin}: {fetched}");
        // ... one outside the grants is refused, and the request's task says why.
        let response = fetch_through(&host, plugin, "http://example.com/").await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{plugin}: the plugin's own answer to a refusal");
        let events = host.events(&task_id(&response)).await;
        let expected = json!("wasi:http request denied: http://example.com:80 is not in this plugin's allowed_hosts");
        assert!(events.iter().any(|(kind, data)| kind == "log" && data["message"] == expected), "{plugin}: {events:?}");

        // The manifest's timeout ends a request that takes longer: 504, the task timed out.
        let response = fetch_through(&host, plugin, &target.url("/slow?ms=10000")).await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT, "{plugin}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "timed_out", "{plugin}: {body}");
    }
}

#[tokio::test]
async fn http_plugins_are_triggered_swapped_and_refused_like_task_plugins() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload_component("shop", python_plugin_bytes("py-proxy"), Some(LOCAL_MANIFEST)).await;
    host.upload("hello", "hello").await;

    // Each kind is called its own way; the other way is refused, saying which.
    let (status, body) = host.run("shop", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("wrong_kind")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("/v1/plugins/shop/http/"), "{body}");
    let response = host.client.get(host.url("/v1/plugins/hello/http/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let missing = host.client.get(host.url("/v1/plugins/nothing/http/")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // A token may send requests to the plugins it may trigger, and to no other.
    let request = json!({"name": "bot", "scopes": ["trigger"], "plugins": ["hello"]});
    let created: Value =
        host.client.post(host.url("/v1/tokens")).json(&request).send().await.unwrap().json().await.unwrap();
    let token = created["token"].as_str().unwrap();
    let refused = reqwest::Client::new().get(host.url("/v1/plugins/shop/http/")).bearer_auth(token).send().await;
    assert_eq!(refused.unwrap().status(), StatusCode::FORBIDDEN);
    let unauthenticated = reqwest::Client::new().get(host.url("/v1/plugins/shop/http/")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    // A request is cancelled like a task, mid-request: its caller gets the task's end.
    let slow_request = |ms: u64| {
        let (client, url) = (host.client.clone(), host.url("/v1/plugins/shop/http/fetch"));
        let slow = target.url(&format!("/slow?ms={ms}"));
        tokio::spawn(async move { client.get(url).query(&[("url", slow)]).send().await.unwrap() })
    };
    let cancelled = slow_request(10_000);
    let running = loop {
        let page = host.get_json("/v1/tasks?plugin=shop&state=running").await;
        if let Some(id) = page["tasks"][0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deleted = host.client.delete(host.url(&format!("/v1/tasks/{running}"))).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let answer = cancelled.await.unwrap();
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    assert_eq!(answer.json::<Value>().await.unwrap()["error"]["code"], "cancelled");

    // A hot swap to a version in another language: a request in flight ends on the version it
    // started with, the next ones reach the new one.
    let before = host.client.get(host.url("/v1/plugins/shop/http/")).send().await.unwrap();
    let old_version = version(&before);
    let in_flight = slow_request(1_500);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let swapped = host.upload_component("shop", js_plugin_bytes("js-proxy"), Some(LOCAL_MANIFEST)).await;
    let new_version = swapped["version"].as_str().unwrap().to_owned();
    assert_ne!(new_version, old_version);
    let finished = in_flight.await.unwrap();
    assert_eq!((finished.status(), version(&finished)), (StatusCode::OK, old_version.clone()));
    let after = host.client.get(host.url("/v1/plugins/shop/http/")).send().await.unwrap();
    assert_eq!((after.status(), version(&after)), (StatusCode::OK, new_version));
}
