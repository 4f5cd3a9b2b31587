//! Attacks on the outbound policy from a plugin's side: credentials led to another origin by a
//! redirect, a proxy used to reach the host's own network by name, a proxy outside a mandatory
//! pool. Every figure is observed on the receiving side (a recording server, the test proxy).

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use ignareo_e2e::Host;
use ignareo_e2e::proxy::{PINNED_NAMES, TestProxy};
use ignareo_e2e::target::Target;
use serde_json::{Value, json};

/// The headers of every request a [`Recorder`] received.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// A server on one loopback address that records each request's headers and answers
/// `/go?to=URL` with a redirect to URL, anything else with 200.
struct Recorder {
    base: String,
    seen: Seen,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Recorder {
    /// Linux routes all of 127/8 to loopback: 127.0.0.1 and 127.0.0.2 are two origins on one
    /// machine.
    async fn start(ip: &str) -> Recorder {
        let seen = Seen::default();
        let app = Router::new().fallback(record).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { base, seen, server }
    }

    fn seen(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(State(seen): State<Seen>, request: Request) -> Response {
    seen.lock().unwrap().push(request.headers().clone());
    let to = request.uri().query().and_then(|q| q.strip_prefix("to=")).map(str::to_owned);
    match (request.uri().path(), to) {
        ("/go", Some(to)) => Redirect::to(&to).into_response(),
        _ => "landed".into_response(),
    }
}

async fn probe(host: &Host, plugin: &str, input: Value) -> Vec<Value> {
    let (status, body) = host.run(plugin, &input).await;
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().expect("results").clone()
}

fn kind(result: &Value) -> &str {
    result["error"]["kind"].as_str().unwrap_or("none")
}

fn port(base: &str) -> u16 {
    base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a base URL with a port")
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let host = Host::start().await;
    let (first, second) = (Recorder::start("127.0.0.1").await, Recorder::start("127.0.0.2").await);
    host.upload_with("probe", "http-probe", "allowed_hosts = [\"http://127.0.0.1:*\", \"http://127.0.0.2:*\"]\n").await;

    // The first origin redirects once to itself, then to the second origin.
    let away = format!("{}/go?to={}/landing", first.base, second.base);
    let url = format!("{}/go?to={away}", first.base);
    let headers = json!([
        ["authorization", "Bearer s3cret"],
        ["cookie", "sid=s3cret"],
        ["proxy-authorization", "Basic s3cret"],
        ["x-trace", "kept"],
    ]);
    let results = probe(
        &host,
        "probe",
        json!({
            "sessions": [{"default_headers": [["x-api-key", "s3cret"]]}],
            "steps": [{"url": url, "session": 0, "headers": headers}],
        }),
    )
    .await;
    assert_eq!(results[0]["status"], 200, "{results:?}");

    let at_first = first.seen();
    assert_eq!(at_first.len(), 2, "two hops at the first origin");
    for hop in &at_first {
        for name in ["authorization", "cookie", "proxy-authorization", "x-api-key"] {
            assert!(hop.contains_key(name), "{name} goes to its own origin, redirects within it included: {hop:?}");
        }
    }
    let at_second = second.seen();
    assert_eq!(at_second.len(), 1, "the redirect was followed");
    for name in ["authorization", "cookie", "proxy-authorization", "x-api-key"] {
        assert!(!at_second[0].contains_key(name), "{name} must not reach another origin: {:?}", at_second[0]);
    }
    assert_eq!(at_second[0]["x-trace"], "kept", "other headers follow the redirect");
}

#[tokio::test]
async fn a_proxy_does_not_lead_to_a_private_address_by_name() {
    let host = Host::start_with_config(PINNED_NAMES, &[]).await;
    let target = Target::start().await;
    let proxy = TestProxy::start(&target.base, None).await;
    // Every name is granted, and so is the proxy, by its address.
    let manifest = format!("allowed_hosts = [\"http://*:*\", \"http://127.0.0.1:{}\"]\n", port(&proxy.base));
    host.upload_with("probe", "http-probe", &manifest).await;
    let pooled = format!("allowed_hosts = [\"http://*:*\"]\nproxies = [\"{}\"]\n", proxy.base);
    host.upload_with("pooled", "http-probe", &pooled).await;

    let inside = format!("http://localhost:{}/page/1", port(&target.base));
    let results = probe(
        &host,
        "probe",
        json!({"steps": [{"url": inside, "proxy": proxy.base}, {"url": "http://shop.example.test/page/2", "proxy": proxy.base}]}),
    )
    .await;
    assert_eq!(kind(&results[0]), "denied", "a name of the host's own network, through a proxy: {results:?}");
    assert!(results[0]["error"]["message"].as_str().unwrap().contains("private address"), "{results:?}");
    assert_eq!(results[1]["status"], 200, "a public destination goes through: {results:?}");

    let results = probe(&host, "pooled", json!({"steps": [{"url": inside}]})).await;
    assert_eq!(kind(&results[0]), "denied", "the manifest's pool is no way in either: {results:?}");

    let seen: Vec<String> = proxy.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(seen, ["http://shop.example.test/page/2"], "the refused requests never reached the proxy");
}

#[tokio::test]
async fn a_guest_cannot_leave_a_mandatory_proxy_pool() {
    let host = Host::start_with_config(PINNED_NAMES, &[]).await;
    let target = Target::start().await;
    let (pool, other) = (TestProxy::start(&target.base, None).await, TestProxy::start(&target.base, None).await);
    let manifest = format!(
        "allowed_hosts = [\"http://*.example.test\", \"http://127.0.0.1:{}\"]\nproxies = [\"{}\"]\nproxies_mandatory = true\n",
        port(&other.base),
        pool.base
    );
    host.upload_with("probe", "http-probe", &manifest).await;

    let url = "http://shop.example.test/page/1";
    let results = probe(
        &host,
        "probe",
        json!({"steps": [{"url": url, "proxy": other.base}, {"url": url}, {"url": url, "proxy": pool.base}]}),
    )
    .await;
    assert_eq!(kind(&results[0]), "denied", "a granted proxy outside the mandatory pool: {results:?}");
    assert!(results[0]["error"]["message"].as_str().unwrap().contains("proxies_mandatory"), "{results:?}");
    assert_eq!(results[1]["status"], 200, "{results:?}");
    assert_eq!(results[2]["status"], 200, "the pool's own proxy may be named: {results:?}");
    assert!(other.seen().is_empty(), "nothing left through the other proxy");
    assert_eq!(pool.seen().len(), 2);
}
