//! `[limits]`: admission, task and request limits, each with its default.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::{DAY_SECS, DEFAULT_LISTEN_BACKLOG, MAX_MIB, MIB, positive, within};

/// Most tasks one host may run at once: the instance pool is sized for all of them at start
/// (a million slots already reserve terabytes of address space).
const MAX_RUNNING_TASKS: u32 = 1_000_000;

/// Most items a list page may be set to hold: one page is built in one go.
const MAX_LIST_PAGE: u32 = 100_000;
/// Most linear memories a task's component may have: each running slot reserves room for all.
const MAX_MEMORIES_PER_TASK: u32 = 16;
/// Most core instances a task's component may have (a Python application with `numpy` has 34).
const MAX_CORE_INSTANCES_PER_TASK: u32 = 1_000;
/// Most tables a task's component may have: each running slot reserves room for all.
const MAX_TABLES_PER_TASK: u32 = 64;

/// Admission, task and request limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Tasks running at once across all plugins; also sizes the instance pool.
    pub max_running_tasks: u32,
    /// Tasks of one plugin running at once (at most `max_running_tasks`).
    pub max_running_per_plugin: Option<u32>,
    /// Accepted tasks waiting for a slot; beyond this, submissions get 429.
    pub max_queued_tasks: u32,
    /// Wall-clock limit of one task, from its start.
    pub task_timeout_secs: u64,
    /// Memory one task may use: all the linear memories and tables of its component together.
    pub task_memory_mb: u64,
    /// Linear memories one task's component may have; a component with more is refused at
    /// upload. Each running slot reserves address space for this many.
    pub max_memories_per_task: u32,
    /// Core module instances one task's component may have (a Rust component has 3, a
    /// Python one 14); a component with more is refused at upload. The pool holds this many
    /// for every running slot, which costs only bookkeeping.
    pub max_core_instances_per_task: u32,
    /// Tables one task's component may have (Rust, Python and JavaScript components have 2);
    /// a component with more is refused at upload. Each running slot reserves address space
    /// for this many.
    pub max_tables_per_task: u32,
    /// Largest component upload.
    pub max_component_mb: u64,
    /// Largest task input (request body of `run` and `tasks`).
    pub max_input_mb: u64,
    /// Most tasks one `tasks:batch` request may submit.
    pub max_batch_tasks: u32,
    /// Largest `tasks:batch` request body.
    pub max_batch_mb: u64,
    /// Longest `?wait=` a long-poll may ask for.
    pub max_wait_secs: u64,
    /// Finished tasks kept in memory, and recorded ones in the store, for `GET /v1/tasks/{id}`;
    /// the oldest go first.
    pub retain_finished_tasks: u32,
    /// Events (logs, progress) kept per task for late subscribers; older ones are dropped.
    pub events_per_task: u32,
    /// How deep tasks may spawn tasks that spawn tasks.
    pub max_spawn_depth: u32,
    /// Versions kept per plugin for rollback; the oldest non-live ones are pruned.
    pub versions_per_plugin: u32,
    /// On SIGTERM/SIGINT, how long running tasks may take to finish before they are cancelled.
    pub shutdown_grace_secs: u64,
    /// New connections waiting to be accepted (the kernel caps it at net.core.somaxconn).
    pub listen_backlog: u32,
    /// Threads tasks run on, apart from the API's; one per CPU if unset.
    pub task_threads: Option<u32>,
    /// Largest output a task may return.
    pub max_output_mb: u64,
    /// Log lines (log calls and stdout/stderr lines) kept per task; the rest are counted.
    pub max_log_lines: u64,
    /// Tasks in one tree of spawned tasks (the first included).
    pub max_tasks_per_tree: u32,
    /// Call stack of one task's WebAssembly code.
    pub task_stack_kb: u64,
    /// Tokens that may exist at once (`/v1/tokens`).
    pub max_tokens: u32,
    /// How long a plugin's tasks stay in the background lane after its last task that reached
    /// a limit.
    pub background_secs: u64,
    /// OS priority (nice, 1–19) of the background lane's threads: higher leaves more CPU to
    /// the foreground under load; on an idle host the lane gets all of it either way.
    pub background_nice: i32,
    /// Running slots the background lane may hold; three quarters of `max_running_tasks`
    /// if unset.
    pub background_max_running: Option<u32>,
    /// Linear memory of a finished task reset in place (only the pages it wrote) instead of
    /// given back to the kernel, per instance slot: faster instantiation, at the price of
    /// that much resident memory per slot used.
    pub memory_keep_resident_kb: u64,
    /// Most runs a plugin with `on_interrupt = "retry"` may ask for (its `max_attempts`).
    pub max_task_attempts: u32,
    /// Schedules that may exist at once.
    pub max_schedules: u32,
    /// Outputs and events of finished tasks kept in memory, in total; beyond it the oldest
    /// let go of theirs (outputs are then read from the store when asked for).
    pub finished_memory_mb: u64,
    /// Inputs of queued tasks kept in memory, in total; the inputs of recorded tasks beyond
    /// it are read back from the store when they start.
    pub queued_inputs_memory_mb: u64,
    /// Most tasks or schedules one page of `GET /v1/tasks` or `GET /v1/schedules` holds.
    pub max_list_page: u32,
    /// How long an upload's validation (compiling the component and instantiating it once)
    /// may take before the upload is refused.
    pub upload_validation_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_running_tasks: 1024,
            max_running_per_plugin: None,
            max_queued_tasks: 10_000,
            task_timeout_secs: 300,
            task_memory_mb: 128,
            max_memories_per_task: 1,
            max_core_instances_per_task: 32,
            max_tables_per_task: 4,
            max_component_mb: 64,
            max_input_mb: 4,
            max_batch_tasks: 10_000,
            max_batch_mb: 64,
            max_wait_secs: 60,
            retain_finished_tasks: 10_000,
            events_per_task: 1_000,
            max_spawn_depth: 8,
            versions_per_plugin: 10,
            shutdown_grace_secs: 30,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            task_threads: None,
            max_output_mb: 16,
            max_log_lines: 100_000,
            max_tasks_per_tree: 1_000,
            task_stack_kb: 512,
            max_tokens: 1_000,
            background_secs: 60,
            background_nice: 19,
            background_max_running: None,
            memory_keep_resident_kb: 4096,
            max_task_attempts: 10,
            max_schedules: 1_000,
            finished_memory_mb: 256,
            queued_inputs_memory_mb: 256,
            max_list_page: 1_000,
            upload_validation_timeout_secs: 60,
        }
    }
}

