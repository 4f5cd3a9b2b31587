//! Admission and lifecycle: which tasks are accepted, when they run, how they end.
//!
//! A task is accepted only while fewer than `max_queued_tasks` wait for a slot; beyond that
//! the caller is told to come back later (429) instead of the host growing without bound.
//! Accepted tasks wait, in order, for a per-plugin slot and then a global one (the global
//! count also bounds the instance pool). Each runs as its own tokio task with its own store,
//! and ends succeeded, failed, timed out, cancelled or interrupted, exactly once.
//!
//! Tasks run on threads of their own (`limits.task_threads`), apart from the API's: however
//! busy the guests keep their threads, health checks, submissions and results are answered.
//! Plugins that hog the host run in a background lane with lower priority (see [`lanes`]).
//!
//! Tasks accepted through the API's `tasks` routes or started by schedules are recorded in the
//! store before they are acknowledged, and their starts and ends after; at start the recorded
//! ones are taken up again (see [`recovery`]).

mod lanes;
mod recovery;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::capabilities::context::SpawnError;
use crate::capabilities::{Capabilities, Spawner};
use crate::config::Limits;
use crate::registry::{LoadedVersion, Registry};
use crate::runtime::Runtime;
use crate::store::{Store, StoreError, TaskEnd, TaskRecord};
use crate::task::{Origin, Outcome, Task, TaskId, TaskState};
use lanes::{Lane, Lanes};
pub use recovery::Recovered;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("no plugin named {0:?}: upload it with PUT /v1/plugins/{0}")]
    NoSuchPlugin(String),
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
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no task with id {0}")]
    NotFound(TaskId),
    #[error("task {0} has already ended")]
    AlreadyFinished(TaskId),
}

/// What a durable task that the host's shutdown stopped reads as until the next start.
const SHUT_DOWN: &str = "the host shut down before this task ended; the next start runs it if it had not started, \
                         or applies the plugin's on_interrupt policy if it had";

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
    limits: Limits,
    /// How long finished tasks stay visible (`store.retain_finished_secs`), within the count
    /// of `limits.retain_finished_tasks`.
    keep_finished_for: Duration,
    tasks: Mutex<TaskTable>,
    running: Arc<Semaphore>,
    per_plugin: Mutex<HashMap<String, PluginSlots>>,
    queued: AtomicUsize,
    ended: Mutex<Ended>,
    tracker: TaskTracker,
    closed: CancellationToken,
}

/// Slots of one plugin: sized by its live version's `max_concurrency`, resized when a new
/// version changes it.
struct PluginSlots {
    size: u32,
    /// Permits a shrink still has to take back from running tasks.
    owed: u32,
    semaphore: Arc<Semaphore>,
    /// Held by the one task of this plugin that waits for a running slot (see `acquire`).
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// What a running task holds; dropping it gives the slots back.
struct Permits {
    plugin: OwnedSemaphorePermit,
    background: Option<OwnedSemaphorePermit>,
    global: OwnedSemaphorePermit,
}

/// Every known task; finished ones are forgotten oldest first beyond the retention limits.
#[derive(Default)]
struct TaskTable {
    by_id: HashMap<TaskId, Arc<Task>>,
    finished: VecDeque<TaskId>,
}

impl Scheduler {
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        capabilities: Capabilities,
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
            running: Arc::new(Semaphore::new(limits.max_running_tasks as usize)),
            limits,
            keep_finished_for,
            tasks: Mutex::default(),
            per_plugin: Mutex::default(),
            queued: AtomicUsize::new(0),
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

