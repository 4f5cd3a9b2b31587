//! Connections held as an attacker holds them: many idle ones from one address, silent ones,
//! every slot busy. Other addresses, `/healthz` and callers with a token are answered all the
//! same, and whoever is refused is told why.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ignareo_e2e::{Host, TOKEN, read_until_closed};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longest wait for an answer or a close that must come: far above what either takes.
const PATIENCE: Duration = Duration::from_secs(10);

/// A request as a raw connection sends it.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// A raw connection to the host from 127.0.0.`last` (Linux routes all of 127/8 to loopback).
async fn connect_from(host: &Host, last: u8) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
    socket.connect(host.base.trim_start_matches("http://").parse().unwrap()).await.unwrap()
}

/// An HTTP client whose connections come from 127.0.0.`last`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, last])).no_proxy().build().unwrap()
}

/// `/healthz` and an authenticated request from 127.0.0.`last`, each answered within [`PATIENCE`].
async fn served_from(host: &Host, last: u8) {
    let client = client_from(last);
    let health = tokio::time::timeout(PATIENCE, client.get(host.url("/healthz")).send())
        .await
        .expect("/healthz is answered, not left waiting")
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let plugins = tokio::time::timeout(PATIENCE, client.get(host.url("/v1/plugins")).bearer_auth(TOKEN).send())
        .await
        .expect("a caller with a token is answered, not left waiting")
        .unwrap();
    assert_eq!(plugins.status(), StatusCode::OK);
}

#[tokio::test]
async fn idle_connections_cannot_keep_healthz_or_callers_with_a_token_out() {
    let host = Host::start_with_config(
        "[http]\nmax_connections = 8\nmax_connections_per_address = 4\nfirst_request_timeout_secs = 60\n",
        &[],
    )
    .await;
    // The attacker fills every slot with connections that send nothing: its share from
    // 127.0.0.1, the rest from 127.0.0.3.
    let mut held = Vec::new();
    for last in [1, 1, 1, 1, 3, 3, 3, 3] {
        held.push(connect_from(&host, last).await);
    }
    // Beyond its share, an address's requests are told so and their connections closed.
    for _ in 0..4 {
        let mut extra = connect_from(&host, 1).await;
        extra.write_all(HEALTHZ).await.unwrap();
        let answer = read_until_closed(&mut extra, PATIENCE).await.expect("a connection over the share is closed");
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "too_many_connections");
        assert!(body["error"]["message"].as_str().unwrap().contains("http.max_connections_per_address"), "{body}");
    }
    // An HTTP client reads that answer like any other.
    let refused = client_from(1).get(host.url("/healthz")).send().await.expect("an answer, not a broken connection");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    // Another address is served at once: it takes the place of an idle connection.
    served_from(&host, 2).await;
    let closes = held.iter_mut().map(|stream| read_until_closed(stream, Duration::from_secs(2)));
    let closed = futures::future::join_all(closes).await.into_iter().flatten().count();
    assert!(closed >= 1, "an idle connection gave up its slot");
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_first_request_timeout() {
    let host = Host::start_with_config("[http]\nfirst_request_timeout_secs = 1\n", &[]).await;
    let mut silent = connect_from(&host, 1).await;
    let mut talking = connect_from(&host, 1).await;
    talking.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let said = read_until_closed(&mut silent, PATIENCE).await.expect("a silent connection is closed");
    assert!(said.is_empty(), "{said}");
    // A connection that asked is kept alive past the timeout, under http.header_timeout_secs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    talking.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let answers = read_until_closed(&mut talking, PATIENCE).await.expect("both answered, then closed");
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers}");
}

#[tokio::test]
async fn a_host_whose_connections_are_all_busy_answers_503_and_serves_again_when_one_ends() {
    let host = Host::start_with_config("[http]\nmax_connections = 2\n", &[]).await;
    // Two requests in progress: the host asked for their bodies (100 Continue), which do not come.
    let mut busy = Vec::new();
    for last in [1, 3] {
        let mut stream = connect_from(&host, last).await;
        let head = format!(
            "POST /v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut interim = vec![0u8; b"HTTP/1.1 100 Continue\r\n\r\n".len()];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut interim)).await.unwrap().unwrap();
        assert!(interim.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&interim));
        busy.push(stream);
    }
    let mut newcomer = connect_from(&host, 2).await;
    newcomer.write_all(HEALTHZ).await.unwrap();
    let answer = read_until_closed(&mut newcomer, PATIENCE).await.expect("answered and closed, not left waiting");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "connection_limit");
    assert!(body["error"]["message"].as_str().unwrap().contains("http.max_connections"), "{body}");
    drop(busy.pop());
    let mut served = false;
    for _ in 0..50 {
        if matches!(client_from(2).get(host.url("/healthz")).send().await, Ok(r) if r.status() == StatusCode::OK) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "served once a busy connection ended");
}
