//! Wiring: builds the store, runtime, registry, scheduler, schedules and API from a validated configuration,
//! raises the file-descriptor limit and fits the connection limit under it, binds the listener,
//! serves connections under the `[http]` limits (head size and count, slow heads and bodies,
//! connections in all and per address), and shuts down gracefully (stop accepting, let tasks
//! finish, cancel what is left after the grace period).

mod connections;
mod tracked;

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{Response, StatusCode, header};
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::api::{self, AppState};
use crate::auth::{Auth, TokenSource};
use crate::capabilities::Capabilities;
use crate::config::{Config, HttpConfig};
use crate::manifest::Ceilings;
use crate::net::{DescriptorLimit, bind, raise_descriptor_limit};
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::scheduler::Scheduler;
use crate::schedules::Schedules;
use crate::store::{SqliteStore, Store};
use tokio_util::sync::CancellationToken;

use connections::{Connections, Refusal};
use tracked::Tracked;

/// How long open connections get to finish after the tasks are done.
const CONNECTION_DRAIN: Duration = Duration::from_secs(5);

/// The store, in the data directory.
const STORE_FILE: &str = "ignareo.db";

/// Pause after a failed `accept` (e.g. no file descriptors left) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A host that is ready to serve: everything loaded, the socket bound.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    store: Arc<dyn Store>,
    grace: Duration,
}

impl Server {
    /// Validates the configuration, loads plugins, then binds: an invalid configuration is
    /// refused before any socket is opened.
    pub async fn start(mut config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let descriptors = raise_descriptor_limit().context("cannot read the file-descriptor limit")?;
        config.http.max_connections = fit_connections(&config.http, descriptors);
        ignore_file_size_signal();
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let store_path = config.data_dir.join(STORE_FILE);
        let store = SqliteStore::open(&store_path, &config.store, config.limits.retain_finished_tasks as usize)?;
        let store: Arc<dyn Store> = Arc::new(store);
        let (auth, source) =
            Auth::open(config.token.as_deref(), &config.data_dir, store.clone(), config.limits.max_tokens as usize)
                .await?;
        let auth = Arc::new(auth);
        if let TokenSource::Generated(token) = source {
            println!("admin token (shown once; stored in {}): {token}", config.data_dir.join("admin-token").display());
        }
        let runtime = Arc::new(Runtime::new(&config.limits)?);
        let capabilities = Capabilities::new(&config.outbound)?;
        let ceilings = Ceilings::of(&config);
        let registry = Arc::new(
            Registry::open(
                runtime.clone(),
                &config.data_dir,
                store.clone(),
                config.limits.versions_per_plugin as usize,
                ceilings,
                config.limits.upload_validation_timeout(),
            )
            .await?,
        );
        let keep_finished_for = config.store.retain_finished();
        let scheduler = Scheduler::new(
            registry.clone(),
            store.clone(),
            runtime,
            capabilities,
            auth.clone(),
            config.limits.clone(),
            keep_finished_for,
        )?;
        let recovered = scheduler.recover()?;
        let schedules = Schedules::load(store.clone(), scheduler.clone(), config.limits.max_schedules as usize)?;
        tracing::info!(
            path = %store_path.display(),
            finished = recovered.finished,
            queued = recovered.queued,
            retried = recovered.retried,
            interrupted = recovered.interrupted,
            left_for_a_later_start = recovered.left,
            schedules = schedules.list().len(),
            "store opened"
        );
        let listener = bind(config.listen, config.limits.listen_backlog)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let openapi = api::openapi_document(&config.limits);
        let state = AppState { registry, scheduler, schedules, auth, config: Arc::new(config.clone()), openapi };
        Ok(Self { listener, state, store, grace: Duration::from_secs(config.limits.shutdown_grace_secs) })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets running tasks finish
    /// (which also ends their event streams and long-polls), and lets connections drain.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let scheduler = self.state.scheduler.clone();
        let http = self.state.config.http.clone();
        let stop_schedules = CancellationToken::new();
        let schedules = tokio::spawn(self.state.schedules.clone().run(stop_schedules.clone()));
        // A guest that traps answers 502; that is the plugin's failure, not the host's.
        let trace = TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG));
        let app = api::router(self.state)
            .layer(trace)
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(http.body_idle_timeout_secs)));
        let connections = GracefulShutdown::new();
        tokio::select! {
            result = accept_loop(self.listener, app, &http, &connections) => return result,
            () = shutdown => {}
        }
        tracing::info!(
            grace_secs = self.grace.as_secs(),
            "shutting down: no new connections nor scheduled runs; waiting for running tasks"
        );
        stop_schedules.cancel();
        if let Err(e) = schedules.await {
            tracing::error!(error = %e, "the schedules' loop failed");
        }
        // Idle connections close now; busy ones after their response.
        let drained = tokio::spawn(connections.shutdown());
        scheduler.shutdown(self.grace).await;
        if tokio::time::timeout(CONNECTION_DRAIN, drained).await.is_err() {
            tracing::warn!("connections still open after the drain period; closing them");
        }
        // Every task's end is written before the process goes.
        let store = self.store;
        tokio::task::spawn_blocking(move || store.close()).await.context("the store did not close")?;
        Ok(())
    }
}

