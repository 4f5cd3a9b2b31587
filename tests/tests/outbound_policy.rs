//! The outbound policy as a plugin meets it: grants (deny by default, wildcards, addresses,
//! redirects), the resolved-address check, politeness per destination host shared across
//! plugins, sessions, proxies, retries, and limits on what comes back. Plugins run against
//! local targets and a recording proxy; every figure is observed on the target's side.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::sync::atomic::Ordering;
use std::time::Duration;

use ignareo_e2e::proxy::{PINNED_NAMES, TestProxy};
use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST};
use serde_json::{Value, json};

/// Runs `http-probe` (uploaded as `plugin`) on `input` and returns its results.
async fn probe(host: &Host, plugin: &str, input: Value) -> Vec<Value> {
    let (status, body) = host.run(plugin, &input).await;
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().expect("results").clone()
}

fn kind(result: &Value) -> &str {
    result["error"]["kind"].as_str().unwrap_or("none")
}

fn message(result: &Value) -> &str {
    result["error"]["message"].as_str().unwrap_or_default()
}

fn port(base: &str) -> u16 {
    base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a base URL with a port")
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

async fn start_with_config(text: &str) -> Host {
    Host::start_with_config(text, &[]).await
}

#[tokio::test]
async fn a_plugin_without_a_manifest_reaches_nothing() {
    let host = Host::start().await;
    let target = Target::start().await;
    let report = host.upload("probe", "http-probe").await;
    assert_eq!(report["manifest"]["allowed_hosts"], json!([]));

    let results = probe(
        &host,
        "probe",
        json!({"steps": [{"url": target.url("/page/1")}, {"fetch_all": [{"url": target.url("/page/2")}]}]}),
    )
    .await;
    assert_eq!(kind(&results[0]), "denied", "{results:?}");
    assert!(
        message(&results[0]).contains(&format!("127.0.0.1:{}", port(&target.base))),
        "the refusal names the destination: {results:?}"
    );
    assert!(message(&results[0]).contains("no allowed_hosts"), "{results:?}");
    assert_eq!(kind(&results[1][0]), "denied");
    assert_eq!(target.requests.load(Ordering::Relaxed), 0, "nothing reached the target");
}

#[tokio::test]
async fn wildcards_grant_subdomains_and_a_proxy_carries_the_request() {
    let host = start_with_config(PINNED_NAMES).await;
    let target = Target::start().await;
    let proxy = TestProxy::start(&target.base, Some(("bob", "s3cret"))).await;
    let manifest = format!("allowed_hosts = [\"http://*.example.test\", \"http://127.0.0.1:{}\"]\n", port(&proxy.base));
    host.upload_with("probe", "http-probe", &manifest).await;

    let via = proxy.url_with("bob", "s3cret");
    let steps = json!([
        {"url": "http://shop.example.test/page/3", "proxy": via},
        {"url": "http://example.test/page/3", "proxy": via},
        {"url": "http://shop.example.org/page/3", "proxy": via},
        {"url": "http://shop.example.test/page/4", "proxy": proxy.url_with("bob", "wrong")},
        {"url": "http://shop.example.test/page/4", "proxy": format!("http://127.0.0.1:{}", closed_port())},
    ]);
    let results = probe(&host, "probe", json!({ "steps": steps })).await;
    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert!(results[0]["body"].as_str().unwrap().contains("<title>Page 3</title>"));
    assert_eq!(kind(&results[1]), "denied", "`*.example.test` does not grant example.test itself: {results:?}");
    assert_eq!(kind(&results[2]), "denied", "{results:?}");
    assert_eq!(kind(&results[3]), "proxy", "a 407 from the proxy is a proxy error: {results:?}");
    assert!(message(&results[3]).contains("407"), "{results:?}");
    assert!(!message(&results[3]).contains("wrong"), "the proxy password is never shown: {results:?}");
    assert_eq!(kind(&results[4]), "denied", "a proxy the manifest does not grant is refused: {results:?}");

    let seen = proxy.seen();
    assert_eq!(seen.len(), 2, "only the granted requests reached the proxy: {seen:?}");
    assert_eq!(seen[0].uri, "http://shop.example.test/page/3");
    assert_eq!(seen[0].proxy_authorization.as_deref(), Some("Basic Ym9iOnMzY3JldA=="));
    assert_eq!(target.requests.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_proxy_pool_rotates_across_sessions_and_a_task_input_can_bind_its_proxy() {
    let host = start_with_config(PINNED_NAMES).await;
    let target = Target::start().await;
    let (a, b) = (TestProxy::start(&target.base, None).await, TestProxy::start(&target.base, None).await);
    let pooled = format!("allowed_hosts = [\"http://*.example.test\"]\nproxies = [\"{}\", \"{}\"]\n", a.base, b.base);
    host.upload_with("pooled", "http-probe", &pooled).await;

    let input = json!({
        "sessions": [{}, {}, {}],
        "steps": [
            {"session": 0, "url": "http://one.example.test/page/1"},
            {"session": 1, "url": "http://two.example.test/page/2"},
            {"session": 2, "url": "http://three.example.test/page/3"},
            {"session": 0, "url": "http://one.example.test/page/4"},
        ],
    });
    let results = probe(&host, "pooled", input).await;
    assert!(results.iter().all(|r| r["status"] == 200), "{results:?}");
    let uris = |p: &TestProxy| p.seen().into_iter().map(|s| s.uri).collect::<Vec<_>>();
    assert_eq!(
        uris(&a),
        ["http://one.example.test/page/1", "http://three.example.test/page/3", "http://one.example.test/page/4"]
    );
    assert_eq!(uris(&b), ["http://two.example.test/page/2"], "a session keeps the proxy it was given");

    // The caller binds a proxy to one task through its input (fetch-title's `proxy`).
    let bound = format!("allowed_hosts = [\"http://*.example.test\", \"http://127.0.0.1:{}\"]\n", port(&b.base));
    host.upload_with("fetch-title", "fetch-title", &bound).await;
    let (status, body) =
        host.run("fetch-title", &json!({"url": "http://x.example.test/page/5", "proxy": b.base})).await;
    assert_eq!((status, body), (200, json!({"status": 200, "title": "Page 5"})));
    assert_eq!(uris(&b).last().map(String::as_str), Some("http://x.example.test/page/5"));

    let dead =
        format!("allowed_hosts = [\"http://*.example.test\"]\nproxies = [\"http://127.0.0.1:{}\"]\n", closed_port());
    host.upload_with("dead", "http-probe", &dead).await;
    let results = probe(&host, "dead", json!({"steps": [{"url": "http://one.example.test/page/1"}]})).await;
    assert_eq!(kind(&results[0]), "proxy", "an unreachable proxy is a proxy error: {results:?}");
}

#[tokio::test]
async fn private_addresses_need_a_grant_that_names_them() {
    let host = Host::start().await;
    let target = Target::start().await;
    let by_name = format!("allowed_hosts = [\"http://localhost:*\", \"http://127.0.0.1:{}\"]\n", port(&target.base));
    host.upload_with("by-name", "http-probe", &by_name).await;
    host.upload_with("anything", "http-probe", "allowed_hosts = [\"http://*:*\"]\n").await;

    let via_name = format!("http://localhost:{}/page/1", port(&target.base));
    let results = probe(&host, "by-name", json!({"steps": [{"url": via_name}, {"url": target.url("/page/2")}]})).await;
    assert_eq!(kind(&results[0]), "denied", "an allowed name that resolves to loopback is refused: {results:?}");
    assert!(message(&results[0]).contains("localhost resolves to"), "{results:?}");
    assert!(message(&results[0]).contains("private address"), "{results:?}");
    assert_eq!(results[1]["status"], 200, "the address itself was granted: {results:?}");

    let results = probe(
        &host,
        "anything",
        json!({"steps": [{"url": target.url("/page/3")}, {"url": "http://169.254.169.254/latest/meta-data/"}]}),
    )
    .await;
    assert_eq!(kind(&results[0]), "denied", "a wildcard never grants a private address: {results:?}");
    assert_eq!(kind(&results[1]), "denied", "nor the metadata service: {results:?}");
    assert_eq!(target.requests.load(Ordering::Relaxed), 1, "only the granted request arrived");
}

#[tokio::test]
async fn every_redirect_hop_is_checked_against_the_grants() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
    let elsewhere = format!("http://localhost:{}/page/1", port(&target.base));
    let steps = json!([
        {"url": target.url(&format!("/redirect-to?url={elsewhere}"))},
        {"url": target.url("/redirect-to?url=/page/2")},
    ]);
    let results = probe(&host, "probe", json!({ "steps": steps })).await;
    assert_eq!(kind(&results[0]), "denied", "{results:?}");
    assert!(message(&results[0]).contains("localhost"), "the refusal names the hop's host: {results:?}");
    assert_eq!(results[1]["status"], 200);
    assert_eq!(results[1]["url"], target.url("/page/2"));
}

#[tokio::test]
async fn a_redirect_chain_longer_than_outbound_max_redirects_is_refused() {
    let target = Target::start().await;
    for (config, limit) in [("[outbound]\nmax_redirects = 3\n", 3), ("", 10)] {
        let host = start_with_config(config).await;
        host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
        let (within, beyond) = (format!("within-{limit}"), format!("beyond-{limit}"));
        let steps = json!([
            {"url": target.url(&format!("/hops/{within}/{limit}"))},
            {"url": target.url(&format!("/hops/{beyond}/{}", limit + 1))},
        ]);
        let results = probe(&host, "probe", json!({ "steps": steps })).await;
        assert_eq!(results[0]["status"], 200, "{limit} redirects are within the limit: {results:?}");
        assert_eq!(results[0]["url"], target.url(&format!("/hops/{within}/0")));
        assert_eq!(results[0]["body"], "<title>landed</title>");
        assert_eq!(kind(&results[1]), "too_many_redirects", "{results:?}");
        assert_eq!(message(&results[1]), format!("more than {limit} redirects"), "{results:?}");
        assert_eq!(target.pressure.arrivals(&within).len(), limit + 1, "the first hop and {limit} redirects");
        assert_eq!(target.pressure.arrivals(&beyond).len(), limit + 1, "the hop past the limit is never requested");
    }
}

/// Runs a crawl in each of two plugins at once and returns both task ids.
async fn crawl_from_two_plugins(host: &Host, urls: &[String], concurrency: u32) -> [String; 2] {
    host.upload_with("crawler-a", "crawler", LOCAL_MANIFEST).await;
    host.upload_with("crawler-b", "crawler", LOCAL_MANIFEST).await;
    let input = json!({"urls": urls, "concurrency": concurrency});
    let (a, b) = tokio::join!(host.submit("crawler-a", &input), host.submit("crawler-b", &input));
    for id in [&a, &b] {
        let task = host.wait(id, 60).await;
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(task["output"]["fetched"], urls.len(), "{task}");
    }
    [a, b]
}

#[tokio::test]
async fn the_per_host_concurrency_cap_holds_across_plugins_and_shows_in_events() {
    let host = start_with_config("[outbound.politeness]\nmax_concurrent_per_host = 3\n").await;
    let target = Target::start().await;
    let urls: Vec<String> = (0..24).map(|_| target.url("/concurrent/shared?ms=150")).collect();
    let [a, _] = crawl_from_two_plugins(&host, &urls, 24).await;

    assert_eq!(target.pressure.arrivals("shared").len(), 48);
    assert_eq!(
        target.pressure.max_in_flight("shared"),
        3,
        "the target never saw more than the cap, and the cap was used"
    );
    let events = host.events(&a).await;
    let waits: Vec<&str> =
        events.iter().filter_map(|(_, e)| e["message"].as_str()).filter(|m| m.starts_with("politeness:")).collect();
    assert!(!waits.is_empty(), "the wait shows in the task's events: {events:?}");
    assert!(waits[0].contains("127.0.0.1") && waits[0].contains("3 at once"), "{waits:?}");
}

#[tokio::test]
async fn the_per_host_rate_cap_holds_across_plugins() {
    let host = start_with_config("[outbound.politeness]\nrequests_per_second = 20.0\n").await;
    let target = Target::start().await;
    let urls: Vec<String> = (0..10).map(|_| target.url("/concurrent/paced")).collect();
    crawl_from_two_plugins(&host, &urls, 10).await;

    let mut arrivals = target.pressure.arrivals("paced");
    arrivals.sort();
    assert_eq!(arrivals.len(), 20);
    // 20 requests at 20/s with a burst of 1: one every 50 ms. Transit can only shift a
    // request a little; any five consecutive intervals still span well over 200 ms.
    for window in arrivals.windows(6) {
        let span = window[5] - window[0];
        assert!(span >= Duration::from_millis(200), "6 requests arrived within {span:?}");
    }
    let total = arrivals[19] - arrivals[0];
    assert!(total >= Duration::from_millis(850), "20 requests took only {total:?} at 20/s");
}

#[tokio::test]
async fn waiting_for_politeness_does_not_count_against_a_request_timeout() {
    let host = start_with_config("[outbound.politeness]\nrequests_per_second = 4.0\n").await;
    let target = Target::start().await;
    host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
    let requests: Vec<Value> =
        (0..8).map(|_| json!({"url": target.url("/concurrent/patient"), "timeout_ms": 500})).collect();
    let results = probe(&host, "probe", json!({"steps": [{"fetch_all": requests, "concurrency": 8}]})).await;
    for result in results[0].as_array().unwrap() {
        assert_eq!(result["status"], 200, "the last request waited 1.75 s for its turn, then had its 500 ms: {result}");
    }
    let arrivals = target.pressure.arrivals("patient");
    assert!(arrivals[7] - arrivals[0] >= Duration::from_millis(1_500), "{:?}", arrivals[7] - arrivals[0]);
}

#[tokio::test]
async fn plugin_politeness_adds_to_the_hosts() {
    let host = Host::start().await;
    let target = Target::start().await;
    let manifest = format!("{LOCAL_MANIFEST}[politeness]\nmax_concurrent_per_host = 2\n");
    host.upload_with("gentle", "crawler", &manifest).await;
    let urls: Vec<String> = (0..12).map(|_| target.url("/concurrent/gentle?ms=100")).collect();
    let (status, body) = host.run("gentle", &json!({"urls": urls, "concurrency": 12})).await;
    assert_eq!((status, &body["fetched"]), (200, &json!(12)), "{body}");
    assert_eq!(target.pressure.max_in_flight("gentle"), 2, "the plugin's own cap (2) is below the host's (8)");
}

#[tokio::test]
async fn cookies_follow_their_session_and_never_cross_sessions() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
    let steps = json!([
        {"session": 0, "url": target.url("/set-cookie?name=a&value=1")},
        {"session": 0, "url": target.url("/set-cookie?name=p&value=2&path=/private")},
        {"session": 0, "url": target.url("/cookies")},
        {"session": 0, "url": target.url("/private/cookies")},
        {"session": 1, "url": target.url("/cookies")},
        {"url": target.url("/cookies")},
        {"session": 1, "fetch_all": [{"url": target.url("/set-cookie?name=b&value=3")}]},
        {"session": 1, "url": target.url("/cookies")},
        {"session": 0, "url": target.url("/cookies")},
    ]);
    let results = probe(&host, "probe", json!({"sessions": [{}, {}], "steps": steps})).await;
    let body = |i: usize| results[i]["body"].as_str().unwrap_or_else(|| panic!("step {i}: {results:?}")).to_owned();
    assert_eq!(body(2), "a=1", "the cookie set by one response is sent on the next; the path rule keeps p out");
    assert!(body(3).contains("a=1") && body(3).contains("p=2"), "{}", body(3));
    assert_eq!(body(4), "", "another session has no cookies");
    assert_eq!(body(5), "", "a request outside sessions has no cookies");
    assert_eq!(body(7), "b=3", "a session's fetch-all keeps cookies in that session");
    assert_eq!(body(8), "a=1");

    // Another task of the same plugin starts with empty jars.
    let results =
        probe(&host, "probe", json!({"sessions": [{}], "steps": [{"session": 0, "url": target.url("/cookies")}]}))
            .await;
    assert_eq!(results[0]["body"], "");
}

#[tokio::test]
async fn retries_back_off_until_the_target_recovers() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
    let retry = json!({"attempts": 3, "initial_ms": 200, "max_ms": 2000});
    let quick = json!({"attempts": 3, "initial_ms": 10});
    let steps = json!([
        {"url": target.url("/flaky/a?fail=2"), "retry": retry},
        {"url": target.url("/flaky/b?fail=2")},
        {"url": target.url("/flaky/c?fail=5"), "retry": quick},
        {"method": "POST", "url": target.url("/flaky/d?fail=1"), "retry": quick},
        {"method": "POST", "url": target.url("/flaky/e?fail=1"), "retry": {"attempts": 3, "initial_ms": 10, "any_method": true}},
        {"session": 0, "url": target.url("/flaky/f?fail=1")},
        {"url": format!("http://127.0.0.1:{}/", closed_port()), "retry": {"attempts": 2, "initial_ms": 10}},
    ]);
    let input = json!({"sessions": [{"retry": {"attempts": 2, "initial_ms": 10}}], "steps": steps});
    let id = host.submit("probe", &input).await;
    let task = host.wait(&id, 60).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let results = task["output"]["results"].as_array().unwrap().clone();

    assert_eq!(
        (results[0]["status"].as_u64(), results[0]["body"].as_str()),
        (Some(200), Some("<title>recovered after 2</title>"))
    );
    let hits = target.pressure.arrivals("a");
    assert_eq!(hits.len(), 3);
    // Backoff 200 ms then 400 ms, each drawn from its upper half.
    assert!(hits[1] - hits[0] >= Duration::from_millis(100), "{:?}", hits[1] - hits[0]);
    assert!(hits[2] - hits[1] >= Duration::from_millis(200), "{:?}", hits[2] - hits[1]);

    assert_eq!(results[1]["status"], 503, "no policy, no retry");
    assert_eq!(target.pressure.arrivals("b").len(), 1);
    assert_eq!(results[2]["status"], 503, "the last answer stands when the tries run out");
    assert_eq!(target.pressure.arrivals("c").len(), 3);
    assert_eq!(results[3]["status"], 503, "POST is not retried unless asked");
    assert_eq!(target.pressure.arrivals("d").len(), 1);
    assert_eq!(results[4]["status"], 200);
    assert_eq!(target.pressure.arrivals("e").len(), 2);
    assert_eq!(results[5]["status"], 200, "the session's policy applies to its requests");
    assert_eq!(kind(&results[6]), "connect", "{results:?}");

    let events = host.events(&id).await;
    let retries =
        events.iter().filter(|(_, e)| e["message"].as_str().is_some_and(|m| m.starts_with("retrying "))).count();
    assert_eq!(retries, 2 + 2 + 1 + 1 + 1, "each retry shows in the task's events");
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_maximum_backoff() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
    let retry = json!({"attempts": 2, "initial_ms": 10, "max_ms": 5000});
    let steps = json!([
        {"url": target.url("/flaky/soon?fail=1&status=429&retry_after=1"), "retry": retry},
        {"url": target.url("/flaky/late?fail=1&status=503&retry_after=30"), "retry": retry},
    ]);
    let results = probe(&host, "probe", json!({ "steps": steps })).await;
    assert_eq!(results[0]["status"], 200, "{results:?}");
    let hits = target.pressure.arrivals("soon");
    assert!(hits[1] - hits[0] >= Duration::from_millis(950), "waited only {:?} for Retry-After: 1", hits[1] - hits[0]);
    assert_eq!(results[1]["status"], 503, "a Retry-After beyond the policy's patience ends the retries");
    assert_eq!(target.pressure.arrivals("late").len(), 1);
}

