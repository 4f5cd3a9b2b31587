//! The WebAssembly runtime: one engine configured in one place, one linker built once, and
//! a fresh `Store` per invocation instantiated from a plugin version's prepared `InstancePre`.
//!
//! Instances come from the pooling allocator (sized from `limits.max_running_tasks`, which the
//! scheduler never exceeds); the epoch ticker makes computing guests yield to tokio every
//! millisecond, which is also how their deadline and cancellation reach them.

mod bindings;
mod capacity;
mod epoch;
mod state;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
    WasmBacktrace,
};

pub use bindings::WORLD;
pub use bindings::context::SpawnError;
pub use bindings::{context, events, http, timer, types};
pub use capacity::small_pages_only;
pub use state::{HostState, Invocation};

use crate::config::Limits;
use crate::task::{Failure, FailureKind, Outcome};

/// A Rust `wasm32-wasip2` component is three core instances and two tables; leave room.
const CORE_INSTANCES_PER_TASK: u32 = 4;
const TABLES_PER_TASK: u32 = 3;
const MEMORIES_PER_TASK: u32 = 1;
/// Pool slots kept beyond `max_running_tasks` for validating uploads, so that an upload (a hot
/// swap) still works while every task slot is busy.
const VALIDATION_SLOTS: u32 = 2;
/// Room on a task's fiber stack beyond its wasm stack, for the host functions it calls.
const ASYNC_STACK_HEADROOM: usize = 1536 * 1024;
/// Table bytes per slot reset in place: a Rust component's tables are a few KiB.
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;
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
pub struct Prepared {
    pre: bindings::TaskPre<HostState>,
}

/// A host call refused because the task reached one of its limits; the message names it. The
/// guest traps and the task fails with `resource-limit`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitExceeded(pub String);

/// Why a component cannot run here; the messages are meant for the plugin's author.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("the component imports something this host does not provide: {0}")]
    Imports(String),
    #[error("the component does not target the world {WORLD}: {0}")]
    Exports(String),
    #[error("the component cannot be instantiated within this host's limits: {0}")]
    Instantiate(String),
}

impl Runtime {
    pub fn new(limits: &Limits) -> anyhow::Result<Self> {
        warn_about_map_count(limits);
        let engine = Engine::new(&engine_config(limits)?)
            .map_err(|e| anyhow::anyhow!(explain_out_of_mappings(format!("{e:#}"))))
            .context("cannot configure the WebAssembly engine")?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from).context("cannot link WASI")?;
        bindings::Task::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)
            .context("cannot link the ignareo:task imports")?;
        let ticker = epoch::EpochTicker::start(engine.clone()).context("cannot start the epoch ticker")?;
        Ok(Self {
            engine,
            linker,
            task_memory_bytes: limits.task_memory_bytes(),
            max_output_bytes: limits.max_output_bytes(),
            task_stack_kb: limits.task_stack_kb,
            validations: tokio::sync::Semaphore::new(VALIDATION_SLOTS as usize),
            _ticker: ticker,
        })
    }

    /// Compiles component bytes to machine code: CPU-heavy, call from a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Ok(Component::new(&self.engine, bytes)?)
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

    /// Links a component against the host and checks it exports `run`, then instantiates it
    /// once to prove it fits the pool's limits.
    pub async fn prepare(&self, component: &Component) -> Result<Prepared, PrepareError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| PrepareError::Imports(explain_imports(format!("{e:#}"))))?;
        let pre = bindings::TaskPre::new(instance_pre).map_err(|e| PrepareError::Exports(format!("{e:#}")))?;
        // The semaphore is never closed.
        let _slot = self.validations.acquire().await.map_err(|e| PrepareError::Instantiate(e.to_string()))?;
        let mut store = self.store(HostState::for_validation(self.task_memory_bytes));
        pre.instantiate_async(&mut store).await.map_err(|e| PrepareError::Instantiate(format!("{e:#}")))?;
        Ok(Prepared { pre })
    }

    /// Runs one task to its end: a fresh store, instantiate, `run(input)`, within `deadline`
    /// and `memory_bytes` (at most the pool's slot size).
    pub async fn invoke(
        &self,
        prepared: &Prepared,
        invocation: Invocation,
        input: &[u8],
        deadline: Duration,
        memory_bytes: usize,
    ) -> Outcome {
        let memory_bytes = memory_bytes.min(self.task_memory_bytes);
        let mut store = self.store(HostState::new(invocation, memory_bytes));
        let run = async {
            let task = prepared.pre.instantiate_async(&mut store).await.map_err(|e| Failure {
                kind: FailureKind::Instantiate,
                message: explain_out_of_mappings(format!("cannot instantiate: {e:#}")),
            })?;
            let result = task.call_run(&mut store, input).await;
            let stderr = store.data().finish_output();
            result.map_err(|e| self.classify(e, &stderr, memory_bytes))
        };
        match tokio::time::timeout(deadline, run).await {
            Err(_elapsed) => Outcome::TimedOut { ran: deadline, inherited: false },
            Ok(Err(failure)) => Outcome::Failed(failure),
            Ok(Ok(Ok(output))) if output.len() > self.max_output_bytes => Outcome::Failed(Failure {
                kind: FailureKind::ResourceLimit,
                message: format!(
                    "the task's output of {} bytes exceeds limits.max_output_mb ({})",
                    output.len(),
                    mebibytes(self.max_output_bytes)
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
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s.limits());
        store.set_epoch_deadline(TICKS_PER_SLICE);
        // wasmtime's own yield re-polls at once and starves tokio's timers; yielding through
        // tokio lets other tasks (and this task's deadline) run.
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(TICKS_PER_SLICE, Box::pin(tokio::task::yield_now())))
        });
        store
    }
}

