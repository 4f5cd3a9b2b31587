//! One link: a client connection, what it asks for (an absolute-form request to forward, a
//! `CONNECT` tunnel, a request for the reverse-proxied upstream, or the control endpoint), the
//! upstream connection, and the bytes between them under the weather.
//!
//! Faults apply toward the client: the first byte waits for the link's latency, every piece
//! (up to 16 KiB) takes its share of the total speed and may be held back (jitter), and a
//! doomed link is cut mid-transfer with a TCP RST (`SO_LINGER` 0). Forwarded requests are sent
//! with `Connection: close`, so one link carries one exchange.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use url::Url;

use super::Chaos;
use crate::task::millis;

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes forwarded toward the client at a time.
const PIECE: usize = 16 * 1024;
/// Where a cut may fall when the response does not say how long it is.
const CUT_WINDOW: u64 = 16 * 1024;
/// How long a client refused for capacity gets to take its answer.
const OVER_CAPACITY_ANSWER: Duration = Duration::from_secs(1);
/// Headers that concern the hop to the proxy, not the request.
const HOP_HEADERS: [&str; 4] = ["proxy-authorization", "proxy-connection", "connection", "keep-alive"];

/// What a link asks for.
enum Route {
    Control,
    Tunnel(String),
    /// An absolute-form request: where to, and the head to send there.
    Forward(String, Vec<u8>),
    Reverse(String),
    Refuse(u16, String),
}

/// Serves one client connection to its end.
pub async fn serve(mut client: TcpStream, chaos: Arc<Chaos>) -> anyhow::Result<()> {
    let mut buffered = BytesMut::with_capacity(4096);
    let head = tokio::time::timeout(chaos.limits.head_timeout, read_head(&mut client, &mut buffered)).await;
    let Ok(head) = head else {
        chaos.stats.head_timeouts.fetch_add(1, Ordering::Relaxed);
        let message = format!("no request head within {} s (--head-timeout-secs)", chaos.limits.head_timeout.as_secs());
        return refuse(&mut client, 408, &message).await;
    };
    let Some(head_len) = head? else { return Ok(()) };
    let route = route(&buffered[..head_len], chaos.upstream.as_deref());
    let (authority, to_upstream, tunnel) = match route {
        Route::Control => return super::control::serve(client, buffered.freeze(), chaos).await,
        Route::Refuse(status, message) => {
            chaos.stats.refused.fetch_add(1, Ordering::Relaxed);
            return refuse(&mut client, status, &message).await;
        }
        Route::Tunnel(authority) => (authority, buffered[head_len..].to_vec(), true),
        Route::Forward(authority, mut head) => {
            head.extend_from_slice(&buffered[head_len..]);
            (authority, head, false)
        }
        Route::Reverse(authority) => (authority, buffered.to_vec(), false),
    };
    let timeout = chaos.limits.connect_timeout;
    let upstream = match tokio::time::timeout(timeout, TcpStream::connect(&authority)).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => {
            chaos.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
            return refuse(&mut client, 502, &format!("cannot reach {authority}: {e}")).await;
        }
        Err(_) => {
            chaos.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "{authority} did not accept the connection within {} s (--connect-timeout-secs)",
                timeout.as_secs()
            );
            return refuse(&mut client, 504, &message).await;
        }
    };
    if tunnel {
        client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await?;
    }
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    chaos.stats.links.fetch_add(1, Ordering::Relaxed);
    chaos.stats.active.fetch_add(1, Ordering::Relaxed);
    let result = pump(client, upstream, &to_upstream, &chaos, !tunnel).await;
    chaos.stats.active.fetch_sub(1, Ordering::Relaxed);
    result
}

/// Reads until the end of the request head; `None` if the client left first.
async fn read_head(client: &mut TcpStream, buffered: &mut BytesMut) -> anyhow::Result<Option<usize>> {
    loop {
        if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(end + 4));
        }
        if buffered.len() >= MAX_HEAD {
            refuse(client, 431, "the request head is larger than 64 KiB").await?;
            return Ok(None);
        }
        if client.read_buf(buffered).await? == 0 {
            return Ok(None);
        }
    }
}

