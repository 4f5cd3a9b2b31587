//! The task table: every task the API can still see, by id. Tasks stay while queued or
//! running; finished ones are forgotten oldest first beyond `limits.retain_finished_tasks`,
//! and once they ended longer ago than `store.retain_finished_secs`.
//!
//! What finished tasks hold in memory (outputs, events) is kept within
//! `limits.finished_memory_mb` in total: beyond it, the oldest let go of theirs. A recorded
//! task's output is then read from the store when asked for; a task that is not recorded
//! (run synchronously, or spawned) has nothing to read back, so it is forgotten instead.
//!
//! Forgotten tasks are dropped after the table's lock is released: after an idle hour that
//! can be thousands of tasks, and every submission waits on that lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::task::{Released, Task, TaskId};

pub struct TaskTable {
    inner: Mutex<Inner>,
    retain: usize,
    keep_for: Duration,
    /// Bytes finished tasks may hold in memory, in total.
    budget: usize,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<TaskId, Arc<Task>>,
    /// Finished tasks, oldest first.
    finished: VecDeque<TaskId>,
    /// Finished tasks still holding their output and events, oldest first, with what they
    /// hold: a subsequence of `finished`.
    holding: VecDeque<(TaskId, usize)>,
    /// The sum of what `holding` holds.
    held: usize,
}

/// What leaves the table under its lock, to be dropped once the lock is released.
type Leaving = (Vec<Arc<Task>>, Vec<Released>);

impl TaskTable {
    /// A table that keeps at most `retain` finished tasks, each for at most `keep_for`, which
    /// hold at most `budget` bytes of outputs and events in total.
    pub fn new(retain: usize, keep_for: Duration, budget: usize) -> Self {
        Self { inner: Mutex::default(), retain, keep_for, budget }
    }

    pub fn insert(&self, task: Arc<Task>) {
        self.inner.lock().by_id.insert(task.id, task);
    }

    pub fn get(&self, id: TaskId) -> Option<Arc<Task>> {
        let (task, _expired) = {
            let mut inner = self.inner.lock();
            let expired = self.forget_expired(&mut inner);
            (inner.by_id.get(&id).cloned(), expired)
        };
        task
    }

    /// The most recent tasks first (by submission time, then id) among those `filter`
    /// keeps, at most `limit`, starting after `after` if given.
    pub fn list(
        &self,
        filter: impl Fn(&Task) -> bool,
        after: Option<(SystemTime, TaskId)>,
        limit: usize,
    ) -> Vec<Arc<Task>> {
        let key = |t: &Task| (t.submitted_at, t.id);
        let (mut tasks, _expired) = {
            let mut inner = self.inner.lock();
            let expired = self.forget_expired(&mut inner);
            let tasks: Vec<Arc<Task>> = inner
                .by_id
                .values()
                .filter(|t| after.is_none_or(|after| key(t) < after) && filter(t))
                .cloned()
                .collect();
            (tasks, expired)
        };
        tasks.sort_unstable_by_key(|t| std::cmp::Reverse(key(t)));
        tasks.truncate(limit);
        tasks
    }

    /// Tasks not ended yet.
    pub fn unfinished(&self) -> Vec<Arc<Task>> {
        self.inner.lock().by_id.values().filter(|t| !t.state().is_final()).cloned().collect()
    }

    /// Keeps a task that has ended among the finished ones; the oldest go beyond the
    /// retention limits.
    pub fn keep_finished(&self, id: TaskId) {
        let leaving: Leaving = {
            let mut inner = self.inner.lock();
            inner.finished.push_back(id);
            if let Some(bytes) = inner.by_id.get(&id).map(|task| task.releasable_bytes()) {
                inner.holding.push_back((id, bytes));
                inner.held += bytes;
            }
            let mut forgotten = self.forget_expired(&mut inner);
            while inner.finished.len() > self.retain {
                if let Some(oldest) = inner.finished.pop_front() {
                    forgotten.extend(forget(&mut inner, oldest));
                }
            }
            let released = self.release_over_budget(&mut inner, &mut forgotten);
            (forgotten, released)
        };
        drop(leaving);
    }

    /// Makes the oldest finished tasks let go of their outputs and events until the rest fit
    /// the budget; those that are not recorded are forgotten.
    fn release_over_budget(&self, inner: &mut Inner, forgotten: &mut Vec<Arc<Task>>) -> Vec<Released> {
        let mut released = Vec::new();
        while inner.held > self.budget
            && let Some((oldest, bytes)) = inner.holding.pop_front()
        {
            inner.held -= bytes;
            match inner.by_id.get(&oldest).map(|task| (task.end_recorded(), task.clone())) {
                Some((true, task)) => released.push(task.release_memory()),
                Some((false, _)) => forgotten.extend(inner.by_id.remove(&oldest)),
                None => {}
            }
        }
        released
    }

    /// Takes out the finished tasks that ended longer ago than they are kept, oldest first,
    /// for the caller to drop once the lock is released.
    #[must_use = "drop the expired tasks after releasing the table's lock"]
    fn forget_expired(&self, inner: &mut Inner) -> Vec<Arc<Task>> {
        let mut expired = Vec::new();
        let Some(horizon) = SystemTime::now().checked_sub(self.keep_for) else {
            return expired;
        };
        while let Some(oldest) = inner.finished.front().copied() {
            let ended_at = inner.by_id.get(&oldest).and_then(|t| t.finished_at());
            if ended_at.is_some_and(|at| at >= horizon) {
                break;
            }
            inner.finished.pop_front();
            expired.extend(forget(inner, oldest));
        }
        expired
    }
}

