//! The WebAssembly runtime: one engine configured in one place (`engine`), one linker built
//! once with every capability in it, and a fresh `Store` per invocation instantiated from a
//! plugin version's linked `InstancePre`.
//!
//! Instances come from the pooling allocator (sized from `limits.max_running_tasks`, which the
//! scheduler never exceeds); the epoch ticker makes computing guests yield to tokio every
//! millisecond, which is also how their deadline and cancellation reach them. How a failed run
//! ended is told from the error's types (`trap`).
//!
//! A plugin is of one of two kinds, told from its exports when it is linked: a task plugin
//! (the `ignareo:task` world: `run(input) -> output`) or an HTTP plugin (the standard
//! `wasi:http/proxy` world: one request in, one streamed response out; see `http`).

mod capacity;
mod engine;
mod epoch;
mod http;
mod trap;
mod world;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

pub use capacity::small_pages_only;
pub use http::{Answer, Exchange};

use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::capabilities::bindings::{TaskPre, types};
use crate::capabilities::{self, HostState, Invocation, WORLD};
use crate::config::Limits;
use crate::task::{Failure, FailureKind, Outcome};

/// Epoch ticks a guest may compute before it yields to the executor.
const TICKS_PER_SLICE: u64 = 1;

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    task_memory_bytes: usize,
    max_output_bytes: usize,
    task_stack_kb: u64,
    /// At most `VALIDATION_SLOTS` uploads instantiate at once.
    validations: tokio::sync::Semaphore,
    _ticker: epoch::EpochTicker,
}

/// A plugin version linked against this host, ready to instantiate.
pub struct Linked {
    entry: Entry,
}

enum Entry {
    Task(TaskPre<HostState>),
    Http(ProxyPre<HostState>),
}

/// What a plugin is called with, by its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// `run(input) -> output`: tasks.
    Task,
    /// A `wasi:http` handler: requests to `/v1/plugins/{name}/http/…`.
    Http,
}

/// What one invocation does: run a task's input, or answer an HTTP request.
pub enum Call {
    Run(Bytes),
    Serve(Box<Exchange>),
}

impl Linked {
    pub fn kind(&self) -> PluginKind {
        match self.entry {
            Entry::Task(_) => PluginKind::Task,
            Entry::Http(_) => PluginKind::Http,
        }
    }
}

/// Why a component cannot run here; the messages are meant for the plugin's author.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the component imports something this host does not provide: {0}")]
    Imports(String),
    #[error("the component does not target the world {WORLD}: {0}")]
    Exports(String),
    #[error("the component cannot be instantiated within this host's limits: {0}")]
    Instantiate(String),
}

impl Runtime {
    pub fn new(limits: &Limits) -> anyhow::Result<Self> {
        engine::warn_about_map_count(limits);
        let engine = Engine::new(&engine::engine_config(limits)?).map_err(|e| {
            anyhow::anyhow!(trap::explain_out_of_mappings(&e, "cannot configure the WebAssembly engine"))
        })?;
        let mut linker = Linker::new(&engine);
        capabilities::add_to_linker(&mut linker)?;
        let ticker = epoch::EpochTicker::start(engine.clone()).context("cannot start the epoch ticker")?;
        Ok(Self {
            engine,
            linker,
            task_memory_bytes: limits.task_memory_bytes(),
            max_output_bytes: limits.max_output_bytes(),
            task_stack_kb: limits.task_stack_kb,
            validations: tokio::sync::Semaphore::new(engine::VALIDATION_SLOTS as usize),
            _ticker: ticker,
        })
    }