    /// Accepts a run of `schedule` like [`Scheduler::accept`]; the schedule's record of its
    /// runs is committed with the task.
    pub async fn accept_run(
        &self,
        schedule: Arc<str>,
        plugin: &str,
        input: Bytes,
        timeout: Option<Duration>,
        owner: Option<Arc<str>>,
    ) -> Result<Arc<Task>, SubmitError> {
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

    async fn commit_and_launch(
        &self,
        plugin: &str,
        inputs: Vec<Bytes>,
        timeout: Option<Duration>,
        owner: Option<Arc<str>>,
        schedule: Option<Arc<str>>,
    ) -> Result<Vec<Arc<Task>>, SubmitError> {
        let version = self.admission(plugin, timeout, inputs.len())?;
        let tasks: Vec<Arc<Task>> = inputs
            .iter()
            .map(|_| {
                Arc::new(
                    self.new_task(&version, timeout, Origin::Caller(owner.clone()))
                        .durable()
                        .scheduled(schedule.clone()),
                )
            })
            .collect();
        let this = self.this.upgrade().expect("the scheduler outlives its callers");
        // On a task of its own: a caller that hangs up while the commit is under way must not
        // leave recorded tasks unlaunched (or their queue places taken).
        let committed = tokio::spawn(async move {
            let records =
                tasks.iter().zip(&inputs).map(|(task, input)| TaskRecord::accepted(task, input.clone())).collect();
            match this.store.accept(records).await {
                Ok(()) => {
                    for (task, input) in tasks.iter().zip(inputs) {
                        this.launch(task.clone(), version.clone(), input);
                    }
                    Ok(tasks)
                }
                Err(e) => {
                    this.queued.fetch_sub(tasks.len(), Ordering::AcqRel);
                    Err(SubmitError::Store(e))
                }
            }
        });
        committed.await.map_err(|e| SubmitError::Store(StoreError::Write(format!("the commit was abandoned: {e}"))))?
    }

    pub fn get(&self, id: TaskId) -> Option<Arc<Task>> {
        let (task, _expired) = {
            let mut table = self.table();
            let expired = self.forget_expired(&mut table);
            (table.by_id.get(&id).cloned(), expired)
        };
        task
    }

    /// The most recent tasks first among those `filter` keeps.
    pub fn list(&self, filter: impl Fn(&Task) -> bool, limit: usize) -> Vec<Arc<Task>> {
        let (mut tasks, _expired) = {
            let mut table = self.table();
            let expired = self.forget_expired(&mut table);
            let tasks: Vec<Arc<Task>> = table.by_id.values().filter(|t| filter(t)).cloned().collect();
            (tasks, expired)
        };
        tasks.sort_by_key(|t| std::cmp::Reverse(t.submitted_at));
        tasks.truncate(limit);
        tasks
    }

    pub fn cancel(&self, id: TaskId) -> Result<Arc<Task>, CancelError> {
        let task = self.get(id).ok_or(CancelError::NotFound(id))?;
        if task.state().is_final() {
            return Err(CancelError::AlreadyFinished(id));
        }
        task.cancel();
        Ok(task)
    }

    pub fn load(&self) -> Load {
        let max_running = self.limits.max_running_tasks as usize;
        Load {
            running: max_running - self.running.available_permits(),
            queued: self.queued.load(Ordering::Relaxed),
            max_running,
            max_queued: self.limits.max_queued_tasks as usize,
            ended: *self.ended.lock().unwrap_or_else(PoisonError::into_inner),
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
            let unfinished: Vec<Arc<Task>> =
                self.table().by_id.values().filter(|t| !t.state().is_final()).cloned().collect();
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

    fn admit(
        &self,
        plugin: &str,
        input: Bytes,
        timeout: Option<Duration>,
        origin: Origin<'_>,
    ) -> Result<Arc<Task>, SubmitError> {
        let version = self.admission(plugin, timeout, 1)?;
        let task = Arc::new(self.new_task(&version, timeout, origin));
        self.launch(task.clone(), version, input);
        Ok(task)
    }

    /// Checks that `count` tasks of `plugin` may be accepted and takes their places in the
    /// queue, all or none.
    fn admission(
        &self,
        plugin: &str,
        timeout: Option<Duration>,
        count: usize,
    ) -> Result<Arc<LoadedVersion>, SubmitError> {
        if self.closed.is_cancelled() {
            return Err(SubmitError::ShuttingDown);
        }
        let version = self.registry.live(plugin).ok_or_else(|| SubmitError::NoSuchPlugin(plugin.to_owned()))?;
        if let Some(asked) = timeout.filter(|t| *t > version.limits.timeout) {
            return Err(SubmitError::TimeoutTooLong {
                plugin: plugin.to_owned(),
                asked: asked.as_secs(),
                limit: version.limits.timeout.as_secs(),
            });
        }
        let max_queued = self.limits.max_queued_tasks as usize;
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q + count <= max_queued).then_some(q + count))
            .map_err(|queued| {
                if count == 1 {
                    SubmitError::QueueFull(queued)
                } else {
                    SubmitError::NoRoom { count, queued, max_queued }
                }
            })?;
        Ok(version)
    }

    fn new_task(&self, version: &LoadedVersion, timeout: Option<Duration>, origin: Origin<'_>) -> Task {
        Task::new(
            version.plugin.clone(),
            version.info.version.as_str().into(),
            origin,
            timeout.unwrap_or(version.limits.timeout),
            self.limits.events_per_task as usize,
            self.limits.max_log_lines,
        )
    }

    fn launch(&self, task: Arc<Task>, version: Arc<LoadedVersion>, input: Bytes) {
        self.table().by_id.insert(task.id, task.clone());
        let this = self.this.upgrade().expect("the scheduler outlives its tasks");
        let lane = self.lanes.for_plugin(&task.plugin);
        self.tracker.spawn_on(this.drive(task, version, input, lane), self.lanes.handle(lane));
    }

    async fn drive(self: Arc<Self>, task: Arc<Task>, version: Arc<LoadedVersion>, input: Bytes, lane: Lane) {
        // A spawned task may reach its parent's deadline while still queued.
        let inherited_deadline = async {
            match task.inherited_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let permits = tokio::select! {
            _ = task.cancellation().cancelled() => Err(Outcome::Cancelled),
            () = inherited_deadline => Err(Outcome::TimedOut { ran: Duration::ZERO, inherited: true }),
            permits = self.acquire(&task.plugin, version.limits.max_concurrency, lane) => Ok(permits),
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        let outcome = match &permits {
            // A recorded task not yet started when the host began to shut down stays queued
            // in the store for the next start, rather than starting in the grace period.
            Ok(_) if task.durable && self.closed.is_cancelled() => {
                task.shut_down();
                Outcome::Cancelled
            }
            Ok(_) if task.start() => {
                if task.durable {
                    self.store.started(task.id, task.attempts(), SystemTime::now());
                }
                self.run(&task, &version, &input).await
            }
            Ok(_) => Outcome::Cancelled,
            Err(outcome) => outcome.clone(),
        };
        let outcome = match outcome {
            // Left as recorded: the next start takes it up.
            Outcome::Cancelled if task.durable && task.was_shut_down() => Outcome::Interrupted(SHUT_DOWN.to_owned()),
            outcome => {
                if task.durable {
                    self.store.finished(task.id, SystemTime::now(), TaskEnd::of(&outcome));
                }
                outcome
            }
        };
        // Slots are free before the end is visible: whoever sees the task end and submits
        // another finds them free.
        if let Ok(permits) = permits {
            self.release(&task.plugin, permits);
        }
        tracing::debug!(task = %task.id, plugin = %task.plugin, outcome = %outcome.describe(), "task ended");
        task.finish(outcome);
        self.retire(&task);
    }

    /// Runs a started task to its end, within its own deadline or the one it inherited.
    async fn run(self: &Arc<Self>, task: &Arc<Task>, version: &LoadedVersion, input: &[u8]) -> Outcome {
        let budget = task
            .deadline()
            .map_or(task.timeout, |deadline| deadline.saturating_duration_since(tokio::time::Instant::now()));
        let invocation = self.capabilities.prepare(&version.capabilities, task.clone(), self.clone());
        let outcome = tokio::select! {
            _ = task.cancellation().cancelled() => Outcome::Cancelled,
            outcome = self.runtime.invoke(&version.linked, invocation, input, budget) => {
                self.lanes.record(&task.plugin, &outcome, task.exceeded_log_lines());
                outcome
            }
        };
        let inherited = budget < task.timeout;
        match outcome {
            Outcome::TimedOut { ran, .. } => Outcome::TimedOut { ran, inherited },
            // A guest that fails at its deadline (a child ending on the same deadline, a
            // request cut short by it) reached its deadline: that is how it ended.
            Outcome::Failed(_) if task.deadline().is_some_and(|deadline| tokio::time::Instant::now() >= deadline) => {
                Outcome::TimedOut { ran: budget, inherited }
            }
            other => other,
        }
    }

    async fn acquire(&self, plugin: &str, max_concurrency: u32, lane: Lane) -> Permits {
        let (per_plugin, turn) = self.plugin_slots(plugin, max_concurrency);
        // The semaphores are never closed, so acquiring cannot fail.
        let plugin_permit = per_plugin.acquire_owned().await.expect("per-plugin semaphore is never closed");
        let background = match lane {
            Lane::Foreground => None,
            Lane::Background => Some(
                self.lanes
                    .background_slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("background semaphore is never closed"),
            ),
        };
        // One task per plugin at a time queues for a running slot: free slots go round the
        // plugins that want one, so a plugin with thousands of queued tasks (a spawn bomb,
        // a batch) cannot make another plugin's tasks wait behind all of them.
        let _turn = turn.lock().await;
        let global = self.running.clone().acquire_owned().await.expect("global semaphore is never closed");
        Permits { plugin: plugin_permit, background, global }
    }

    fn release(&self, plugin: &str, permits: Permits) {
        let Permits { plugin: plugin_permit, background, global } = permits;
        self.release_plugin_slot(plugin, plugin_permit);
        drop((background, global));
    }

    /// The plugin's semaphore, resized first if its live version wants another size: grown at
    /// once; shrunk by taking free permits away now and the rest as running tasks give them
    /// back, before any waiting task can have them.
    fn plugin_slots(&self, plugin: &str, size: u32) -> (Arc<Semaphore>, Arc<tokio::sync::Mutex<()>>) {
        let mut per_plugin = self.per_plugin.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = per_plugin.get(plugin)
            && slots.size == size
        {
            return (slots.semaphore.clone(), slots.turn.clone());
        }
        let slots = per_plugin.entry(plugin.to_owned()).or_insert_with(|| PluginSlots {
            size,
            owed: 0,
            semaphore: Arc::new(Semaphore::new(size as usize)),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        });
        if size > slots.size {
            let mut grow = size - slots.size;
            let forgiven = grow.min(slots.owed);
            slots.owed -= forgiven;
            grow -= forgiven;
            slots.semaphore.add_permits(grow as usize);
        } else {
            for _ in size..slots.size {
                match slots.semaphore.try_acquire() {
                    Ok(permit) => permit.forget(),
                    Err(_) => slots.owed += 1,
                }
            }
        }
        slots.size = size;
        (slots.semaphore.clone(), slots.turn.clone())
    }

    /// Gives a plugin slot back, unless a shrink is still owed one.
    fn release_plugin_slot(&self, plugin: &str, permit: OwnedSemaphorePermit) {
        let mut per_plugin = self.per_plugin.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = per_plugin.get_mut(plugin)
            && slots.owed > 0
            && Arc::ptr_eq(permit.semaphore(), &slots.semaphore)
        {
            slots.owed -= 1;
            permit.forget();
        }
    }

    /// Counts a task that ended and keeps it among the finished ones.
    fn retire(&self, task: &Task) {
        {
            let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
            match task.state() {
                TaskState::Succeeded => ended.succeeded += 1,
                TaskState::Failed => ended.failed += 1,
                TaskState::Cancelled => ended.cancelled += 1,
                TaskState::TimedOut => ended.timed_out += 1,
                TaskState::Interrupted => ended.interrupted += 1,
                TaskState::Queued | TaskState::Running => {}
            }
        }
        self.keep_finished(task.id);
    }

    /// Keeps a finished task for the API; the oldest go beyond the retention limits.
    fn keep_finished(&self, id: TaskId) {
        let forgotten = {
            let mut table = self.table();
            table.finished.push_back(id);
            let mut forgotten = self.forget_expired(&mut table);
            while table.finished.len() > self.limits.retain_finished_tasks as usize {
                if let Some(oldest) = table.finished.pop_front() {
                    forgotten.extend(table.by_id.remove(&oldest));
                }
            }
            forgotten
        };
        drop(forgotten);
    }

    /// Takes out of the table the finished tasks that ended longer ago than they are kept,
    /// oldest first. The caller drops them once the table's lock is released: after an idle
    /// hour that can be thousands of tasks, and every submission waits on that lock.
    #[must_use = "drop the expired tasks after releasing the table's lock"]
    fn forget_expired(&self, table: &mut TaskTable) -> Vec<Arc<Task>> {
        let mut expired = Vec::new();
        let Some(horizon) = SystemTime::now().checked_sub(self.keep_finished_for) else {
            return expired;
        };
        while let Some(oldest) = table.finished.front().copied() {
            let ended_at = table.by_id.get(&oldest).and_then(|t| t.finished_at());
            if ended_at.is_some_and(|at| at >= horizon) {
                break;
            }
            table.finished.pop_front();
            expired.extend(table.by_id.remove(&oldest));
        }
        expired
    }

    fn table(&self) -> std::sync::MutexGuard<'_, TaskTable> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Spawner for Scheduler {
    fn spawn(&self, parent: &Task, plugin: &str, input: Bytes) -> Result<Arc<Task>, SpawnError> {
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
