//! Admission and lifecycle: which tasks are accepted, when they run, how they end.
//!
//! - `admission`: a task is accepted only while fewer than `max_queued_tasks` wait for a
//!   slot; beyond that the caller is told to come back later (429) instead of the host growing
//!   without bound.
//! - `slots`: accepted tasks wait for a per-plugin slot and then a global one (the global
//!   count also bounds the instance pool).
//! - `lifecycle`: each runs as its own tokio task with its own store, and ends succeeded,
//!   failed, timed out, cancelled or interrupted, exactly once.
//! - `table`: the tasks held in memory, finished ones within their retention, their outputs
//!   and events within `limits.finished_memory_mb`.
//! - `lookup`: tasks asked for by id, from the table or else from the store (the backlog's,
//!   finished ones the table forgot); their cancellation.
//! - `payloads`: the inputs of queued tasks within `limits.queued_inputs_memory_mb`, and the
//!   payloads that are left in the store, read back when needed.
//!
//! Tasks run on threads of their own (`limits.task_threads`), apart from the API's: however
//! busy the guests keep their threads, health checks, submissions and results are answered.
//! Plugins that hog the host run in a background lane with lower priority (see `lanes`).
//!
//! Tasks accepted through the API's `tasks` routes or started by schedules are recorded in the
//! store before they are acknowledged, and their starts and ends after; at start the recorded
//! ones are taken up again (see `recovery`), unfinished ones as the queue has room for them
//! (see `backlog`).