fn route(head: &[u8], upstream: Option<&str>) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return Route::Refuse(400, "malformed request head".into());
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Route::Refuse(400, "malformed request line".into());
    };
    if method.eq_ignore_ascii_case("CONNECT") {
        return Route::Tunnel(target.to_owned());
    }
    if target == "/_chaos" || target.starts_with("/_chaos/") {
        return Route::Control;
    }
    if target.starts_with('/') {
        return match upstream {
            Some(upstream) => Route::Reverse(upstream.to_owned()),
            None => Route::Refuse(
                400,
                "this chaos proxy forwards absolute-form requests (http://...) and CONNECT tunnels; start it with --upstream to proxy origin-form requests".into(),
            ),
        };
    }
    let url = match Url::parse(target) {
        Ok(url) if url.scheme() == "http" && url.host_str().is_some() => url,
        Ok(url) if url.scheme() == "https" => {
            return Route::Refuse(400, "send https:// requests through a CONNECT tunnel".into());
        }
        _ => return Route::Refuse(400, format!("cannot forward to {target:?}")),
    };
    let authority = format!("{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(80));
    let mut forwarded = format!("{method} {}", &url[url::Position::BeforePath..url::Position::AfterQuery]).into_bytes();
    forwarded.extend_from_slice(format!(" HTTP/1.{}\r\n", request.version.unwrap_or(1)).as_bytes());
    let mut has_host = false;
    for header in request.headers.iter().filter(|h| !HOP_HEADERS.iter().any(|hop| h.name.eq_ignore_ascii_case(hop))) {
        has_host |= header.name.eq_ignore_ascii_case("host");
        forwarded.extend_from_slice(header.name.as_bytes());
        forwarded.extend_from_slice(b": ");
        forwarded.extend_from_slice(header.value);
        forwarded.extend_from_slice(b"\r\n");
    }
    if !has_host {
        forwarded.extend_from_slice(
            format!("Host: {}\r\n", &url[url::Position::BeforeHost..url::Position::AfterPort]).as_bytes(),
        );
    }
    forwarded.extend_from_slice(b"Connection: close\r\n\r\n");
    Route::Forward(authority, forwarded)
}

/// Answers a client beyond `--max-connections` with 503 and closes; a client that does not
/// take the answer promptly is dropped.
pub async fn over_capacity(mut client: TcpStream, max_connections: u32) {
    let message = format!("the chaos proxy holds its most links at once ({max_connections}, --max-connections)");
    let _ = tokio::time::timeout(OVER_CAPACITY_ANSWER, refuse(&mut client, 503, &message)).await;
}

/// A short plain-text answer from the proxy itself, then the link closes.
async fn refuse(client: &mut TcpStream, status: u16, message: &str) -> anyhow::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Bad Gateway",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{message}\n",
        message.len() + 1
    );
    client.write_all(response.as_bytes()).await?;
    Ok(client.shutdown().await?)
}

/// Carries bytes both ways until the upstream side ends (or the link is cut). Toward the
/// upstream they go as they come; toward the client, under the weather.
async fn pump(
    client: TcpStream,
    upstream: TcpStream,
    to_upstream: &[u8],
    chaos: &Chaos,
    http: bool,
) -> anyhow::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    upstream_write.write_all(to_upstream).await?;
    let uplink = async {
        if let Ok(n) = tokio::io::copy(&mut client_read, &mut upstream_write).await {
            chaos.stats.bytes_to_upstreams.fetch_add(n + to_upstream.len() as u64, Ordering::Relaxed);
        }
        let _ = upstream_write.shutdown().await;
        std::future::pending::<()>().await;
    };
    let end = tokio::select! {
        end = downlink(&mut upstream_read, &mut client_write, chaos, http) => end?,
        () = uplink => unreachable!("the uplink never completes on its own"),
    };
    if end == End::Cut {
        // Dropping a write half would send a FIN first; the cut is an RST and nothing else.
        client_write.forget();
    }
    Ok(())
}

