//! HTTPS through the host's outbound client, against a local TLS target whose certificate an
//! authority made at test time signed: trusted once `outbound.ca_certificates` names that
//! authority, refused on the certificate otherwise, directly and through a CONNECT proxy.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::sync::atomic::Ordering;

use ignareo_e2e::proxy::{PINNED_NAMES, TestProxy};
use ignareo_e2e::target::Target;
use ignareo_e2e::tls::{TLS_NAME, TestCa};
use ignareo_e2e::{Host, TOKEN, TempDir, refused_start};
use serde_json::{Value, json};

/// Plugins may reach the TLS target by its address (127.0.0.1 is private: only a grant that
/// names it does).
const HTTPS_LOCAL: &str = "allowed_hosts = [\"https://127.0.0.1:*\"]\n";

/// A host trusting `ca` beside the built-in roots, with its certificate written into `dir`.
async fn host_trusting(ca: &TestCa, dir: &TempDir) -> Host {
    let file = dir.write("ca.pem", &ca.pem);
    let config = format!("[outbound]\nca_certificates = [{:?}]\n{PINNED_NAMES}", file.to_str().unwrap());
    Host::start_with_config(&config, &[]).await
}

/// Runs `http-probe` (uploaded as `plugin`) on `steps`: the results.
async fn probe(host: &Host, plugin: &str, steps: Value) -> Vec<Value> {
    let (status, body) = host.run(plugin, &json!({ "steps": steps })).await;
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

fn port(base: &str) -> u16 {
    base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap()
}

#[tokio::test]
async fn a_local_tls_target_is_reached_once_its_authority_is_configured() {
    let ca = TestCa::new();
    let target = Target::start_tls(&ca).await;
    assert!(target.base.starts_with("https://127.0.0.1:"), "{}", target.base);
    let certificates = TempDir::new("certs");
    let host = host_trusting(&ca, &certificates).await;
    let configured = host.get_json("/v1/config").await["outbound"]["ca_certificates"].clone();
    assert_eq!(configured, json!([certificates.join("ca.pem")]), "the configuration in effect names the file");

    host.upload_with("probe", "http-probe", HTTPS_LOCAL).await;
    let results = probe(&host, "probe", json!([{"url": target.url("/page/3")}])).await;
    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert!(results[0]["body"].as_str().unwrap().contains("<title>Page 3</title>"), "{results:?}");

    host.upload_with("fetch-title", "fetch-title", HTTPS_LOCAL).await;
    let answer = host.run("fetch-title", &json!({"url": target.url("/page/4")})).await;
    assert_eq!(answer, (200, json!({"status": 200, "title": "Page 4"})));
    assert_eq!(target.requests.load(Ordering::Relaxed), 2);
    assert_eq!(target.failed_handshakes.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn without_its_authority_the_same_fetch_fails_on_the_certificate() {
    let ca = TestCa::new();
    let target = Target::start_tls(&ca).await;
    let another = TestCa::new();
    let certificates = TempDir::new("certs");
    // No extra authority, then one that did not sign the target's certificate.
    for host in [Host::start().await, host_trusting(&another, &certificates).await] {
        host.upload_with("probe", "http-probe", HTTPS_LOCAL).await;
        let results = probe(&host, "probe", json!([{"url": target.url("/page/3")}])).await;
        assert_eq!(results[0]["error"]["kind"], "connect", "{results:?}");
        let message = results[0]["error"]["message"].as_str().unwrap();
        assert!(message.contains("invalid peer certificate: UnknownIssuer"), "{message}");
    }
    assert_eq!(target.requests.load(Ordering::Relaxed), 0, "no request got through");
    assert_eq!(target.failed_handshakes.load(Ordering::Relaxed), 2, "each client reached the target and refused it");
}

#[tokio::test]
async fn https_goes_through_a_connect_proxy() {
    let ca = TestCa::new();
    let target = Target::start_tls(&ca).await;
    let certificates = TempDir::new("certs");
    let host = host_trusting(&ca, &certificates).await;
    let proxy = TestProxy::start(&target.base, None).await;
    let manifest =
        format!("allowed_hosts = [\"https://*.example.test\", \"http://127.0.0.1:{}\"]\n", port(&proxy.base));
    host.upload_with("probe", "http-probe", &manifest).await;

    // The name resolves nowhere but in the host's pinned names: only the tunnel can carry the
    // request to the target.
    let url = format!("https://{TLS_NAME}/page/5");
    let results = probe(&host, "probe", json!([{"url": url, "proxy": proxy.base}])).await;
    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert_eq!(results[0]["url"], url);
    assert!(results[0]["body"].as_str().unwrap().contains("<title>Page 5</title>"), "{results:?}");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].method.as_str(), seen[0].uri.as_str()), ("CONNECT", "secure.example.test:443"));
    assert_eq!(target.requests.load(Ordering::Relaxed), 1);

    // A proxy from the manifest's pool tunnels the same way, for the stable plugins too.
    let pooled = format!("allowed_hosts = [\"https://*.example.test\"]\nproxies = [\"{}\"]\n", proxy.base);
    host.upload_with("fetch-title", "fetch-title", &pooled).await;
    let answer = host.run("fetch-title", &json!({"url": format!("https://{TLS_NAME}/page/6")})).await;
    assert_eq!(answer, (200, json!({"status": 200, "title": "Page 6"})));
    assert_eq!(proxy.seen().len(), 2);
    assert_eq!(proxy.seen()[1].method, "CONNECT");

    // Through the tunnel, the destination's certificate is checked all the same.
    let untrusting = Host::start_with_config(PINNED_NAMES, &[]).await;
    untrusting.upload_with("probe", "http-probe", &manifest).await;
    let results = probe(&untrusting, "probe", json!([{"url": url, "proxy": proxy.base}])).await;
    let message = results[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid peer certificate: UnknownIssuer"), "{results:?}");
    assert_eq!(target.requests.load(Ordering::Relaxed), 2, "the untrusted target got no request");

    // A tunnel the proxy refuses (407) is the proxy's error.
    let guarded = TestProxy::start(&target.base, Some(("bob", "s3cret"))).await;
    let manifest =
        format!("allowed_hosts = [\"https://*.example.test\", \"http://127.0.0.1:{}\"]\n", port(&guarded.base));
    host.upload_with("guarded", "http-probe", &manifest).await;
    let results = probe(&host, "guarded", json!([{"url": url, "proxy": guarded.url_with("bob", "wrong")}])).await;
    assert_eq!(results[0]["error"]["kind"], "proxy", "{results:?}");
    let results = probe(&host, "guarded", json!([{"url": url, "proxy": guarded.url_with("bob", "s3cret")}])).await;
    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert_eq!(guarded.seen()[1].proxy_authorization.as_deref(), Some("Basic Ym9iOnMzY3JldA=="));
}

#[tokio::test]
async fn unreadable_or_empty_authority_files_are_refused_at_start() {
    let dir = TempDir::new("certs");
    let missing = dir.join("missing.pem");
    let not_pem = dir.write("not.pem", "this is not a certificate\n");
    for (file, says) in [(&missing, "cannot read"), (&not_pem, "no PEM certificate")] {
        let config =
            dir.write("config.toml", format!("[outbound]\nca_certificates = [{:?}]\n", file.to_str().unwrap()));
        let data_dir = TempDir::new("refused");
        let stderr = refused_start(
            data_dir.path(),
            &["--listen", "127.0.0.1:0", "--token", TOKEN, "--config", config.to_str().unwrap()],
            &[],
        )
        .await;
        assert!(
            stderr.contains("outbound.ca_certificates")
                && stderr.contains(file.to_str().unwrap())
                && stderr.contains(says),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_certificate_refused_through_a_tunnel_is_the_destinations_error_not_the_proxys() {
    let target = Target::start_tls(&TestCa::new()).await;
    let proxy = TestProxy::start(&target.base, None).await;
    let host = Host::start_with_config(PINNED_NAMES, &[]).await;
    let manifest =
        format!("allowed_hosts = [\"https://*.example.test\", \"http://127.0.0.1:{}\"]\n", port(&proxy.base));
    host.upload_with("probe", "http-probe", &manifest).await;
    let url = format!("https://{TLS_NAME}/page/5");
    let results = probe(&host, "probe", json!([{"url": url, "proxy": proxy.base}])).await;
    assert_eq!(proxy.seen()[0].method, "CONNECT", "the proxy opened the tunnel");
    // The proxy did its part; the destination's certificate failed, as it does without a
    // proxy: the guest must not be sent to debug its proxy.
    assert_eq!(results[0]["error"]["kind"], "connect", "{results:?}");
}
