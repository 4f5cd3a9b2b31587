//! Local target sites for plugins to fetch: numbered pages, a slow endpoint, a redirect, and a
//! small shop whose item comes into stock after a few polls and that takes orders only with
//! the session cookie it handed out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// A target server on 127.0.0.1, stopped when dropped.
pub struct Target {
    pub base: String,
    pub shop: Arc<Shop>,
    pub requests: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
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
}

impl Target {
    pub async fn start() -> Target {
        Self::start_with_stock_after(3).await
    }

    pub async fn start_with_stock_after(polls_until_stock: u64) -> Target {
        let shop = Arc::new(Shop { changing: Mutex::default(), polls_until_stock, sessions: Mutex::default(), orders: Mutex::default() });
        let requests = Arc::new(AtomicU64::new(0));
        let state = AppState { shop: shop.clone(), requests: requests.clone() };
        let app = Router::new()
            .route("/page/{n}", get(page))
            .route("/slow", get(slow))
            .route("/redirect", get(|| async { Redirect::to("/page/0") }))
            .route("/status/{code}", get(status))
            .route("/changing/{key}", get(changing))
            .route("/big/{kib}", get(big))
            .route("/", get(shop_home))
            .route("/api/items/{id}", get(shop_item))
            .route("/api/orders", post(shop_order))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Target { base, shop, requests, server }
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
    (
        [(header::SET_COOKIE, format!("shop_session={session}; Path=/; HttpOnly"))],
        Html("<title>Shop</title>"),
    )
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
    let in_stock = state.shop.sessions.lock().expect("lock").get(&session).is_some_and(|p| *p >= state.shop.polls_until_stock);
    if !in_stock || order.quantity != 1 {
        return (StatusCode::CONFLICT, "not in stock for this session").into_response();
    }
    let mut orders = state.shop.orders.lock().expect("lock");
    orders.push((session, order.item));
    Json(json!({ "order_id": format!("order-{}", orders.len()) })).into_response()
}