/// How the downlink ended.
#[derive(PartialEq)]
enum End {
    /// The upstream closed; so did the client's side.
    Closed,
    /// The link was cut (`SO_LINGER` 0 set: closing it sends an RST).
    Cut,
}

async fn downlink(
    upstream: &mut OwnedReadHalf,
    client: &mut OwnedWriteHalf,
    chaos: &Chaos,
    http: bool,
) -> anyhow::Result<End> {
    let weather = chaos.weather();
    let latency = chaos.dice.between(weather.latency);
    let doomed = weather.reset.is_some_and(|p| chaos.dice.chance(p));
    let mut cut_at = None;
    let mut buf = vec![0u8; PIECE];
    let mut sent = 0u64;
    loop {
        let n = upstream.read(&mut buf).await?;
        if n == 0 {
            client.shutdown().await?;
            return Ok(End::Closed);
        }
        if sent == 0 {
            tokio::time::sleep(latency).await;
            if doomed {
                let window = if http { response_length(&buf[..n]).unwrap_or(CUT_WINDOW) } else { CUT_WINDOW };
                cut_at = Some(chaos.dice.in_range(0, window.saturating_sub(1)));
            }
        }
        let piece = &buf[..n];
        if let Some(cut_at) = cut_at.filter(|at| sent + n as u64 > *at) {
            let keep = &piece[..usize::try_from(cut_at - sent).unwrap_or(n)];
            chaos.throttle.take(keep.len()).await;
            client.write_all(keep).await?;
            chaos.stats.bytes_to_clients.fetch_add(keep.len() as u64, Ordering::Relaxed);
            cut(client, chaos)?;
            return Ok(End::Cut);
        }
        if let Some((p, min, max)) = weather.jitter
            && chaos.dice.chance(p)
        {
            let outage = chaos.dice.between((min, max));
            chaos.stats.jitters.fetch_add(1, Ordering::Relaxed);
            chaos.stats.jitter_ms.fetch_add(millis(outage), Ordering::Relaxed);
            tokio::time::sleep(outage).await;
        }
        chaos.throttle.take(n).await;
        client.write_all(piece).await?;
        sent += n as u64;
        chaos.stats.bytes_to_clients.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Cuts the link: with `SO_LINGER` 0 the close that follows sends a TCP RST, and whatever the
/// client has not read yet is lost, as on a broken network.
fn cut(client: &OwnedWriteHalf, chaos: &Chaos) -> anyhow::Result<()> {
    let socket: &TcpStream = client.as_ref();
    socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO))?;
    chaos.stats.resets.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The length of a response (head and body) from its first bytes, if its head says.
fn response_length(first: &[u8]) -> Option<u64> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(first).ok()? else { return None };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<u64>().ok())?;
    Some(head_len as u64 + length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_requests_are_rewritten_for_the_origin() {
        let head = b"GET http://shop.example:8080/a?b=1 HTTP/1.1\r\nHost: shop.example:8080\r\nProxy-Authorization: Basic eA==\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
        let Route::Forward(authority, forwarded) = route(head, None) else { panic!("not forwarded") };
        assert_eq!(authority, "shop.example:8080");
        assert_eq!(
            String::from_utf8(forwarded).unwrap(),
            "GET /a?b=1 HTTP/1.1\r\nHost: shop.example:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn routes() {
        assert!(
            matches!(route(b"CONNECT a.example:443 HTTP/1.1\r\n\r\n", None), Route::Tunnel(a) if a == "a.example:443")
        );
        assert!(matches!(route(b"GET /_chaos/stats HTTP/1.1\r\n\r\n", None), Route::Control));
        assert!(matches!(route(b"GET /page HTTP/1.1\r\n\r\n", None), Route::Refuse(400, _)));
        assert!(matches!(route(b"GET /page HTTP/1.1\r\n\r\n", Some("127.0.0.1:9")), Route::Reverse(_)));
        assert!(matches!(route(b"GET https://a.example/ HTTP/1.1\r\n\r\n", None), Route::Refuse(400, _)));
        assert_eq!(response_length(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), Some(49));
        assert_eq!(response_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), None);
    }
}