#[tokio::test]
async fn a_response_over_the_cap_is_refused_while_streaming() {
    let host = start_with_config("[outbound]\nmax_response_mb = 1\n").await;
    let target = Target::start().await;
    host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
    probe(&host, "probe", json!({"steps": [{"url": target.url("/page/1")}]})).await;
    let before = host.peak_rss_bytes();

    let fifty_mb: Vec<Value> = (0..4).map(|_| json!({"url": target.url("/stream/50")})).collect();
    let results = probe(&host, "probe", json!({"steps": [{"fetch_all": fifty_mb, "concurrency": 4}]})).await;
    for result in results[0].as_array().unwrap() {
        assert_eq!(kind(result), "too_large", "{result}");
        assert!(message(result).contains("1048576"), "{result}");
    }
    // Buffered whole, the four would take 200 MB; streamed under the cap, a few MiB of
    // buffers, plus what the allocator keeps cached on each thread that touched them.
    let grown = host.peak_rss_bytes().saturating_sub(before);
    assert!(grown < 48 << 20, "four 50 MB responses grew the host's peak memory by {} MiB", grown >> 20);
}

#[tokio::test]
async fn decompressed_bytes_count_and_a_gzip_bomb_is_refused() {
    let host = start_with_config("[outbound]\nmax_response_mb = 1\n").await;
    let target = Target::start().await;
    host.upload_with("probe", "http-probe", LOCAL_MANIFEST).await;
    let steps = json!([{"url": target.url("/gzip/512")}, {"url": target.url("/gzip/65536")}]);
    let results = probe(&host, "probe", json!({ "steps": steps })).await;
    assert_eq!(
        (results[0]["status"].as_u64(), results[0]["body_len"].as_u64()),
        (Some(200), Some(512 * 1024)),
        "{results:?}"
    );
    assert_eq!(kind(&results[1]), "too_large", "64 MiB from a few KiB on the wire: {results:?}");

    // A manifest may lower the host's cap for its plugin, never raise it.
    host.upload_with("small", "http-probe", &format!("{LOCAL_MANIFEST}max_response_bytes = \"100KiB\"\n")).await;
    let results = probe(&host, "small", json!({"steps": [{"url": target.url("/gzip/512")}]})).await;
    assert_eq!(kind(&results[0]), "too_large");
    assert!(message(&results[0]).contains("102400"), "{results:?}");
    let refused =
        host.upload_form("big", ignareo_e2e::plugin_bytes("http-probe"), Some("max_response_bytes = \"2MiB\"\n")).await;
    assert_eq!(refused.status(), 400);
}
