//! The `http` interface: free requests, `fetch-all`, and the `session` resource. The work is
//! done by [`Outbound`](super::outbound::Outbound); this module maps guest handles to state.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::outbound::SessionState;
use crate::runtime::HostState;
use crate::runtime::http::{Error, Host, HostSession, Request, Response};

/// The host side of a guest's `session` handle.
pub struct Session(Arc<SessionState>);

impl HostState {
    fn session(&self, handle: &Resource<Session>) -> wasmtime::Result<Arc<SessionState>> {
        Ok(self.table.get(handle)?.0.clone())
    }
}

impl Host for HostState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, Error>> {
        let outbound = self.invocation()?.outbound.clone();
        Ok(outbound.send(request, None).await)
    }

    async fn fetch_all(
        &mut self,
        requests: Vec<Request>,
        concurrency: Option<u32>,
    ) -> wasmtime::Result<Vec<Result<Response, Error>>> {
        let outbound = self.invocation()?.outbound.clone();
        Ok(outbound.fetch_all(requests, concurrency, None).await)
    }
}

impl HostSession for HostState {
    async fn new(&mut self) -> wasmtime::Result<Resource<Session>> {
        Ok(self.table.push(Session(Arc::default()))?)
    }

    async fn set_default_header(&mut self, handle: Resource<Session>, name: String, value: String) -> wasmtime::Result<()> {
        self.session(&handle)?.set_default_header(name, value);
        Ok(())
    }

    async fn send(&mut self, handle: Resource<Session>, request: Request) -> wasmtime::Result<Result<Response, Error>> {
        let session = self.session(&handle)?;
        let outbound = self.invocation()?.outbound.clone();
        Ok(outbound.send(request, Some(&session)).await)
    }

    async fn fetch_all(
        &mut self,
        handle: Resource<Session>,
        requests: Vec<Request>,
        concurrency: Option<u32>,
    ) -> wasmtime::Result<Vec<Result<Response, Error>>> {
        let session = self.session(&handle)?;
        let outbound = self.invocation()?.outbound.clone();
        Ok(outbound.fetch_all(requests, concurrency, Some(&session)).await)
    }

    async fn cookies_for(&mut self, handle: Resource<Session>, url: String) -> wasmtime::Result<String> {
        let session = self.session(&handle)?;
        Ok(url::Url::parse(&url).map(|u| session.cookie_header(&u)).unwrap_or_default())
    }

    async fn drop(&mut self, handle: Resource<Session>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
