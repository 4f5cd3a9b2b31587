//! Task payloads (inputs and outputs) that need not sit in memory. A queued task's input is
//! held within `limits.queued_inputs_memory_mb` for all queued tasks together; beyond it, a
//! recorded task's input stays in the store only and is read back when the task starts. (A
//! task that is not recorded has no copy elsewhere: its input is held and counted whatever
//! the budget, and the queue's limit bounds those.) A finished task's output that the task
//! table let go of is read from the store when asked for.

use bytes::Bytes;
use std::sync::atomic::Ordering;

use super::Scheduler;
use crate::runtime::{Call, Exchange};
use crate::store::{Store, StoreError};
use crate::task::{Failure, FailureKind, Outcome, Task, TaskId, TaskState};

/// A queued task's input.
pub(super) enum Input {
    /// In memory, counted against the budget while the task is queued.
    Held(Bytes),
    /// In the store only: read back when the task starts.
    Stored,
    /// A request for an HTTP plugin, its caller waiting for the answer.
    Exchange(Box<Exchange>),
}

impl Scheduler {
    /// Holds a queued task's input in memory if it fits the budget, or if the task is not
    /// `recorded` (it would be lost otherwise); else leaves it to the store.
    pub(super) fn hold_input(&self, input: Bytes, recorded: bool) -> Input {
        let budget = self.limits.queued_inputs_memory_bytes();
        let len = input.len();
        let fits = self
            .queued_input_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let total = held.saturating_add(len);
                (total <= budget || !recorded).then_some(total)
            })
            .is_ok();
        if fits { Input::Held(input) } else { Input::Stored }
    }

    /// The task has left the queue: its input no longer counts against the budget.
    pub(super) fn unqueue_input(&self, input: &Input) {
        if let Input::Held(bytes) = input {
            self.queued_input_bytes.fetch_sub(bytes.len(), Ordering::AcqRel);
        }
    }

    /// What a starting task is called with: its input, read back from the store if it was
    /// left there (a failure to read it ends the task), or its request.
    pub(super) async fn take_input(&self, task: &Task, input: Input) -> Result<Call, Outcome> {
        match input {
            Input::Held(bytes) => return Ok(Call::Run(bytes)),
            Input::Exchange(exchange) => return Ok(Call::Serve(exchange)),
            Input::Stored => {}
        }
        let cannot_start = |why: String| {
            Outcome::Failed(Failure {
                kind: FailureKind::Instantiate,
                message: format!("the task's input cannot be read back from the store: {why}"),
            })
        };
        match read(&self.store, task.id, |store, id| store.input(id)).await {
            Ok(Some(input)) => Ok(Call::Run(input)),
            Ok(None) => Err(cannot_start("it is not recorded".to_owned())),
            Err(e) => Err(cannot_start(e.to_string())),
        }
    }

    /// A succeeded task's output: from memory, or from the store if the task let go of it
    /// (only a task whose end the store committed does). `OutputLost` if the store has the
    /// end but no longer the output.
    pub async fn output(&self, task: &Task) -> Result<Option<Bytes>, StoreError> {
        // Held, or let go of since: the mark is set before the output is taken.
        if let Some(output) = task.output() {
            return Ok(Some(output));
        }
        if !task.output_in_store() {
            return Ok(None);
        }
        match read(&self.store, task.id, |store, id| store.output(id)).await? {
            Some(end) if end.state == TaskState::Succeeded => Ok(end.output),
            Some(end) => Err(StoreError::OutputLost(end.message.unwrap_or_default())),
            None => Err(StoreError::OutputLost(format!("the end of task {} is not in the store", task.id))),
        }
    }
}

/// One read of the store, off the async threads (it may read a file of many megabytes).
pub(super) async fn read<T: Send + 'static>(
    store: &std::sync::Arc<dyn Store>,
    id: TaskId,
    query: impl FnOnce(&dyn Store, TaskId) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || query(store.as_ref(), id))
        .await
        .map_err(|e| StoreError::Backend(format!("a read of the store was abandoned: {e}").into()))?
}
