//! The per-invocation host state: what one task's `Store` holds. It implements WASI's view
//! trait here and each `ignareo:task` interface in its capability module.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::context::{SpawnGrant, Spawner};
use super::limits::TaskLimiter;
use super::outbound::TaskOutbound;
use super::stdio::GuestOutput;
use super::wasi_http::GuestHttp;
use crate::task::Task;
use crate::task::events::Level;

/// What one task may reach on the host: built by [`Capabilities::prepare`](super::Capabilities::prepare).
#[derive(Clone)]
pub struct Invocation {
    pub task: Arc<Task>,
    pub outbound: Arc<TaskOutbound>,
    pub spawner: Arc<dyn Spawner>,
    /// Plugins the task may spawn, from its plugin version's manifest.
    pub spawn: Arc<SpawnGrant>,
    /// Linear memory the task may use.
    pub memory_bytes: usize,
}

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: GuestHttp,
    pub(super) table: ResourceTable,
    limiter: TaskLimiter,
    /// `None` only while an upload is validated: no guest code runs then.
    invocation: Option<Invocation>,
    /// The guest's stdout and stderr, in that order.
    output: Option<(GuestOutput, GuestOutput)>,
}

impl HostState {
    /// The state of a task's store; its memory is capped at `max_memory_bytes` whatever the
    /// invocation allows (the size of the instance pool's slots).
    pub fn new(invocation: Invocation, max_memory_bytes: usize) -> Self {
        let stdout = GuestOutput::new(invocation.task.clone(), Level::Info);
        let stderr = GuestOutput::new(invocation.task.clone(), Level::Warn);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        let memory_bytes = invocation.memory_bytes.min(max_memory_bytes);
        Self::with(wasi.build(), memory_bytes, Some(invocation), Some((stdout, stderr)))
    }

    /// The state of a store that only instantiates an upload, to prove it fits the limits.
    pub fn for_validation(memory_bytes: usize) -> Self {
        Self::with(WasiCtx::builder().build(), memory_bytes, None, None)
    }

    // No preopened directories, no environment, no arguments: a plugin sees only what the
    // ignareo:task interfaces give it (plus clocks and randomness). Each store builds one
    // `WasiCtx`: building one allocates its clocks, random generators and stdio.
    fn with(
        wasi: WasiCtx,
        memory_bytes: usize,
        invocation: Option<Invocation>,
        output: Option<(GuestOutput, GuestOutput)>,
    ) -> Self {
        let outbound = invocation.as_ref().map(|i| i.outbound.clone());
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            http_hooks: GuestHttp::new(outbound, memory_bytes as u64),
            table: ResourceTable::new(),
            limiter: TaskLimiter::new(memory_bytes),
            invocation,
            output,
        }
    }

    /// Emits unterminated output lines; returns the end of stderr (a panic message, typically).
    pub fn finish_output(&self) -> String {
        self.output
            .as_ref()
            .map(|(stdout, stderr)| {
                stdout.finish();
                stderr.finish()
            })
            .unwrap_or_default()
    }

    /// Bytes the task's memories and tables may take in total.
    pub fn memory_limit(&self) -> usize {
        self.limiter.memory_bytes()
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    /// The running task's capabilities; a guest calling imports during validation traps.
    pub(super) fn invocation(&self) -> wasmtime::Result<&Invocation> {
        self.invocation.as_ref().ok_or_else(|| wasmtime::format_err!("no task is running in this store"))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_hooks }
    }
}
