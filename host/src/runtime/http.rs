//! HTTP plugins: components of the standard `wasi:http/proxy` world (as Spin and
//! `wasmtime serve` run them), served one request per fresh instance.
//!
//! A request is handed to the guest's `incoming-handler` as wasmtime-wasi-http's resources;
//! the response head goes back on the [`Exchange`]'s channel the moment the guest sets it, and
//! its body streams from the guest for as long as the handler runs, within the invocation's
//! deadline and memory like a task's run. Outbound requests of the guest go through the
//! host's policy (see the capabilities' `wasi_http`).

use tokio::sync::oneshot;
use wasmtime::component::Component;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::{HyperIncomingBody, HyperOutgoingBody};

use super::trap;
use super::world::INCOMING_HANDLER;
use crate::capabilities::HostState;
use crate::task::{Failure, FailureKind};

/// What the guest answers: the response (its body still streaming), or the error it set.
pub type Answer = Result<http::Response<HyperOutgoingBody>, ErrorCode>;

/// One request for an HTTP plugin, and where its answer goes.
pub struct Exchange {
    /// As the guest sees it: the URI's path is the plugin's own (what follows
    /// `/v1/plugins/{name}/http`).
    pub request: http::Request<HyperIncomingBody>,
    pub answer: oneshot::Sender<Answer>,
}

impl Exchange {
    /// An exchange, and the receiver its answer arrives on.
    pub fn new(request: http::Request<HyperIncomingBody>) -> (Self, oneshot::Receiver<Answer>) {
        let (answer, receiver) = oneshot::channel();
        (Self { request, answer }, receiver)
    }
}

/// Whether a component exports the `wasi:http` 0.2 incoming handler and no `run` (a
/// component with both is a task plugin).
pub(super) fn serves_http(component: &Component, engine: &Engine) -> bool {
    let (mut handler, mut run) = (false, false);
    for (name, _) in component.component_type().exports(engine) {
        run |= name == "run";
        handler |=
            name.split_once('@').is_some_and(|(path, version)| path == INCOMING_HANDLER && version.starts_with("0.2."));
    }
    handler && !run
}

/// Hands the exchange's request to a fresh instance's handler and runs it to its end.
pub(super) async fn handle(
    pre: &ProxyPre<HostState>,
    store: &mut Store<HostState>,
    exchange: Exchange,
    stack_kb: u64,
) -> Result<(), Failure> {
    let (request, answer) = {
        let mut view = store.data_mut().http();
        let request = view.new_incoming_request(Scheme::Http, exchange.request).map_err(|e| host_failure(&e))?;
        (request, view.new_response_outparam(exchange.answer).map_err(|e| host_failure(&e))?)
    };
    let proxy = pre.instantiate_async(&mut *store).await.map_err(|e| trap::instantiate_failure(&e))?;
    let handled = proxy.wasi_http_incoming_handler().call_handle(&mut *store, request, answer).await;
    let stderr = store.data().finish_output();
    handled.map_err(|e| trap::classify(&e, &stderr, stack_kb, store.data().memory_limit()))
}

fn host_failure(error: &wasmtime::Error) -> Failure {
    Failure { kind: FailureKind::HostError, message: format!("cannot hand the request to the plugin: {error:#}") }
}
