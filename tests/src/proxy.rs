//! A small HTTP forward proxy for tests: it records every request it is asked to forward
//! (the method, the absolute URI or the `CONNECT` authority, and the `Proxy-Authorization`
//! header), optionally demands credentials, and sends everything on to one upstream target
//! whatever host the request names, so a plugin can fetch `http://shop.example.test/...`
//! without any DNS. A `CONNECT` request opens a tunnel to the upstream's address, which is how
//! HTTPS goes through a proxy: `https://secure.example.test/...` reaches a TLS target.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Host configuration that pins the names tests send through this proxy to a public address
/// (`[outbound.static_hosts]`): the host resolves a destination itself before it sends it
/// through a proxy, and these names have no DNS. The proxy never connects to that address.
pub const PINNED_NAMES: &str = "[outbound.static_hosts]\n\
    \"shop.example.test\" = [\"93.184.216.34\"]\n\
    \"one.example.test\" = [\"93.184.216.34\"]\n\
    \"two.example.test\" = [\"93.184.216.34\"]\n\
    \"three.example.test\" = [\"93.184.216.34\"]\n\
    \"x.example.test\" = [\"93.184.216.34\"]\n\
    \"secure.example.test\" = [\"93.184.216.34\"]\n";

/// One request the proxy received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The absolute URI, or `host:port` for `CONNECT`.
    pub uri: String,
    pub proxy_authorization: Option<String>,
}

pub struct TestProxy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    /// The `Proxy-Authorization` value required, if any.
    required: Option<String>,
    seen: Arc<Mutex<Vec<Seen>>>,
    client: reqwest::Client,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestProxy {
    /// A proxy to `upstream` (a base URL); with `credentials`, requests without them get 407.
    pub async fn start(upstream: &str, credentials: Option<(&str, &str)>) -> TestProxy {
        use base64::Engine as _;
        let required = credentials.map(|(user, pass)| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            required,
            seen: seen.clone(),
            client: reqwest::Client::builder().no_proxy().build().expect("a client"),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestProxy { base, seen, server }
    }

    /// This proxy's URL with credentials, for a plugin to use.
    pub fn url_with(&self, user: &str, pass: &str) -> String {
        self.base.replacen("http://", &format!("http://{user}:{pass}@"), 1)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let authorization =
        request.headers().get(header::PROXY_AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    state.seen.lock().expect("lock").push(Seen {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        proxy_authorization: authorization.clone(),
    });
    if state.required.is_some() && authorization != state.required {
        let mut response = (StatusCode::PROXY_AUTHENTICATION_REQUIRED, "proxy credentials required").into_response();
        response.headers_mut().insert(header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"test\""));
        return response;
    }
    if request.method() == Method::CONNECT {
        return tunnel(&state.upstream, request).await;
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let body = axum::body::to_bytes(request.into_body(), 16 * 1024 * 1024).await.unwrap_or_default();
    match state.client.request(method, format!("{}{path}", state.upstream)).body(body).send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let body = upstream.bytes().await.unwrap_or_default();
            (status, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Answers a `CONNECT` with 200 once the upstream's address accepts a connection, then copies
/// bytes both ways between the client and it until either side closes.
async fn tunnel(upstream: &str, request: Request) -> Response {
    let address = upstream.split_once("://").map_or(upstream, |(_, rest)| rest).to_owned();
    let destination = match tokio::net::TcpStream::connect(&address).await {
        Ok(destination) => destination,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("cannot reach {address}: {e}")).into_response(),
    };
    tokio::spawn(async move {
        let Ok(client) = hyper::upgrade::on(request).await else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut destination = destination;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut destination).await;
    });
    StatusCode::OK.into_response()
}
