//! The per-invocation host state: what one task's `Store` holds. It implements WASI's view
//! trait here and each `ignareo:task` interface in its capability module.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::context::Spawner;
use crate::capabilities::outbound::TaskOutbound;
use crate::capabilities::stdio::GuestOutput;
use crate::events::Level;
use crate::task::Task;

/// What a task may reach on the host, handed in by the scheduler.
#[derive(Clone)]
pub struct Invocation {
    pub task: Arc<Task>,
    pub outbound: Arc<TaskOutbound>,
    pub spawner: Arc<dyn Spawner>,
}

pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    limits: StoreLimits,
    /// `None` only while an upload is validated: no guest code runs then.
    invocation: Option<Invocation>,
    /// The guest's stdout and stderr, in that order.
    output: Option<(GuestOutput, GuestOutput)>,
}

impl HostState {
    pub fn new(invocation: Invocation, memory_bytes: usize) -> Self {
        let stdout = GuestOutput::new(invocation.task.clone(), Level::Info);
        let stderr = GuestOutput::new(invocation.task.clone(), Level::Warn);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        Self::with(wasi.build(), memory_bytes, Some(invocation), Some((stdout, stderr)))
    }

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
        Self {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(memory_bytes).trap_on_grow_failure(true).build(),
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

    pub fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }

    /// The running task's capabilities; a guest calling imports during validation traps.
    pub(crate) fn invocation(&self) -> wasmtime::Result<&Invocation> {
        self.invocation.as_ref().ok_or_else(|| wasmtime::format_err!("no task is running in this store"))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
