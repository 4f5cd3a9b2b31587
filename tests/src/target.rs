//! Local target sites for plugins to fetch: numbered pages, a slow endpoint, redirects, a
//! small shop whose item comes into stock after a few polls and that takes orders only with
//! the session cookie it handed out, and endpoints that observe the pressure they get
//! (arrival times and requests in flight per key), fail on purpose, redirect in chains, set and
//! echo cookies, and send huge or compressed bodies.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// A target server on 127.0.0.1, stopped when dropped.
pub struct Target {
    /// `http://127.0.0.1:PORT`, or `https://` for a TLS target.
    pub base: String,
    pub shop: Arc<Shop>,
    pub requests: Arc<AtomicU64>,
    pub pressure: Arc<Pressure>,
    /// TLS handshakes that did not complete (a client refused the certificate); always 0 for
    /// a plain target.
    pub failed_handshakes: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

/// What the observing endpoints saw, per key.
#[derive(Default)]
pub struct Pressure {
    keys: Mutex<HashMap<String, KeyPressure>>,
}

#[derive(Default, Clone)]
struct KeyPressure {
    arrivals: Vec<Instant>,
    in_flight: u32,
    max_in_flight: u32,
}

impl Pressure {
    fn arrive(&self, key: &str) -> usize {
        let mut keys = self.keys.lock().expect("lock");
        let entry = keys.entry(key.to_owned()).or_default();
        entry.arrivals.push(Instant::now());
        entry.in_flight += 1;
        entry.max_in_flight = entry.max_in_flight.max(entry.in_flight);
        entry.arrivals.len()
    }

    fn leave(&self, key: &str) {
        if let Some(entry) = self.keys.lock().expect("lock").get_mut(key) {
            entry.in_flight -= 1;
        }
    }

    /// When each request for `key` arrived, in order.
    pub fn arrivals(&self, key: &str) -> Vec<Instant> {
        self.keys.lock().expect("lock").get(key).map(|k| k.arrivals.clone()).unwrap_or_default()
    }