mod admission;
mod backlog;
mod lanes;
mod lifecycle;
mod lookup;
mod payloads;
mod recovery;
mod slots;
mod table;
mod unwind;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::capabilities::context::SpawnError;
use crate::capabilities::{Capabilities, Spawner};
use crate::config::Limits;
use crate::registry::Registry;
use crate::runtime::{PluginKind, Runtime};
use crate::store::{Store, StoreError};
use crate::task::{Origin, OwnerRefusal, Owners, Task, TaskId};
use backlog::Backlog;
use lanes::Lanes;
pub use recovery::Recovered;
use slots::Slots;
use table::TaskTable;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("no plugin named {0:?}: upload it with PUT /v1/plugins/{0}")]
    NoSuchPlugin(String),
    #[error("plugin {plugin:?} is not served: {why}")]
    Unavailable { plugin: String, why: String },
    #[error("{}", wrong_kind(plugin, *kind))]
    WrongKind { plugin: String, kind: PluginKind },
    #[error("the task queue is full ({0} tasks waiting); retry later")]
    QueueFull(usize),
    #[error(
        "no room for {count} more tasks: {queued} of limits.max_queued_tasks ({max_queued}) are waiting; retry later or send fewer"
    )]
    NoRoom { count: usize, queued: usize, max_queued: usize },
    #[error("the host is shutting down and accepts no new tasks")]
    ShuttingDown,
    #[error("timeout={asked} s exceeds plugin {plugin:?}'s limit of {limit} s (its manifest's timeout)")]
    TimeoutTooLong { plugin: String, asked: u64, limit: u64 },
    #[error("{0}; the task was not accepted, retry later")]
    Store(#[from] StoreError),
    /// The token the task would run for may not start it (now).
    #[error("{0}")]
    Owner(#[from] OwnerRefusal),
}

/// How `plugin`, of `kind`, is called instead.
fn wrong_kind(plugin: &str, kind: PluginKind) -> String {
    match kind {
        PluginKind::Http => format!(
            "plugin {plugin:?} is an HTTP plugin (a wasi:http handler): send it requests at /v1/plugins/{plugin}/http/…"
        ),
        PluginKind::Task => format!(
            "plugin {plugin:?} is a task plugin: run it with POST /v1/plugins/{plugin}/run or /v1/plugins/{plugin}/tasks"
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no task with id {0}")]
    NotFound(TaskId),
    #[error("task {0} has already ended")]
    AlreadyFinished(TaskId),
    /// The task is only in the store, which cannot cancel it now.
    #[error("{0}; retry later")]
    Store(#[from] StoreError),
}

/// Counts for health checks and operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Load {
    pub running: usize,
    pub queued: usize,
    pub max_running: usize,
    pub max_queued: usize,
    /// Tasks that ended since the host started, by final state.
    pub ended: Ended,
    /// Plugins that recently hogged the host: their tasks start in the background lane.
    pub background_plugins: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Ended {
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    pub interrupted: u64,
}

pub struct Scheduler {
    this: Weak<Scheduler>,
    lanes: Lanes,
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    capabilities: Capabilities,
    /// What the token a task runs for may start: asked at every spawn and scheduled run.
    owners: Arc<dyn Owners>,
    limits: Limits,
    tasks: TaskTable,
    slots: Slots,
    /// Tasks accepted and not started yet.
    queued: AtomicUsize,
    /// Bytes of the inputs of queued tasks held in memory.
    queued_input_bytes: AtomicUsize,
    /// Recorded tasks left in the store at start, counted in `queued`.
    backlog: Mutex<Backlog>,
    /// A backlog loader is at work.
    loading: AtomicBool,
    /// Held by whoever takes up backlog tasks, from reading the cursor to moving it past what
    /// it launched: two readers of one cursor would launch the same tasks twice.
    taking_up: Mutex<()>,
    ended: Mutex<Ended>,
    tracker: TaskTracker,
    closed: CancellationToken,
}

impl Scheduler {
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        capabilities: Capabilities,
        owners: Arc<dyn Owners>,
        limits: Limits,
        keep_finished_for: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let lanes = Lanes::new(&limits)?;
        Ok(Arc::new_cyclic(|this| Self {
            this: this.clone(),
            lanes,
            registry,
            store,
            runtime,
            capabilities,
            owners,
            tasks: TaskTable::new(
                limits.retain_finished_tasks as usize,
                keep_finished_for,
                limits.finished_memory_bytes(),
            ),
            slots: Slots::new(limits.max_running_tasks, limits.background_max_running()),
            limits,
            queued: AtomicUsize::new(0),
            queued_input_bytes: AtomicUsize::new(0),
            backlog: Mutex::new(Backlog::empty()),
            loading: AtomicBool::new(false),
            taking_up: Mutex::new(()),
            ended: Mutex::default(),
            tracker: TaskTracker::new(),
            closed: CancellationToken::new(),
        }))
    }

    /// Takes a task of `plugin`'s live version to run now for a caller who waits for its end
    /// (`owner`: the caller's token id); not recorded, since its answer goes to that caller.
    pub fn submit(
        &self,
        plugin: &str,
        input: Bytes,
        timeout: Option<Duration>,
        owner: Option<Arc<str>>,
    ) -> Result<Arc<Task>, SubmitError> {
        self.admit(plugin, input, timeout, Origin::Caller(owner))
    }

    /// Accepts a task to run in the background: it is committed to the task store before this
    /// returns, so that a task once accepted survives the process.
    pub async fn accept(
        &self,
        plugin: &str,
        input: Bytes,
        timeout: Option<Duration>,
        owner: Option<Arc<str>>,
    ) -> Result<Arc<Task>, SubmitError> {
        let tasks = self.accept_many(plugin, vec![input], timeout, owner).await?;
        tasks.into_iter().next().ok_or_else(|| SubmitError::Store(StoreError::Write("no task was made".to_owned())))
    }

    /// Accepts a run of `schedule` like [`Scheduler::accept`], if the token that defined it
    /// may still trigger its plugin; the schedule's record of its runs is committed with the
    /// task.
    pub async fn accept_run(
        &self,
        schedule: Arc<str>,
        plugin: &str,
        input: Bytes,
        timeout: Option<Duration>,
        owner: Option<Arc<str>>,
    ) -> Result<Arc<Task>, SubmitError> {
        self.may_start(owner.as_deref(), plugin)?;
        let tasks = self.commit_and_launch(plugin, vec![input], timeout, owner, Some(schedule)).await?;
        tasks.into_iter().next().ok_or_else(|| SubmitError::Store(StoreError::Write("no task was made".to_owned())))
    }

    /// Accepts tasks of `plugin`, one per input, committed in one transaction: all of them or
    /// none. They wait for running slots like any other task.
    pub async fn accept_many(
        &self,
        plugin: &str,
        inputs: Vec<Bytes>,
        timeout: Option<Duration>,
        owner: Option<Arc<str>>,
    ) -> Result<Vec<Arc<Task>>, SubmitError> {
        self.commit_and_launch(plugin, inputs, timeout, owner, None).await
    }

    /// Whether tasks run for token `owner` may start tasks of `plugin` now.
    pub fn may_start(&self, owner: Option<&str>, plugin: &str) -> Result<(), OwnerRefusal> {
        self.owners.may_start(owner, plugin)
    }

    /// A task held in memory (see [`Scheduler::find`] for any task the store keeps).
    pub fn get(&self, id: TaskId) -> Option<Arc<Task>> {
        self.tasks.get(id)
    }

    /// The most recent tasks first among those `filter` keeps, at most `limit`, starting
    /// after the task submitted at `after` (time, then id) if given.
    pub fn list(
        &self,
        filter: impl Fn(&Task) -> bool,
        after: Option<(SystemTime, TaskId)>,
        limit: usize,
    ) -> Vec<Arc<Task>> {
        self.tasks.list(filter, after, limit)
    }

    pub fn load(&self) -> Load {
        Load {
            running: self.slots.running(),
            queued: self.queued.load(Ordering::Relaxed),
            max_running: self.limits.max_running_tasks as usize,
            max_queued: self.limits.max_queued_tasks as usize,
            ended: *self.ended.lock(),
            background_plugins: self.lanes.background_plugins(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Stops accepting tasks, lets running ones (and queued ones that are not recorded) finish
    /// for up to `grace`, then cancels the rest; recorded tasks that had not started stay
    /// queued in the store, for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.closed.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            let unfinished = self.tasks.unfinished();
            tracing::warn!(
                tasks = unfinished.len(),
                "shutdown grace period over; stopping the remaining tasks (recorded ones are taken up at the next start)"
            );
            for task in unfinished {
                task.shut_down();
            }
            self.tracker.wait().await;
        }
    }
}

impl Spawner for Scheduler {
    /// Starts a child only of a plugin the token of the parent's tree may trigger now, within
    /// the tree's depth and size limits.
    fn spawn(&self, parent: &Task, plugin: &str, input: Bytes) -> Result<Arc<Task>, SpawnError> {
        self.may_start(parent.owner.as_deref(), plugin).map_err(|e| SpawnError::Rejected(e.to_string()))?;
        if parent.depth >= self.limits.max_spawn_depth {
            self.lanes.mark_heavy(&parent.plugin);
            return Err(SpawnError::Rejected(format!(
                "spawn depth limit of {} reached (limits.max_spawn_depth)",
                self.limits.max_spawn_depth
            )));
        }
        let max_tree = self.limits.max_tasks_per_tree;
        parent
            .tree_size
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max_tree).then_some(n + 1))
            .map_err(|_| {
                self.lanes.mark_heavy(&parent.plugin);
                SpawnError::Rejected(format!(
                    "this tree of spawned tasks reached limits.max_tasks_per_tree ({max_tree} tasks)"
                ))
            })?;
        self.admit(plugin, input, None, Origin::Parent(parent)).map_err(|e| {
            parent.tree_size.fetch_sub(1, Ordering::AcqRel);
            match e {
                SubmitError::NoSuchPlugin(name) => SpawnError::NoSuchPlugin(name),
                other => SpawnError::Rejected(other.to_string()),
            }
        })
    }
}