impl Runtime {
    fn classify(&self, error: wasmtime::Error, stderr: &str, memory_bytes: usize) -> Failure {
        if error.root_cause().to_string().starts_with("forcing trap when growing memory") {
            return Failure {
                kind: FailureKind::MemoryLimit,
                message: format!("the task exceeded its memory limit of {}", mebibytes(memory_bytes)),
            };
        }
        if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
            return Failure { kind: FailureKind::ResourceLimit, message: limit.0.clone() };
        }
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::StackOverflow)) {
            return Failure {
                kind: FailureKind::ResourceLimit,
                message: format!(
                    "the task exhausted its call stack of {} KiB (limits.task_stack_kb)",
                    self.task_stack_kb
                ),
            };
        }
        let mut message = match error.downcast_ref::<Trap>() {
            Some(trap) => format!("the guest trapped: {trap}"),
            None => format!("the guest failed: {}", error.root_cause()),
        };
        if !stderr.is_empty() {
            message.push_str("\nguest stderr:\n");
            message.push_str(stderr.trim_end());
        }
        if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
            message.push('\n');
            message.push_str(&backtrace.to_string());
        }
        Failure { kind: FailureKind::Trap, message }
    }
}

/// Adds the likely fix when a component was built against another version of our WIT package.
fn explain_imports(message: String) -> String {
    let ours = WORLD.rsplit_once('@').map_or(WORLD, |(_, version)| version);
    if message.contains("ignareo:task/") && !message.contains(&format!("@{ours}")) {
        format!(
            "{message}; the component targets another version of the ignareo:task interfaces: rebuild it with the SDK for {WORLD}"
        )
    } else {
        message
    }
}

/// Adds the operator's likely fix when the kernel refused a mapping: past `vm.max_map_count`,
/// mmap and mprotect fail with ENOMEM while memory is plentiful.
fn explain_out_of_mappings(message: String) -> String {
    match capacity::max_map_count() {
        Some(cap) if message.contains("Cannot allocate memory") => {
            format!(
                "{message}; the kernel refused a memory mapping, which with many tasks running means the cap on mappings: {}",
                capacity::map_count_advice(cap)
            )
        }
        _ => message,
    }
}

/// "16 MiB", or the exact byte count when it is not a whole number of MiB.
fn mebibytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes.is_multiple_of(MIB) { format!("{} MiB", bytes / MIB) } else { format!("{bytes} bytes") }
}

/// Says at start, not under load, when the kernel will refuse instances before the pool is full.
fn warn_about_map_count(limits: &Limits) {
    if let Some(cap) = capacity::max_map_count()
        && capacity::mappings_needed(limits.max_running_tasks.into()) > cap
    {
        tracing::warn!(
            max_running_tasks = limits.max_running_tasks,
            "tasks beyond the kernel's mapping cap will fail to instantiate: {}",
            capacity::map_count_advice(cap)
        );
    }
}

fn engine_config(limits: &Limits) -> anyhow::Result<Config> {
    let instances = limits.max_running_tasks + VALIDATION_SLOTS;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_TASK)
        .total_memories(instances * MEMORIES_PER_TASK)
        .total_tables(instances * TABLES_PER_TASK)
        .total_stacks(instances)
        .max_memory_size(limits.task_memory_bytes())
        // Reset in place (only the pages a task wrote, found with PAGEMAP_SCAN where the
        // kernel has it) rather than by madvise: no page faults on the next task, and no
        // TLB-shootdown interrupts to the other cores on every task's end.
        .linear_memory_keep_resident(limits.memory_keep_resident_bytes())
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);

    let stack_bytes = usize::try_from(limits.task_stack_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
    let mut config = Config::new();
    capacity::MemorySlots::for_pool(u64::from(instances * MEMORIES_PER_TASK), limits.task_memory_bytes() as u64)?
        .apply(&mut config);
    config
        .max_wasm_stack(stack_bytes)
        // The fiber a task runs on holds its wasm stack plus the host calls made from it.
        .async_stack_size(stack_bytes + ASYNC_STACK_HEADROOM)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .wasm_component_model(true);
    Ok(config)
}