    /// Compiles component bytes to machine code: CPU-heavy, call from a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Component::new(&self.engine, bytes).map_err(|e| {
            // The pool's per-component limits speak of the pooling allocator: name the key.
            // (wasmtime's error for them is text only.)
            let message = format!("{e:#}");
            let key = [
                ("core module instances", "limits.max_core_instances_per_task"),
                ("linear memories", "limits.max_memories_per_task"),
                ("tables, which exceeds", "limits.max_tables_per_task"),
            ]
            .into_iter()
            .find_map(|(what, key)| message.contains(what).then_some(key));
            match key {
                Some(key) => anyhow::anyhow!("{message}: this host allows that many per task ({key})"),
                None => e.into(),
            }
        })
    }

    /// The compiled form of a component, for the artifact cache.
    pub fn serialize(&self, component: &Component) -> anyhow::Result<Vec<u8>> {
        Ok(component.serialize()?)
    }

    /// Loads an artifact written by [`Runtime::serialize`] (memory-mapped, no compilation).
    pub fn load_compiled(&self, path: &Path) -> anyhow::Result<Component> {
        // SAFETY: artifacts are written only by this host into its own data directory, by
        // write-then-rename, and never modified in place; wasmtime checks they match this
        // engine's version and settings and refuses them otherwise.
        Ok(unsafe { Component::deserialize_file(&self.engine, path) }?)
    }

    /// Changes whenever compiled artifacts of another build or configuration would not load.
    pub fn artifact_fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Refuses, before it is compiled, a component built for another world (see [`world`]).
    pub fn check_world(&self, bytes: &[u8]) -> Result<(), LinkError> {
        world::check(bytes)
    }

    /// Links a component against the host and checks what it exports (`run`, or a
    /// `wasi:http` handler), then instantiates it once to prove it fits the pool's limits.
    pub async fn link(&self, component: &Component) -> Result<Linked, LinkError> {
        let instance_pre = self.linker.instantiate_pre(component).map_err(|e| LinkError::Imports(format!("{e:#}")))?;
        let exports = |e: wasmtime::Error| LinkError::Exports(format!("{e:#}"));
        let entry = if http::serves_http(component, &self.engine) {
            Entry::Http(ProxyPre::new(instance_pre).map_err(exports)?)
        } else {
            Entry::Task(TaskPre::new(instance_pre).map_err(exports)?)
        };
        // The semaphore is never closed.
        let _slot = self.validations.acquire().await.map_err(|e| LinkError::Instantiate(e.to_string()))?;
        let mut store = self.store(HostState::for_validation(self.task_memory_bytes));
        let instantiated = match &entry {
            Entry::Task(pre) => pre.instantiate_async(&mut store).await.map(drop),
            Entry::Http(pre) => pre.instantiate_async(&mut store).await.map(drop),
        };
        instantiated.map_err(|e| LinkError::Instantiate(format!("{e:#}")))?;
        Ok(Linked { entry })
    }

    /// Runs one invocation to its end in a fresh store: `run(input)` of a task plugin, or an
    /// HTTP plugin's handler for a request (whose output is empty), within `deadline` and the
    /// invocation's memory (at most the pool's slot size).
    pub async fn invoke(&self, linked: &Linked, invocation: Invocation, call: Call, deadline: Duration) -> Outcome {
        let mut store = self.store(HostState::new(invocation, self.task_memory_bytes));
        let run = async {
            match (&linked.entry, call) {
                (Entry::Task(pre), Call::Run(input)) => {
                    let task = pre.instantiate_async(&mut store).await.map_err(|e| trap::instantiate_failure(&e))?;
                    let result = task.call_run(&mut store, &input).await;
                    let stderr = store.data().finish_output();
                    result.map_err(|e| trap::classify(&e, &stderr, self.task_stack_kb, store.data().memory_limit()))
                }
                (Entry::Http(pre), Call::Serve(exchange)) => {
                    // Boxed: a request's handling is the larger future, and tasks are the many.
                    Box::pin(http::handle(pre, &mut store, *exchange, self.task_stack_kb))
                        .await
                        .map(|()| Ok(Vec::new()))
                }
                (_, _) => Err(Failure {
                    kind: FailureKind::HostError,
                    message: format!("a {:?} plugin was called as the other kind", linked.kind()),
                }),
            }
        };
        match tokio::time::timeout(deadline, run).await {
            Err(_elapsed) => Outcome::TimedOut { ran: deadline, inherited: false },
            Ok(Err(failure)) => Outcome::Failed(failure),
            Ok(Ok(Ok(output))) if output.len() > self.max_output_bytes => Outcome::Failed(Failure {
                kind: FailureKind::ResourceLimit,
                message: format!(
                    "the task's output of {} bytes exceeds limits.max_output_mb ({})",
                    output.len(),
                    trap::mebibytes(self.max_output_bytes)
                ),
            }),
            Ok(Ok(Ok(output))) => Outcome::Succeeded(Bytes::from(output)),
            Ok(Ok(Err(types::TaskError::InvalidInput(message)))) => {
                Outcome::Failed(Failure { kind: FailureKind::InvalidInput, message })
            }
            Ok(Ok(Err(types::TaskError::Failed(message)))) => {
                Outcome::Failed(Failure { kind: FailureKind::TaskError, message })
            }
        }
    }

    /// A store with the memory cap and the time slicing every guest runs under.
    fn store(&self, state: HostState) -> Store<HostState> {
        // What one host call may copy out of the guest: no more than it could hold itself,
        // however many entries of its arguments point at the same bytes.
        let hostcall_bytes = state.memory_limit();
        let mut store = Store::new(&self.engine, state);
        store.set_hostcall_fuel(hostcall_bytes);
        store.limiter(HostState::limiter);
        store.set_epoch_deadline(TICKS_PER_SLICE);
        // wasmtime's own yield re-polls at once and starves tokio's timers; yielding through
        // tokio lets other tasks (and this task's deadline) run.
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(TICKS_PER_SLICE, Box::pin(tokio::task::yield_now())))
        });
        store
    }
}
