//! `ignareo chaos-proxy` on its own: the faults it injects, measured from a client's side
//! against a local target, its forward and tunnel modes, the live control endpoint, and its
//! refusals of bad parameters.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::{Duration, Instant};

use futures::StreamExt;
use ignareo_e2e::target::Target;
use ignareo_e2e::{ChaosProxy, TempDir};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that opens a new link for every request.
fn fresh_links() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).no_proxy().build().unwrap()
}

async fn stats(chaos: &ChaosProxy) -> Value {
    reqwest::get(chaos.url("/_chaos/stats")).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn bad_parameters_are_refused_at_start_naming_the_flag() {
    for (args, flag) in [
        (&["--jitter-prob", "1.5", "--jitter-min", "1", "--jitter-max", "2"][..], "--jitter-prob"),
        (&["--reset-enable", "--reset-prob", "-0.5"][..], "--reset-prob"),
        (&["--latency-min", "500", "--latency-max", "100"][..], "--latency-min"),
        (&["--speed-min", "900", "--speed-max", "100"][..], "--speed-min"),
        (&["--latency", "-5"][..], "--latency"),
        (&["--speed", "lots"][..], "--speed"),
        (&["--reset-enable"][..], "--reset-prob"),
        (&["--latency", "10", "--latency-min", "5", "--latency-max", "20"][..], "--latency"),
        (&["--upstream", "ftp://127.0.0.1:21"][..], "--upstream"),
    ] {
        let (code, stderr) = ChaosProxy::refusal(args).await;
        assert_ne!(code, Some(0), "{args:?} was accepted");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    let dir = TempDir::new("chaos");
    dir.write("chaos.toml", "latancy = 5\n");
    let (code, stderr) = ChaosProxy::refusal(&["--config", &dir.arg("chaos.toml")]).await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("latancy"), "{stderr}");
}

#[tokio::test]
async fn first_byte_latency_falls_within_the_range() {
    let target = Target::start().await;
    let chaos =
        ChaosProxy::start(&["--upstream", &target.base, "--latency-min", "100", "--latency-max", "200", "--seed", "1"])
            .await;
    let client = fresh_links();
    let mut delays = Vec::new();
    for i in 0..12 {
        let started = Instant::now();
        let response = client.get(chaos.url(&format!("/page/{i}"))).send().await.unwrap();
        delays.push(started.elapsed());
        assert!(response.text().await.unwrap().contains(&format!("<title>Page {i}</title>")));
    }
    for delay in &delays {
        assert!(*delay >= Duration::from_millis(100), "{delays:?}");
        // The upper bound leaves room for a busy machine; the draw itself is at most 200 ms.
        assert!(*delay < Duration::from_millis(600), "{delays:?}");
    }
    let spread = delays.iter().max().unwrap().saturating_sub(*delays.iter().min().unwrap());
    assert!(spread >= Duration::from_millis(10), "latencies are drawn, not fixed: {delays:?}");
}

#[tokio::test]
async fn the_speed_limit_is_the_total_of_all_links() {
    let target = Target::start().await;
    let chaos = ChaosProxy::start(&["--upstream", &target.base, "--speed", "1000000"]).await;
    let client = fresh_links();
    let started = Instant::now();
    let downloads =
        (0..4).map(|_| async { client.get(chaos.url("/big/512")).send().await.unwrap().bytes().await.unwrap().len() });
    let bytes: usize = futures::future::join_all(downloads).await.into_iter().sum();
    let elapsed = started.elapsed().as_secs_f64();
    let rate = bytes as f64 / elapsed;
    assert!(bytes >= 4 * 512 * 1024);
    assert!(
        (850_000.0..=1_150_000.0).contains(&rate),
        "{bytes} bytes in {elapsed:.2} s: {rate:.0} B/s for --speed 1000000"
    );
}

#[tokio::test]
async fn resets_cut_links_with_the_configured_probability() {
    let target = Target::start().await;
    let chaos =
        ChaosProxy::start(&["--upstream", &target.base, "--reset-enable", "--reset-prob", "0.3", "--seed", "42"]).await;
    let client = fresh_links();
    let mut failed = 0;
    for i in 0..300 {
        let outcome = match client.get(chaos.url(&format!("/page/{i}"))).send().await {
            Ok(response) => response.text().await.map(|body| body.contains("</html>")),
            Err(e) => Err(e),
        };
        if !matches!(outcome, Ok(true)) {
            failed += 1;
        }
    }
    // 300 links at p = 0.3: 90 expected, standard deviation ≈ 8.
    assert!((50..=130).contains(&failed), "{failed} of 300 links were cut");
    assert_eq!(stats(&chaos).await["resets"], failed, "every cut link failed its request, and only those");
}

#[tokio::test]
async fn jitter_holds_pieces_back() {
    let target = Target::start().await;
    let chaos = ChaosProxy::start(&[
        "--upstream",
        &target.base,
        "--jitter-prob",
        "1",
        "--jitter-min",
        "150",
        "--jitter-max",
        "150",
    ])
    .await;
    let response = fresh_links().get(chaos.url("/big/64")).send().await.unwrap();
    let mut body = response.bytes_stream();
    let mut arrivals = Vec::new();
    let mut bytes = 0;
    while let Some(chunk) = body.next().await {
        bytes += chunk.unwrap().len();
        arrivals.push(Instant::now());
    }
    assert!(bytes >= 64 * 1024);
    let jitters = stats(&chaos).await["jitters"].as_u64().unwrap();
    assert!(jitters >= 2, "{jitters}");
    let widest = arrivals.windows(2).map(|w| w[1] - w[0]).max().expect("several pieces");
    assert!(widest >= Duration::from_millis(140), "the widest gap between pieces was {widest:?}");
}

#[tokio::test]
async fn it_forwards_absolute_form_requests_and_tunnels_connect() {
    let target = Target::start().await;
    let chaos = ChaosProxy::start(&[]).await;
    let through = reqwest::Client::builder().proxy(reqwest::Proxy::http(&chaos.base).unwrap()).build().unwrap();
    let page = through.get(target.url("/page/5")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<title>Page 5</title>"));

    let address = chaos.base.trim_start_matches("http://");
    let mut tunnel = tokio::net::TcpStream::connect(address).await.unwrap();
    let destination = target.base.trim_start_matches("http://");
    tunnel
        .write_all(format!("CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tunnel.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    // Whatever speaks through the tunnel (TLS in real use) reaches the destination as is.
    tunnel.write_all(b"GET /page/6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tunnel.read_to_string(&mut answer).await.unwrap();
    assert!(answer.contains("<title>Page 6</title>"), "{answer}");

    let direct = reqwest::get(chaos.url("/page/7")).await.unwrap();
    assert_eq!(direct.status(), 400, "origin-form requests need --upstream");
    assert!(direct.text().await.unwrap().contains("--upstream"));
    assert_eq!(stats(&chaos).await["links"], 2);
}

#[tokio::test]
async fn the_weather_changes_live_and_stats_count_it() {
    let target = Target::start().await;
    let chaos = ChaosProxy::start(&["--upstream", &target.base]).await;
    let control = reqwest::Client::new();
    let config: Value = control.get(chaos.url("/_chaos/config")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["latency-max"], 0);

    let changed = control.put(chaos.url("/_chaos/config")).json(&json!({"latency": 300})).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.json::<Value>().await.unwrap()["latency-min"], 300);
    let started = Instant::now();
    fresh_links().get(chaos.url("/page/1")).send().await.unwrap().text().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300), "the new latency applies to the next link");

    for (body, named) in [
        (json!({"jitter-prob": 2.0, "jitter-min": 1, "jitter-max": 2}), "--jitter-prob"),
        (json!({"latancy": 1}), "latancy"),
    ] {
        let refused = control.put(chaos.url("/_chaos/config")).json(&body).send().await.unwrap();
        assert_eq!(refused.status(), 400);
        let message = refused.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(named), "{message}");
    }
    let config: Value = control.get(chaos.url("/_chaos/config")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["latency-min"], 300, "a refused change changes nothing");

    let stats = stats(&chaos).await;
    assert_eq!(stats["links"], 1);
    assert!(stats["bytes_to_clients"].as_u64().unwrap() > 1000, "{stats}");
}

#[tokio::test]
async fn it_refuses_a_non_loopback_address_unless_told_to_allow_remote_clients() {
    let output = tokio::process::Command::new(ignareo_e2e::binary())
        .args(["chaos-proxy", "--listen", "0.0.0.0:0"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await.expect("it exits at once").unwrap();
    assert!(!output.status.success(), "an open proxy on every interface started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote") && stderr.contains("0.0.0.0"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));

    let dir = TempDir::new("chaos");
    dir.write("chaos.toml", "listen = \"0.0.0.0:0\"\n");
    let output = tokio::process::Command::new(ignareo_e2e::binary())
        .args(["chaos-proxy", "--config", &dir.arg("chaos.toml")])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await.expect("it exits at once").unwrap();
    assert!(!output.status.success(), "the file's address is checked too");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}

#[tokio::test]
async fn the_control_endpoint_requires_the_control_token() {
    let chaos = ChaosProxy::start(&["--control-token", "s3cret-token"]).await;
    let control = reqwest::Client::new();
    for token in [None, Some("wrong")] {
        let mut request = control.put(chaos.url("/_chaos/config")).json(&json!({"latency": 5000}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401, "token {token:?}");
        let body: Value = refused.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("--control-token"), "{body}");
    }
    assert_eq!(control.get(chaos.url("/_chaos/stats")).send().await.unwrap().status(), 401);
    let config: Value = control
        .get(chaos.url("/_chaos/config"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["latency-max"], 0, "the refused changes changed nothing");
}

#[tokio::test]
async fn silent_clients_are_closed_and_links_beyond_the_cap_refused() {
    let chaos = ChaosProxy::start(&["--head-timeout-secs", "1", "--max-connections", "2"]).await;
    let address = chaos.base.trim_start_matches("http://");
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut also_silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), third.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("--max-connections"), "{answer}");
    for stream in [&mut silent, &mut also_silent] {
        let mut said = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut said))
            .await
            .expect("a client that sends no head is closed")
            .unwrap();
        assert!(said.starts_with("HTTP/1.1 408") && said.contains("--head-timeout-secs"), "{said}");
    }
    let stats: Value = reqwest::get(chaos.url("/_chaos/stats")).await.unwrap().json().await.unwrap();
    assert_eq!(stats["over_capacity"], 1, "{stats}");
    assert_eq!(stats["head_timeouts"], 2, "{stats}");
}

#[tokio::test]
async fn an_upstream_that_never_accepts_gets_504_after_the_connect_timeout() {
    // A listener whose accept queue is full and never drained: the kernel drops further SYNs,
    // so connecting to it hangs as to a host that does not answer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let upstream = listener.local_addr().unwrap();
    let mut filling = Vec::new();
    for _ in 0..4 {
        let attempt = tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(upstream));
        match attempt.await {
            Ok(Ok(stream)) => filling.push(stream),
            _ => break,
        }
    }
    let chaos = ChaosProxy::start(&["--upstream", &format!("http://{upstream}"), "--connect-timeout-secs", "1"]).await;
    let response = tokio::time::timeout(Duration::from_secs(20), fresh_links().get(chaos.url("/page/1")).send())
        .await
        .expect("answered, not left waiting")
        .unwrap();
    assert_eq!(response.status(), 504);
    let body = response.text().await.unwrap();
    assert!(body.contains("--connect-timeout-secs") && body.contains(&upstream.to_string()), "{body}");
    drop(filling);
}