/// Makes a write past the process's file size limit (`RLIMIT_FSIZE`) fail with `EFBIG`, which
/// the store reports for that write alone, instead of killing the host with `SIGXFSZ`.
fn ignore_file_size_signal() {
    // SAFETY: `SIG_IGN` installs no handler: no code of ours runs in a signal context.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

/// The connection limit that leaves `http.reserved_descriptors` (at most half of the limit)
/// of the process's file descriptors for everything else: a configured limit above that is
/// lowered, with a warning, rather than left to fail accepts when descriptors run out.
fn fit_connections(http: &HttpConfig, descriptors: DescriptorLimit) -> u32 {
    let reserved = http.reserved_descriptors.min(descriptors.soft / 2);
    let room = u32::try_from(descriptors.soft - reserved).unwrap_or(u32::MAX);
    let fitted = http.max_connections.min(room).max(1);
    tracing::info!(
        soft_before = descriptors.before,
        soft = descriptors.soft,
        hard = descriptors.hard,
        reserved,
        max_connections = fitted,
        "file-descriptor limit"
    );
    if fitted < http.max_connections {
        tracing::warn!(
            configured = http.max_connections,
            max_connections = fitted,
            limit = descriptors.soft,
            reserved,
            "http.max_connections does not fit under the file-descriptor limit less http.reserved_descriptors; \
             lowered (raise the hard limit, e.g. LimitNOFILE= or ulimit -Hn, to keep it)"
        );
    }
    fitted
}

/// Accepts connections and serves each on its own task with the head limits and timeouts of
/// `http`, within the connection limits of [`Connections`]: a connection refused a slot gets
/// a short answer saying why, and is closed.
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    http: &HttpConfig,
    connections: &GracefulShutdown,
) -> anyhow::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(http.header_timeout_secs))
        .max_header_size(http.max_header_bytes)
        .max_headers(http.max_headers);
    let open = Connections::new(http.max_connections, http.max_connections_per_address);
    // Refused connections being answered at once: one address's share, so that refusing
    // cannot cost more than serving.
    let refusals = Arc::new(Semaphore::new(http.max_connections_per_address as usize));
    let first_request = http.first_request_timeout();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match open.admit(client_address(peer.ip())) {
            Ok(slot) => slot,
            Err(refusal) => {
                refuse(stream, &refusal, http, &builder, &refusals);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = Tracked::new(app.clone(), slot.connection());
        let connection = connections.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = slot.evicted() => tracing::debug!(%peer, "connection closed to make room for another"),
                () = slot.silent_for(first_request) => {
                    tracing::debug!(%peer, "connection closed: no request within http.first_request_timeout_secs");
                }
            }
            drop(slot);
        });
    }
}

/// The address a client's connections count under: an IPv4 client of a dual-stack socket
/// under its IPv4 address, an IPv6 client under its /64, the least a single host is given
/// (it may pick any address in it).
fn client_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Answers the first request of a connection that gets no slot with why, then closes it. A
/// client that sends nothing within `http.first_request_timeout_secs` is closed unanswered;
/// with more refused connections in flight than the bound, a newcomer is closed at once.
fn refuse(
    stream: TcpStream,
    refusal: &Refusal,
    http: &HttpConfig,
    builder: &http1::Builder,
    refusals: &Arc<Semaphore>,
) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else { return };
    let (status, code, message) = match refusal {
        Refusal::Address => (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            format!(
                "this address already holds http.max_connections_per_address ({}) connections to the host; \
                 reuse or close one",
                http.max_connections_per_address
            ),
        ),
        Refusal::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            "connection_limit",
            format!(
                "all http.max_connections ({}) connections have a request in progress; retry shortly",
                http.max_connections
            ),
        ),
    };
    let body = Bytes::from(serde_json::json!({ "error": { "code": code, "message": message } }).to_string());
    let answer = service_fn(move |_request| {
        let response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::RETRY_AFTER, "1")
            .header(header::CONNECTION, "close")
            .body(axum::body::Body::from(body.clone()));
        std::future::ready(response)
    });
    let connection = builder.serve_connection(TokioIo::new(stream), answer);
    let patience = http.first_request_timeout();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(patience, connection).await;
        drop(permit);
    });
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not when the
/// future is first polled: call it before announcing the address, or a signal sent as soon as
/// the host answers could find the default action (exit) still in place.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| {
            signal(kind).inspect_err(|e| tracing::warn!(error = %e, "cannot listen for {name}")).ok()
        };
        (listen(SignalKind::interrupt(), "SIGINT"), listen(SignalKind::terminate(), "SIGTERM"))
    };
    async move {
        #[cfg(unix)]
        {
            let received = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(soft: u64) -> DescriptorLimit {
        DescriptorLimit { before: 1024, soft, hard: soft }
    }

    #[test]
    fn connections_fit_under_the_descriptor_limit_with_room_for_the_rest() {
        let http = HttpConfig::default();
        assert_eq!(fit_connections(&http, limit(1 << 20)), http.max_connections, "room to spare: as configured");
        assert_eq!(fit_connections(&http, limit(16_384)), 16_384 - 8_192, "the reserve comes first");
        assert_eq!(fit_connections(&http, limit(1024)), 512, "at most half the limit is reserved");
    }

    #[test]
    fn an_ipv6_client_counts_under_its_64_and_a_mapped_ipv4_one_under_its_ipv4() {
        let address = |text: &str| client_address(text.parse().unwrap());
        assert_eq!(address("2001:db8:1:2:aaaa::1"), address("2001:db8:1:2:bbbb::2"));
        assert_ne!(address("2001:db8:1:2::1"), address("2001:db8:1:3::1"));
        assert_eq!(address("::ffff:127.0.0.2"), address("127.0.0.2"));
        assert_ne!(address("127.0.0.1"), address("127.0.0.2"));
    }
}