/// Takes the oldest finished task out of the table, and out of those holding memory.
fn forget(inner: &mut Inner, oldest: TaskId) -> Option<Arc<Task>> {
    if inner.holding.front().is_some_and(|(id, _)| *id == oldest)
        && let Some((_, bytes)) = inner.holding.pop_front()
    {
        inner.held -= bytes;
    }
    inner.by_id.remove(&oldest)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::task::{Origin, Outcome};

    fn new_task(plugin: &str) -> Task {
        Task::new(plugin.into(), "v1".into(), Origin::Caller(None), Duration::from_mins(1), 16, 100)
    }

    fn task(plugin: &str) -> Arc<Task> {
        Arc::new(new_task(plugin))
    }

    /// A task ended; a durable one as the store committed it.
    fn ended(table: &TaskTable, task: Task, outcome: Outcome) -> Arc<Task> {
        let task = Arc::new(task);
        table.insert(task.clone());
        if task.durable {
            task.end_was_recorded();
        }
        task.finish(outcome);
        table.keep_finished(task.id);
        task
    }

    fn finished(table: &TaskTable, plugin: &str) -> TaskId {
        ended(table, new_task(plugin), Outcome::Cancelled).id
    }

    #[test]
    fn beyond_the_budget_the_oldest_let_go_of_outputs_or_are_forgotten() {
        let table = TaskTable::new(100, Duration::from_hours(1), 2_500);
        let output = || Outcome::Succeeded(Bytes::from(vec![b'1'; 1_000]));
        let recorded = ended(&table, new_task("a").durable(), output());
        let unrecorded = ended(&table, new_task("a"), output());
        assert!(recorded.output().is_some() && !recorded.output_in_store(), "within the budget");
        ended(&table, new_task("a").durable(), output());
        assert!(recorded.output().is_none() && recorded.output_in_store(), "read from the store from now on");
        assert!(table.get(recorded.id).is_some() && table.get(unrecorded.id).is_some());
        let newest = ended(&table, new_task("a").durable(), output());
        assert!(table.get(unrecorded.id).is_none(), "nothing to read back: forgotten");
        assert_eq!(newest.output().map(|o| o.len()), Some(1_000));
    }

    #[test]
    fn a_task_whose_end_the_store_did_not_commit_never_lets_go_of_its_output() {
        let table = TaskTable::new(100, Duration::from_hours(1), 1_500);
        let uncommitted = Arc::new(new_task("a").durable());
        table.insert(uncommitted.clone());
        uncommitted.finish(Outcome::Succeeded(Bytes::from(vec![b'1'; 1_000])));
        table.keep_finished(uncommitted.id);
        ended(&table, new_task("a").durable(), Outcome::Succeeded(Bytes::from(vec![b'1'; 1_000])));
        assert!(!uncommitted.output_in_store(), "the store has no output to read back");
        assert!(table.get(uncommitted.id).is_none(), "over the budget it is forgotten instead");
    }

    #[test]
    fn finished_tasks_beyond_the_count_are_forgotten_oldest_first() {
        let table = TaskTable::new(2, Duration::from_hours(1), usize::MAX);
        let running = task("a");
        table.insert(running.clone());
        let ids: Vec<TaskId> = (0..3).map(|_| finished(&table, "a")).collect();
        assert!(table.get(ids[0]).is_none(), "the oldest finished task is forgotten");
        assert!(table.get(ids[1]).is_some() && table.get(ids[2]).is_some());
        assert!(table.get(running.id).is_some(), "an unfinished task is never forgotten");
        assert_eq!(table.unfinished().len(), 1);
    }

    #[test]
    fn finished_tasks_are_forgotten_once_older_than_kept() {
        let table = TaskTable::new(100, Duration::from_millis(50), usize::MAX);
        let old = finished(&table, "a");
        std::thread::sleep(Duration::from_millis(80));
        let recent = finished(&table, "a");
        assert!(table.get(old).is_none(), "ended 80 ms ago, kept for 50 ms");
        assert!(table.get(recent).is_some());
    }

    #[test]
    fn listings_filter_and_show_the_newest_first() {
        let table = TaskTable::new(100, Duration::from_hours(1), usize::MAX);
        let first = finished(&table, "a");
        std::thread::sleep(Duration::from_millis(2));
        let _other = finished(&table, "b");
        std::thread::sleep(Duration::from_millis(2));
        let last = finished(&table, "a");
        let listed: Vec<TaskId> = table.list(|t| t.plugin == "a", None, 10).iter().map(|t| t.id).collect();
        assert_eq!(listed, [last, first]);
        let page = table.list(|_| true, None, 1);
        assert_eq!(page.len(), 1);
        let rest: Vec<TaskId> =
            table.list(|_| true, Some((page[0].submitted_at, page[0].id)), 10).iter().map(|t| t.id).collect();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest.last(), Some(&first));
    }
}
