//! Tasks asked for by id: the one in memory if the table holds it, else the task as the store
//! records it, for as long as the store keeps it. Not every task the store keeps is in memory:
//! those of the backlog wait in the store to be taken up, and finished ones stay there after
//! the table forgot them (its limits are for memory, the store's for keeping). A task read
//! from the store is a snapshot, not put in the table: it changes only once a loader takes it
//! up (then the table holds the task that runs) or it is cancelled in the store.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::backlog::Withdrawn;
use super::payloads::read;
use super::{CancelError, Scheduler};
use crate::store::StoreError;
use crate::task::{Task, TaskId};

/// How often a wait for a task read from the store looks it up again.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

impl Scheduler {
    /// A task by id: from memory, or else as the store records it (an unfinished one reads
    /// `queued` until it is taken up); `None` if neither has it.
    pub async fn find(&self, id: TaskId) -> Result<Option<Arc<Task>>, StoreError> {
        if let Some(task) = self.get(id) {
            return Ok(Some(task));
        }
        let Some(record) = read(&self.store, id, |store, id| store.task(id)).await? else {
            return Ok(None);
        };
        // Taken up while it was read: the task in memory is the one that changes.
        Ok(Some(self.get(id).unwrap_or_else(|| Arc::new(self.as_recorded(&record)))))
    }

    /// Waits up to `within` for a task found with [`Scheduler::find`] to end; the task as it
    /// is then. A snapshot read from the store is looked up again now and then, until it is
    /// taken up (its end is then awaited as any other's) or ends in the store.
    pub async fn wait(&self, mut task: Arc<Task>, within: Duration) -> Arc<Task> {
        let deadline = Instant::now() + within;
        loop {
            let in_memory = self.get(task.id).is_some_and(|held| Arc::ptr_eq(&held, &task));
            if in_memory || task.state().is_final() {
                let _ = tokio::time::timeout_at(deadline, task.finished()).await;
                return task;
            }
            let now = Instant::now();
            if now >= deadline {
                return task;
            }
            tokio::time::sleep_until(deadline.min(now + LOOK_AGAIN)).await;
            match self.find(task.id).await {
                Ok(Some(found)) => task = found,
                // Gone meanwhile, or the store cannot be read now: the task as last seen.
                Ok(None) | Err(_) => return task,
            }
        }
    }

    /// Cancels a task: one in memory stops at once (its driver ends it); one only the store
    /// has as unfinished (of the backlog) ends `cancelled` there, committed before this
    /// returns, and is never taken up.
    pub async fn cancel(&self, id: TaskId) -> Result<Arc<Task>, CancelError> {
        let task = if let Some(task) = self.get(id) {
            task
        } else {
            match self.withdraw(id).await? {
                Withdrawn::Ended(task) => return Ok(task),
                Withdrawn::TakenUp(task) => task,
            }
        };
        if task.state().is_final() {
            return Err(CancelError::AlreadyFinished(id));
        }
        task.cancel();
        Ok(task)
    }

    /// Cancels a task not in memory in the store, off the async threads.
    async fn withdraw(&self, id: TaskId) -> Result<Withdrawn, CancelError> {
        let this = self.this.upgrade().expect("the scheduler outlives its callers");
        tokio::task::spawn_blocking(move || this.cancel_recorded(id))
            .await
            .map_err(|e| CancelError::Store(StoreError::Backend(format!("a cancellation was abandoned: {e}").into())))?
    }
}
