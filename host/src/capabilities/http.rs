//! The `http` interface: free requests, `fetch-all`, and the `session` resource. The work is
//! done by [`TaskOutbound`](super::outbound::TaskOutbound); this module maps guest handles to
//! session state and ends the task when a guest (or a server it calls) passes a cap on what
//! the host keeps for it: a `fetch-all` list, a session's default headers or cookies.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::http::{Error, Host, HostSession, Request, Response, RetryPolicy};
use super::outbound::{SessionState, TaskOutbound};
use super::{HostState, LimitExceeded};

/// The host side of a guest's `session` handle.
pub struct Session(Arc<SessionState>);

impl HostState {
    fn session(&self, handle: &Resource<Session>) -> wasmtime::Result<Arc<SessionState>> {
        Ok(self.table.get(handle)?.0.clone())
    }

    fn outbound(&self) -> wasmtime::Result<Arc<TaskOutbound>> {
        Ok(self.invocation()?.outbound.clone())
    }

    /// The task's outbound HTTP, for a `fetch-all` of `requests`: a longer list than the host
    /// takes ends the task before anything is sent.
    fn outbound_for_batch(&self, requests: &[Request]) -> wasmtime::Result<Arc<TaskOutbound>> {
        let outbound = self.outbound()?;
        let max = outbound.config().max_fetch_all_requests;
        if requests.len() > max as usize {
            return Err(LimitExceeded(format!(
                "a fetch-all of {} requests is more than outbound.max_fetch_all_requests ({max})",
                requests.len()
            ))
            .into());
        }
        Ok(outbound)
    }
}

impl Host for HostState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, Error>> {
        Ok(self.outbound()?.send(request, None).await)
    }

    async fn fetch_all(
        &mut self,
        requests: Vec<Request>,
        concurrency: Option<u32>,
    ) -> wasmtime::Result<Vec<Result<Response, Error>>> {
        Ok(self.outbound_for_batch(&requests)?.fetch_all(requests, concurrency, None).await)
    }
}

impl HostSession for HostState {
    async fn new(&mut self) -> wasmtime::Result<Resource<Session>> {
        let state = self.outbound()?.new_session()?;
        Ok(self.table.push(Session(Arc::new(state)))?)
    }

    async fn set_default_header(
        &mut self,
        handle: Resource<Session>,
        name: String,
        value: String,
    ) -> wasmtime::Result<()> {
        Ok(self.session(&handle)?.set_default_header(name, value)?)
    }

    async fn set_proxy(
        &mut self,
        handle: Resource<Session>,
        proxy: Option<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (session, outbound) = (self.session(&handle)?, self.outbound()?);
        Ok(outbound.check_session_proxy(proxy.as_deref()).map(|p| session.set_proxy(p)))
    }

    async fn set_retry(
        &mut self,
        handle: Resource<Session>,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (session, outbound) = (self.session(&handle)?, self.outbound()?);
        Ok(policy.map(|p| outbound.check_retry(&p)).transpose().map(|p| session.set_retry(p)))
    }

    async fn send(&mut self, handle: Resource<Session>, request: Request) -> wasmtime::Result<Result<Response, Error>> {
        let session = self.session(&handle)?;
        let response = self.outbound()?.send(request, Some(&session)).await;
        session.check_jar()?;
        Ok(response)
    }

    async fn fetch_all(
        &mut self,
        handle: Resource<Session>,
        requests: Vec<Request>,
        concurrency: Option<u32>,
    ) -> wasmtime::Result<Vec<Result<Response, Error>>> {
        let session = self.session(&handle)?;
        let responses = self.outbound_for_batch(&requests)?.fetch_all(requests, concurrency, Some(&session)).await;
        session.check_jar()?;
        Ok(responses)
    }

    async fn cookies_for(&mut self, handle: Resource<Session>, url: String) -> wasmtime::Result<String> {
        let session = self.session(&handle)?;
        Ok(url::Url::parse(&url).map(|u| session.cookie_header(&u)).unwrap_or_default())
    }

    async fn drop(&mut self, handle: Resource<Session>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.outbound()?.session_closed();
        Ok(())
    }
}