    /// The most requests for `key` that were in flight at once.
    pub fn max_in_flight(&self, key: &str) -> u32 {
        self.keys.lock().expect("lock").get(key).map_or(0, |k| k.max_in_flight)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The shop: sessions by cookie, polls per session, orders taken.
pub struct Shop {
    /// Hits per key of `/changing/{key}`.
    changing: Mutex<HashMap<String, u64>>,
    /// Polls of the item a session makes before it is in stock.
    pub polls_until_stock: u64,
    sessions: Mutex<HashMap<String, u64>>,
    pub orders: Mutex<Vec<(String, String)>>,
}

#[derive(Clone)]
struct AppState {
    shop: Arc<Shop>,
    requests: Arc<AtomicU64>,
    pressure: Arc<Pressure>,
}

impl Target {
    pub async fn start() -> Target {
        Self::start_with_stock_after(3).await
    }

    pub async fn start_with_stock_after(polls_until_stock: u64) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        Self::serve(listener, base, polls_until_stock, Arc::new(AtomicU64::new(0)))
    }

    /// The same site over HTTPS, with the server certificate `ca` signed: for 127.0.0.1 and
    /// for [`crate::tls::TLS_NAME`].
    pub async fn start_tls(ca: &crate::tls::TestCa) -> Target {
        let listener = ca.listen().await;
        let base = format!("https://{}", axum::serve::Listener::local_addr(&listener).expect("local address"));
        let failed_handshakes = listener.failed_handshakes();
        Self::serve(listener, base, 3, failed_handshakes)
    }

    /// Serves the site's routes on `listener`, reachable at `base`.
    fn serve<L>(listener: L, base: String, polls_until_stock: u64, failed_handshakes: Arc<AtomicU64>) -> Target
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let shop = Arc::new(Shop {
            changing: Mutex::default(),
            polls_until_stock,
            sessions: Mutex::default(),
            orders: Mutex::default(),
        });
        let requests = Arc::new(AtomicU64::new(0));
        let pressure = Arc::new(Pressure::default());
        let state = AppState { shop: shop.clone(), requests: requests.clone(), pressure: pressure.clone() };
        let app = Router::new()
            .route("/page/{n}", get(page))
            .route("/slow", get(slow))
            .route("/redirect", get(|| async { Redirect::to("/page/0") }))
            .route("/status/{code}", get(status))
            .route("/changing/{key}", get(changing))
            .route("/big/{kib}", get(big))
            .route("/concurrent/{key}", get(concurrent))
            .route("/flaky/{key}", get(flaky).post(flaky))
            .route("/redirect-to", get(redirect_to))
            .route("/hops/{key}/{n}", get(hops))
            .route("/stream/{mib}", get(stream))
            .route("/gzip/{kib}", get(gzip))
            .route("/set-cookie", get(set_cookie))
            .route("/cookie-flood/{n}", get(cookie_flood))
            .route("/cookies", get(echo_cookies))
            .route("/private/cookies", get(echo_cookies))
            .route("/", get(shop_home))
            .route("/api/items/{id}", get(shop_item))
            .route("/api/orders", post(shop_order))
            .with_state(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Target { base, shop, requests, pressure, failed_handshakes, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn page(State(state): State<AppState>, Path(n): Path<u64>) -> Html<String> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let filler = "<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p>\n".repeat(30);
    Html(format!("<!doctype html><html><head><title>Page {n}</title></head><body>{filler}</body></html>"))
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(State(state): State<AppState>, Query(q): Query<SlowQuery>) -> Html<&'static str> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    Html("<title>slow</title>")
}

/// A page of `kib` KiB (with a title), for response size limits.
async fn big(Path(kib): Path<usize>) -> Html<String> {
    let mut page = String::from("<title>big</title>");
    page.push_str(&"x".repeat(kib * 1024));
    Html(page)
}

#[derive(Deserialize)]
struct HoldQuery {
    ms: Option<u64>,
}

/// Holds each request `ms` milliseconds, counting requests in flight per key.
async fn concurrent(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<HoldQuery>,
) -> Html<String> {
    state.pressure.arrive(&key);
    tokio::time::sleep(Duration::from_millis(q.ms.unwrap_or(0))).await;
    state.pressure.leave(&key);
    Html(format!("<title>{key}</title>"))
}

#[derive(Deserialize)]
struct FlakyQuery {
    /// The first `fail` requests for a key fail...
    fail: usize,
    /// ...with this status (503 by default)...
    status: Option<u16>,
    /// ...and this `Retry-After` in seconds, if given.
    retry_after: Option<u64>,
}

async fn flaky(State(state): State<AppState>, Path(key): Path<String>, Query(q): Query<FlakyQuery>) -> Response {
    let hit = state.pressure.arrive(&key);
    state.pressure.leave(&key);
    if hit > q.fail {
        return Html(format!("<title>recovered after {}</title>", hit - 1)).into_response();
    }
    let status = StatusCode::from_u16(q.status.unwrap_or(503)).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (status, format!("failure {hit}")).into_response();
    if let Some(seconds) = q.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

#[derive(Deserialize)]
struct RedirectQuery {
    url: String,
}

async fn redirect_to(Query(q): Query<RedirectQuery>) -> Redirect {
    Redirect::to(&q.url)
}

/// A chain of `n` redirects (to `/hops/{key}/{n - 1}`, down to 0, a page), each hop counted
/// under `key`.
async fn hops(State(state): State<AppState>, Path((key, n)): Path<(String, u32)>) -> Response {
    state.pressure.arrive(&key);
    state.pressure.leave(&key);
    match n.checked_sub(1) {
        Some(next) => Redirect::to(&format!("/hops/{key}/{next}")).into_response(),
        None => Html("<title>landed</title>").into_response(),
    }
}

/// `mib` MiB of zeros in 64 KiB chunks, without a Content-Length: only counting while
/// streaming can refuse it early.
async fn stream(Path(mib): Path<usize>) -> Response {
    const CHUNK: usize = 64 * 1024;
    static ZEROS: [u8; CHUNK] = [0; CHUNK];
    let chunks = mib * 1024 * 1024 / CHUNK;
    let body = futures::stream::iter((0..chunks).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(&ZEROS))));
    Response::new(Body::from_stream(body))
}

/// `kib` KiB of `a`, gzip-encoded: small on the wire, large once decompressed.
async fn gzip(Path(kib): Path<usize>) -> Response {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![b'a'; 64 * 1024];
    let mut left = kib * 1024;
    while left > 0 {
        let n = left.min(chunk.len());
        encoder.write_all(&chunk[..n]).expect("gzip in memory");
        left -= n;
    }
    let compressed = encoder.finish().expect("gzip in memory");
    ([(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "text/plain")], compressed).into_response()
}

#[derive(Deserialize)]
struct CookieQuery {
    name: String,
    value: String,
    path: Option<String>,
}

async fn set_cookie(Query(q): Query<CookieQuery>) -> Response {
    let path = q.path.unwrap_or_else(|| "/".to_owned());
    ([(header::SET_COOKIE, format!("{}={}; Path={path}", q.name, q.value))], "set").into_response()
}

/// Cookies a hostile site sets on every answer: 50 of 2 KB each, for this page's path only,
/// so that none comes back on the next page's request.
async fn cookie_flood(Path(n): Path<u64>) -> Response {
    let mut response = "crumbs".into_response();
    let value = "c".repeat(2000);
    for i in 0..50 {
        let cookie = format!("crumb{i}={value}; Path=/cookie-flood/{n}");
        response.headers_mut().append(header::SET_COOKIE, cookie.parse().expect("a valid header value"));
    }
    response
}

/// The request's `Cookie` header, empty if none.
async fn echo_cookies(headers: HeaderMap) -> String {
    headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn status(Path(code): Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

/// "Sold out" until the shop's `polls_until_stock`-th hit of this key, then "In stock".
async fn changing(State(state): State<AppState>, Path(key): Path<String>) -> Html<&'static str> {
    let mut hits = state.shop.changing.lock().expect("lock");
    let hits = hits.entry(key).or_default();
    *hits += 1;
    Html(if *hits >= state.shop.polls_until_stock { "<p>In stock</p>" } else { "<p>Sold out</p>" })
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("shop_session="))
        .map(str::to_owned)
        .next()
}

async fn shop_home(State(state): State<AppState>) -> Response {
    let session = format!("{:016x}", rand::random::<u64>());
    state.shop.sessions.lock().expect("lock").insert(session.clone(), 0);
    ([(header::SET_COOKIE, format!("shop_session={session}; Path=/; HttpOnly"))], Html("<title>Shop</title>"))
        .into_response()
}

async fn shop_item(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(session) = session_of(&headers) else {
        return (StatusCode::UNAUTHORIZED, "no session cookie").into_response();
    };
    let mut sessions = state.shop.sessions.lock().expect("lock");
    let Some(polls) = sessions.get_mut(&session) else {
        return (StatusCode::UNAUTHORIZED, "unknown session").into_response();
    };
    *polls += 1;
    Json(json!({ "id": id, "in_stock": *polls >= state.shop.polls_until_stock })).into_response()
}

#[derive(Deserialize)]
struct OrderForm {
    item: String,
    quantity: u32,
}

async fn shop_order(State(state): State<AppState>, headers: HeaderMap, Form(order): Form<OrderForm>) -> Response {
    let Some(session) = session_of(&headers) else {
        return (StatusCode::UNAUTHORIZED, "no session cookie").into_response();
    };
    let in_stock =
        state.shop.sessions.lock().expect("lock").get(&session).is_some_and(|p| *p >= state.shop.polls_until_stock);
    if !in_stock || order.quantity != 1 {
        return (StatusCode::CONFLICT, "not in stock for this session").into_response();
    }
    let mut orders = state.shop.orders.lock().expect("lock");
    orders.push((session, order.item));
    Json(json!({ "order_id": format!("order-{}", orders.len()) })).into_response()
}
