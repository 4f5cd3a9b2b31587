//! Request hygiene: slow clients are cut off (head and body timeouts, idle keep-alive),
//! oversized heads get 431, small control bodies have their own limit, a body declared over
//! its limit is refused before it is sent. The connection limits have their own tests, in
//! `connections.rs`.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::{Duration, Instant};

use ignareo_e2e::{Host, TOKEN, read_until_closed};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(host: &Host) -> TcpStream {
    TcpStream::connect(host.base.trim_start_matches("http://")).await.unwrap()
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_cut_off_while_others_are_served() {
    let host = Host::start_with_config("[http]\nheader_timeout_secs = 1\n", &[]).await;

    // A head trickled a byte at a time never completes: the connection is closed.
    let mut slow = connect(&host).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let served = host.client.get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK, "other clients are served meanwhile");
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a trickled head must be cut off");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the head timeout");
    trickle.abort();

    // An idle keep-alive connection is closed too, after answering what it asked.
    let mut idle = connect(&host).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let answered = read_until_closed(&mut idle, Duration::from_secs(8)).await.expect("the idle connection is closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408() {
    let host = Host::start_with_config("[http]\nbody_idle_timeout_secs = 1\n", &[]).await;
    host.upload("hello", "hello").await;
    let mut stream = connect(&host).await;
    let head = format!(
        "POST /v1/plugins/hello/run HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"n\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await.expect("the host answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout");
    assert!(body["error"]["message"].as_str().unwrap().contains("http.body_idle_timeout_secs"));
}

#[tokio::test]
async fn oversized_heads_get_431_and_control_bodies_have_their_own_limit() {
    let host =
        Host::start_with_config("[http]\nmax_headers = 32\nmax_header_bytes = 4096\nmax_control_body_kb = 4\n", &[])
            .await;
    let mut many = host.client.get(host.url("/v1/plugins"));
    for i in 0..40 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let long = host.client.get(host.url("/v1/plugins")).header("x-filler", "a".repeat(8192)).send().await.unwrap();
    assert_eq!(long.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut fine = host.client.get(host.url("/v1/plugins"));
    for i in 0..20 {
        fine = fine.header(format!("x-filler-{i}"), "1");
    }
    assert_eq!(fine.send().await.unwrap().status(), StatusCode::OK);

    let big = format!("{{\"name\": \"{}\", \"scopes\": [\"read\"]}}", "n".repeat(8 * 1024));
    let response = host.client.post(host.url("/v1/tokens")).body(big).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("http.max_control_body_kb"), "{body}");
}

#[tokio::test]
async fn a_body_declared_over_its_limit_is_refused_before_it_is_sent() {
    let host = Host::start_with_config("[limits]\nmax_input_mb = 1\n", &[]).await;
    // The head declares 5 MiB and no byte of the body follows: the answer must not wait for it.
    let mut stream = connect(&host).await;
    let head = format!(
        "POST /v1/plugins/hello/run HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        5 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("an answer without the body, then a close");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large") && answer.contains("limits.max_input_mb"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");

    // A body within the limit is read as before.
    let fine = host.client.post(host.url("/v1/plugins/hello/run")).body(vec![b' '; 512 * 1024]).send().await.unwrap();
    assert_eq!(fine.status(), StatusCode::NOT_FOUND, "no plugin hello: the request reached the handler");
}

#[tokio::test]
async fn a_body_refused_unread_closes_its_connection_so_clients_do_not_reuse_it() {
    let host = Host::start().await;
    let unread = reqwest::Client::new()
        .put(host.url("/v1/plugins/Bad"))
        .bearer_auth(TOKEN)
        .body(vec![0u8; 256 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(unread.status(), StatusCode::BAD_REQUEST);
    assert_eq!(unread.headers()["connection"], "close");
    let read = host.client.post(host.url("/v1/tokens")).body("{not json").send().await.unwrap();
    assert_eq!(read.status(), StatusCode::BAD_REQUEST);
    assert!(read.headers().get("connection").is_none(), "a body read to its end keeps the connection");
    let bodiless = host.client.get(host.url("/v1/plugins")).send().await.unwrap();
    assert!(bodiless.headers().get("connection").is_none(), "a request without a body keeps the connection");
    // The shared client goes on working across many refusals.
    for _ in 0..20 {
        let refused = host.upload_bytes("Bad", vec![0u8; 256 * 1024]).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(host.get_json("/healthz").await["status"], "ok");
    }
}
