//! The backlog: tasks recorded as unfinished when the host started, beyond the queue's room.
//! They count among the queued tasks, so new submissions are refused while the queue is over
//! `limits.max_queued_tasks`, but they stay in the store and are read a page at a time,
//! oldest first, as the queue drains: a start with a million recorded tasks holds no more of
//! them in memory than the queue's limit, and loses none.
//!
//! The backlog ends where the store's records ended at the start (see [`RecordedBefore`]):
//! tasks this process accepts are in memory, and never taken up a second time from the store,
//! even if the clock steps back. A backlog task the API cancels ends in the store and leaves
//! the count, under the same lock as the loaders take tasks up with.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{CancelError, Recovered, Scheduler};
use crate::store::{RecordedBefore, StoreError, TaskEnd, TaskRecord};
use crate::task::{Outcome, Task, TaskId};

/// Recorded tasks read from the store at once, at most.
const PAGE: usize = 256;

/// Pause before a loader reads the store again after a failed read: nothing else may come to
/// take the backlog up (the queue may hold nothing else to start).
const RETRY_READ: Duration = Duration::from_secs(1);

pub(super) struct Backlog {
    /// Recorded unfinished tasks not taken up yet.
    left: usize,
    /// The last one taken up: submission time, then id.
    after: Option<(SystemTime, TaskId)>,
    /// Tasks recorded from then on were accepted by this process: not part of the backlog.
    before: RecordedBefore,
}

impl Backlog {
    pub(super) fn empty() -> Self {
        Self { left: 0, after: None, before: RecordedBefore::NOTHING }
    }

    /// Whether a recorded unfinished task is among those `left`: recorded before the start,
    /// and not passed by the loaders yet (they leave in the store the tasks of plugins that
    /// cannot be loaded, uncounted).
    fn counts(&self, record: &TaskRecord) -> bool {
        self.before.holds(record) && self.after.is_none_or(|after| (record.submitted_at, record.id) > after)
    }
}

/// What became of a task cancelled while it was not in memory.
pub(super) enum Withdrawn {
    /// A loader had taken it up meanwhile: it is cancelled as any task in memory.
    TakenUp(Arc<Task>),
    /// Ended `cancelled` in the store: the task as it now reads.
    Ended(Arc<Task>),
}

impl Scheduler {
    /// Counts the recorded unfinished tasks into the backlog (and the queue).
    pub(super) fn open_backlog(&self) -> Result<(), StoreError> {
        let before = self.store.recorded_before()?;
        let left = self.store.count_unfinished(&before)?;
        *self.backlog.lock() = Backlog { left, after: None, before };
        self.queued.fetch_add(left, Ordering::AcqRel);
        Ok(())
    }

    /// How many backlog tasks the queue has room for in memory now.
    fn backlog_room(&self) -> usize {
        let backlog = self.backlog.lock();
        let in_memory = self.queued.load(Ordering::Acquire).saturating_sub(backlog.left);
        (self.limits.max_queued_tasks as usize).saturating_sub(in_memory).min(backlog.left).min(PAGE)
    }

    /// Takes up backlog tasks, oldest first, while the queue has room for them in memory; one
    /// caller at a time (the start's recovery and the loaders alike).
    pub(super) fn take_up_backlog(&self, recovered: &mut Recovered) -> Result<(), StoreError> {
        let _taking_up = self.taking_up.lock();
        loop {
            let room = self.backlog_room();
            if room == 0 {
                return Ok(());
            }
            let (after, before) = {
                let backlog = self.backlog.lock();
                (backlog.after, backlog.before)
            };
            let page = self.store.unfinished(after, &before, room)?;
            {
                let mut backlog = self.backlog.lock();
                if page.is_empty() {
                    // Fewer were left than counted: nothing more to wait for.
                    self.queued.fetch_sub(backlog.left, Ordering::AcqRel);
                    backlog.left = 0;
                    return Ok(());
                }
                backlog.left -= page.len().min(backlog.left);
                backlog.after = page.last().map(|record| (record.submitted_at, record.id));
            }
            for record in &page {
                self.take_up(record, recovered);
            }
        }
    }

    /// Cancels a recorded unfinished task that is not in memory (of the backlog, or of a
    /// plugin that could not be loaded): it ends `cancelled` in the store, committed before
    /// this returns, and leaves the backlog's count if it was in it. Under `taking_up`, so that
    /// no loader reads it meanwhile; blocks on the store, so not on an async thread.
    pub(super) fn cancel_recorded(&self, id: TaskId) -> Result<Withdrawn, CancelError> {
        let _taking_up = self.taking_up.lock();
        if let Some(task) = self.tasks.get(id) {
            return Ok(Withdrawn::TakenUp(task));
        }
        let record = self.store.task(id)?.ok_or(CancelError::NotFound(id))?;
        if record.state.is_final() {
            return Err(CancelError::AlreadyFinished(id));
        }
        let now = SystemTime::now();
        // Committed before a loader may read the store again.
        futures::executor::block_on(self.store.finished(id, now, TaskEnd::of(&Outcome::Cancelled)))?;
        {
            let mut backlog = self.backlog.lock();
            if backlog.counts(&record) && backlog.left > 0 {
                backlog.left -= 1;
                self.queued.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.ended.lock().cancelled += 1;
        let task = self.recorded_task(&record).ended(record.started_at, Some(now), Outcome::Cancelled);
        task.end_was_recorded();
        Ok(Withdrawn::Ended(Arc::new(task)))
    }

    /// After a task left the queue: takes up more of the backlog if there is any, off the
    /// async threads, one loader at a time. A failed read is tried again until it succeeds or
    /// the host shuts down.
    pub(super) fn refill_backlog(&self) {
        if self.closed.is_cancelled() || self.backlog.lock().left == 0 || self.loading.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.this.upgrade().expect("the scheduler outlives its tasks");
        tokio::task::spawn_blocking(move || {
            loop {
                if let Err(e) = this.take_up_backlog(&mut Recovered::default()) {
                    if this.closed.is_cancelled() {
                        this.loading.store(false, Ordering::Release);
                        return;
                    }
                    tracing::warn!(error = %e, "cannot read recorded tasks from the store; trying again in a second");
                    std::thread::sleep(RETRY_READ);
                    continue;
                }
                this.loading.store(false, Ordering::Release);
                // Room may have come while this loader was finishing, with nobody to see it.
                if this.backlog_room() == 0 || this.loading.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        });
    }
}
