//! Taking up recorded tasks when the host starts: the recently finished ones for the API to
//! show, the queued ones to run, and those that were running when the host stopped as their
//! plugin's `on_interrupt` policy says (`fail`: they end `interrupted`; `retry`: they run
//! again, up to `max_attempts` runs in all). Unfinished ones are taken up as the queue has
//! room for them (see `backlog`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::Scheduler;
use super::payloads::Input;
use crate::manifest::OnInterrupt;
use crate::registry::LoadedVersion;
use crate::store::{StoreError, TaskEnd, TaskRecord};
use crate::task::events::Level;
use crate::task::{Origin, Outcome, Recorded, Task, TaskState};

/// What [`Scheduler::recover`] found in the task store.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recovered {
    /// Finished tasks loaded for the API to show.
    pub finished: usize,
    /// Queued tasks queued again.
    pub queued: usize,
    /// Tasks that were running, queued again to run once more (`on_interrupt = "retry"`).
    pub retried: usize,
    /// Tasks that were running and end `interrupted` (`fail`, attempts used up, plugin gone).
    pub interrupted: usize,
    /// Tasks of plugins that could not be loaded, left in the store as they are, for a start
    /// that can load them.
    pub left: usize,
}

/// Why a task that was running when the host stopped is not run again.
fn interrupted_reason(version: &LoadedVersion, attempts: u32) -> String {
    match version.limits.on_interrupt {
        OnInterrupt::Fail => format!(
            "the host stopped while the task was running (attempt {attempts}); plugin {:?} has on_interrupt = \"fail\", so it is not run again",
            version.plugin
        ),
        OnInterrupt::Retry => format!(
            "the host stopped while the task was running, and it has used all {attempts} of its attempts (max_attempts)"
        ),
    }
}

impl Scheduler {
    /// Takes up the recorded tasks at start: the recently finished ones for the API to show,
    /// the queued ones to run, and those that were running when the host stopped as their
    /// plugin's `on_interrupt` policy says.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let mut recovered = Recovered::default();
        for record in self.store.recent_finished(self.limits.retain_finished_tasks as usize)? {
            self.remember_finished(Arc::new(self.as_recorded(&record)));
            recovered.finished += 1;
        }
        self.open_backlog()?;
        self.take_up_backlog(&mut recovered)?;
        Ok(recovered)
    }

    /// Takes up one recorded unfinished task (counted among the queued ones): queued again,
    /// or ended if it cannot run again.
    pub(super) fn take_up(&self, record: &TaskRecord, recovered: &mut Recovered) {
        match self.registry.live(&record.plugin) {
            None if self.registry.unavailable_reason(&record.plugin).is_some() => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                recovered.left += 1;
            }
            None => {
                self.end_unrunnable(
                    record,
                    format!("plugin {:?} no longer exists, so the task cannot run", record.plugin),
                );
                recovered.interrupted += 1;
            }
            Some(version) if record.state == TaskState::Running && record.attempts >= version.limits.max_attempts => {
                self.end_unrunnable(record, interrupted_reason(&version, record.attempts));
                recovered.interrupted += 1;
            }
            Some(version) => {
                if record.state == TaskState::Running {
                    self.store.requeued(record.id);
                    recovered.retried += 1;
                } else {
                    recovered.queued += 1;
                }
                self.resume(record, version);
            }
        }
    }

    /// A task as its record reads: ended as recorded, its output (if any) left in the store;
    /// or, unfinished, queued (a task recorded as running is queued again when taken up).
    pub(super) fn as_recorded(&self, record: &TaskRecord) -> Task {
        if record.end.is_none() {
            return self.recorded_task(record);
        }
        let outcome = record.outcome();
        let succeeded = outcome.state() == TaskState::Succeeded;
        let task = self.recorded_task(record).ended(record.started_at, record.finished_at, outcome);
        if succeeded { task.output_left_in_store() } else { task }
    }

    /// A task as recorded, not yet started.
    pub(super) fn recorded_task(&self, record: &TaskRecord) -> Task {
        let owner = Origin::Caller(record.owner.as_deref().map(Arc::from));
        Task::new(
            record.plugin.clone(),
            record.version.as_str().into(),
            owner,
            record.timeout,
            self.limits.events_per_task as usize,
            self.limits.max_log_lines,
        )
        .resumed(Recorded {
            id: record.id,
            submitted_at: record.submitted_at,
            attempts: record.attempts,
            schedule: record.schedule.as_deref().map(Arc::from),
        })
    }

    /// Queues a recorded task again, on its plugin's live version, its input left in the
    /// store until it starts (its place in the queue was counted with the backlog).
    fn resume(&self, record: &TaskRecord, version: Arc<LoadedVersion>) {
        let task = Arc::new(self.recorded_task(record));
        if record.version != version.info.version {
            task.log(
                Level::Warn,
                format!(
                    "accepted for version {} of {}, run with the live version {}",
                    record.version, record.plugin, version.info.version
                ),
            );
        }
        self.launch(task, version, Input::Stored);
    }

    /// Ends a recorded task that cannot run again, in the store and for the API.
    fn end_unrunnable(&self, record: &TaskRecord, reason: String) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        let now = SystemTime::now();
        let outcome = Outcome::Interrupted(reason);
        // Recorded in the background: an end without output has nothing the store could refuse.
        drop(self.store.finished(record.id, now, TaskEnd::of(&outcome)));
        let task = self.recorded_task(record).ended(record.started_at, Some(now), outcome);
        task.end_was_recorded();
        self.remember_finished(Arc::new(task));
    }

    fn remember_finished(&self, task: Arc<Task>) {
        let id = task.id;
        self.tasks.insert(task);
        self.tasks.keep_finished(id);
    }
}