impl Limits {
    pub fn task_timeout(&self) -> Duration {
        Duration::from_secs(self.task_timeout_secs)
    }

    pub fn upload_validation_timeout(&self) -> Duration {
        Duration::from_secs(self.upload_validation_timeout_secs)
    }

    pub fn task_memory_bytes(&self) -> usize {
        usize::try_from(self.task_memory_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_component_bytes(&self) -> usize {
        usize::try_from(self.max_component_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_output_bytes(&self) -> usize {
        usize::try_from(self.max_output_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_batch_bytes(&self) -> usize {
        usize::try_from(self.max_batch_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn max_input_bytes(&self) -> usize {
        usize::try_from(self.max_input_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn finished_memory_bytes(&self) -> usize {
        usize::try_from(self.finished_memory_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn queued_inputs_memory_bytes(&self) -> usize {
        usize::try_from(self.queued_inputs_memory_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub fn task_threads(&self) -> usize {
        match self.task_threads {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    pub fn background_max_running(&self) -> u32 {
        self.background_max_running.unwrap_or_else(|| self.max_running_tasks.saturating_mul(3).div_ceil(4).max(1))
    }

    /// At most the task memory: more could never be written.
    pub fn memory_keep_resident_bytes(&self) -> usize {
        usize::try_from(self.memory_keep_resident_kb.saturating_mul(1024))
            .unwrap_or(usize::MAX)
            .min(self.task_memory_bytes())
    }

    pub fn running_per_plugin(&self) -> u32 {
        self.max_running_per_plugin.unwrap_or(self.max_running_tasks)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !(1..=MAX_RUNNING_TASKS).contains(&self.max_running_tasks) {
            bail!(
                "limits.max_running_tasks must be between 1 and {MAX_RUNNING_TASKS} (got {}): it sizes the instance pool",
                self.max_running_tasks
            );
        }
        for (key, value) in [
            ("limits.max_queued_tasks", self.max_queued_tasks.into()),
            ("limits.max_batch_tasks", self.max_batch_tasks.into()),
            ("limits.max_tokens", self.max_tokens.into()),
            ("limits.max_task_attempts", self.max_task_attempts.into()),
            ("limits.max_schedules", self.max_schedules.into()),
            ("limits.events_per_task", self.events_per_task.into()),
            ("limits.versions_per_plugin", self.versions_per_plugin.into()),
            ("limits.listen_backlog", self.listen_backlog.into()),
            ("limits.max_tasks_per_tree", self.max_tasks_per_tree.into()),
        ] {
            positive(key, value)?;
        }
        for (key, value, range) in [
            ("limits.task_timeout_secs", self.task_timeout_secs, 1..=30 * DAY_SECS),
            ("limits.max_wait_secs", self.max_wait_secs, 0..=3600),
            ("limits.shutdown_grace_secs", self.shutdown_grace_secs, 0..=DAY_SECS),
            ("limits.background_secs", self.background_secs, 0..=DAY_SECS),
            ("limits.max_component_mb", self.max_component_mb, 1..=MAX_MIB),
            ("limits.max_input_mb", self.max_input_mb, 1..=MAX_MIB),
            ("limits.max_batch_mb", self.max_batch_mb, 1..=MAX_MIB),
            ("limits.max_output_mb", self.max_output_mb, 1..=MAX_MIB),
            ("limits.finished_memory_mb", self.finished_memory_mb, 0..=MAX_MIB),
            ("limits.queued_inputs_memory_mb", self.queued_inputs_memory_mb, 0..=MAX_MIB),
            ("limits.upload_validation_timeout_secs", self.upload_validation_timeout_secs, 1..=3600),
        ] {
            within(key, value, range)?;
        }
        if !(1..=MAX_LIST_PAGE).contains(&self.max_list_page) {
            bail!("limits.max_list_page must be between 1 and {MAX_LIST_PAGE} (got {})", self.max_list_page);
        }
        if !(64..=16_384).contains(&self.task_stack_kb) {
            bail!("limits.task_stack_kb must be between 64 and 16384 (got {})", self.task_stack_kb);
        }
        if self.task_threads == Some(0) {
            bail!("limits.task_threads must be at least 1 (leave it out for one per CPU)");
        }
        if !(1..=4096).contains(&self.task_memory_mb) {
            bail!("limits.task_memory_mb must be between 1 and 4096 (got {})", self.task_memory_mb);
        }
        if !(1..=MAX_MEMORIES_PER_TASK).contains(&self.max_memories_per_task) {
            bail!(
                "limits.max_memories_per_task must be between 1 and {MAX_MEMORIES_PER_TASK} (got {})",
                self.max_memories_per_task
            );
        }
        if !(1..=MAX_CORE_INSTANCES_PER_TASK).contains(&self.max_core_instances_per_task) {
            bail!(
                "limits.max_core_instances_per_task must be between 1 and {MAX_CORE_INSTANCES_PER_TASK} (got {})",
                self.max_core_instances_per_task
            );
        }
        if !(1..=MAX_TABLES_PER_TASK).contains(&self.max_tables_per_task) {
            bail!(
                "limits.max_tables_per_task must be between 1 and {MAX_TABLES_PER_TASK} (got {})",
                self.max_tables_per_task
            );
        }
        if !(1..=19).contains(&self.background_nice) {
            bail!("limits.background_nice must be between 1 and 19 (got {})", self.background_nice);
        }
        for (key, value) in [
            ("background_max_running", self.background_max_running),
            ("max_running_per_plugin", self.max_running_per_plugin),
        ] {
            if let Some(value) = value
                && (value == 0 || value > self.max_running_tasks)
            {
                bail!(
                    "limits.{key} must be between 1 and limits.max_running_tasks ({}), got {value}",
                    self.max_running_tasks
                );
            }
        }
        Ok(())
    }
}
