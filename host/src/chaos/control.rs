//! The control endpoint, on the proxy's own port: change the weather without a restart and
//! read what has been injected so far.
//!
//! - `GET /_chaos/config`: the weather, in advanced form (the seed's parameter names);
//! - `PUT /_chaos/config`: replace it (the same JSON keys; absent keys are off), checked like
//!   the flags;
//! - `GET /_chaos/stats`: links, bytes, resets, jitters.
//!
//! With `--control-token`, every request to it must carry `Authorization: Bearer <token>`:
//! whoever can reach the proxy could otherwise change its weather or read its counts.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::Chaos;
use super::weather::Knobs;

type Refusal = (StatusCode, Json<Value>);

/// Serves the control API on a connection whose first bytes (`read`) were already consumed
/// while routing it.
pub async fn serve(client: TcpStream, read: Bytes, chaos: Arc<Chaos>) -> anyhow::Result<()> {
    let (reader, writer) = client.into_split();
    let io = tokio::io::join(std::io::Cursor::new(read).chain(reader), writer);
    let head_timeout = chaos.limits.head_timeout;
    let service = TowerToHyperService::new(router(chaos));
    // A kept-alive control connection holds one of the proxy's links: idle, it is closed.
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(TokioIo::new(io), service)
        .await?;
    Ok(())
}

fn router(chaos: Arc<Chaos>) -> Router {
    Router::new()
        .route("/_chaos/config", get(config).put(set_config))
        .route("/_chaos/stats", get(stats))
        .fallback(|uri: Uri| async move {
            refusal(StatusCode::NOT_FOUND, &format!("no {}; use /_chaos/config or /_chaos/stats", uri.path()))
        })
        .layer(middleware::from_fn_with_state(chaos.clone(), require_token))
        .with_state(chaos)
}

/// Lets a request through when no token is required or it carries the right one.
async fn require_token(State(chaos): State<Arc<Chaos>>, request: Request, next: Next) -> Result<Response, Refusal> {
    if let Some(token) = &chaos.limits.control_token {
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "the control endpoint needs the proxy's --control-token: send Authorization: Bearer <token>",
            ));
        }
    }
    Ok(next.run(request).await)
}

fn refusal(status: StatusCode, message: &str) -> Refusal {
    (status, Json(json!({ "error": { "message": message } })))
}

async fn config(State(chaos): State<Arc<Chaos>>) -> Json<Knobs> {
    Json(chaos.weather().knobs())
}

/// The body is JSON whatever its content type says, so that `curl -d '{...}'` works.
async fn set_config(State(chaos): State<Arc<Chaos>>, body: Bytes) -> Result<Json<Knobs>, Refusal> {
    let knobs: Knobs = serde_json::from_slice(&body).map_err(|e| {
        refusal(
            StatusCode::BAD_REQUEST,
            &format!("invalid chaos parameters ({e}); send JSON such as {{\"latency\": 100}}"),
        )
    })?;
    let weather = knobs.weather().map_err(|e| refusal(StatusCode::BAD_REQUEST, &e))?;
    chaos.set_weather(weather);
    tracing::info!(?weather, "chaos weather changed");
    Ok(Json(weather.knobs()))
}

async fn stats(State(chaos): State<Arc<Chaos>>) -> Json<Value> {
    let s = &chaos.stats;
    Json(json!({
        "links": s.links.load(Ordering::Relaxed),
        "active_links": s.active.load(Ordering::Relaxed),
        "bytes_to_clients": s.bytes_to_clients.load(Ordering::Relaxed),
        "bytes_to_upstreams": s.bytes_to_upstreams.load(Ordering::Relaxed),
        "resets": s.resets.load(Ordering::Relaxed),
        "jitters": s.jitters.load(Ordering::Relaxed),
        "jitter_ms": s.jitter_ms.load(Ordering::Relaxed),
        "refused": s.refused.load(Ordering::Relaxed),
        "upstream_failures": s.upstream_failures.load(Ordering::Relaxed),
        "over_capacity": s.over_capacity.load(Ordering::Relaxed),
        "head_timeouts": s.head_timeouts.load(Ordering::Relaxed),
        "speed_now": chaos.throttle.rate(),
    }))
}
