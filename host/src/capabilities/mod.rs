//! Host capabilities: the guest world and what guests may call through it.
//!
//! This module owns the `ignareo:task` world: its bindings ([`bindings`]), the per-invocation
//! [`HostState`] a task's store holds, and one module per interface implementing it (`context`,
//! `events`, `http` over [`outbound`], `timer`, stdio for WASI's streams, and `wasi_http` for
//! the guest's own HTTP API over the same [`outbound`]). Like the runtime
//! it serves, it is built in three steps:
//! - once per process, [`Capabilities::new`] (the outbound clients and politeness gates) and
//!   [`add_to_linker`] (every import, linked once into the engine's linker);
//! - once per plugin version, [`PluginCapabilities`] from its manifest (grants, proxies,
//!   limits);
//! - once per task, [`Capabilities::prepare`], which builds the task's [`Invocation`].

pub mod bindings;
pub mod context;
mod events;
mod http;
mod limits;
pub mod outbound;
mod state;
mod stdio;
mod timer;
mod wasi_http;

use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{HasSelf, Linker};

pub use bindings::WORLD;
pub use context::{SpawnGrant, Spawner};
pub use limits::{LimitExceeded, MemoryLimitExceeded, TableLimitExceeded};
pub use state::{HostState, Invocation};

use crate::config::OutboundConfig;
use crate::task::Task;
use outbound::{Outbound, PluginOutbound, TaskOutbound};

/// What every task of this process shares.
pub struct Capabilities {
    outbound: Arc<Outbound>,
}

/// What one plugin version's tasks may do, from its manifest: built once per version.
pub struct PluginCapabilities {
    pub outbound: Arc<PluginOutbound>,
    /// Linear memory one task may use; it also bounds what one `fetch-all` buffers for it.
    pub memory_bytes: u64,
    /// Plugins its tasks may spawn.
    pub spawn: Arc<SpawnGrant>,
}

impl Capabilities {
    pub fn new(outbound: &OutboundConfig) -> anyhow::Result<Self> {
        let outbound = Outbound::new(outbound).context("cannot build the outbound HTTP client")?;
        Ok(Self { outbound: Arc::new(outbound) })
    }

    /// Builds a task's invocation state: its outbound HTTP under its plugin's grants, its
    /// context (identity, and `spawner` to start child tasks) and its events.
    pub fn prepare(&self, plugin: &PluginCapabilities, task: Arc<Task>, spawner: Arc<dyn Spawner>) -> Invocation {
        let outbound =
            TaskOutbound::new(self.outbound.clone(), plugin.outbound.clone(), task.clone(), plugin.memory_bytes);
        let memory_bytes = usize::try_from(plugin.memory_bytes).unwrap_or(usize::MAX);
        Invocation { task, outbound: Arc::new(outbound), spawner, spawn: plugin.spawn.clone(), memory_bytes }
    }
}

/// Links WASI (its HTTP too) and every `ignareo:task` interface into `linker`, once per
/// engine.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker).map_err(anyhow::Error::from).context("cannot link WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
        .map_err(anyhow::Error::from)
        .context("cannot link wasi:http")?;
    bindings::Task::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
        .map_err(anyhow::Error::from)
        .context("cannot link the ignareo:task imports")
}
