//! The task table: every task the API can still see, by id. Tasks stay while queued or
//! running; finished ones are forgotten oldest first beyond `limits.retain_finished_tasks`,
//! and once they ended longer ago than `store.retain_finished_secs`.
//!
//! Forgotten tasks are dropped after the table's lock is released: after an idle hour that
//! can be thousands of tasks, and every submission waits on that lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::task::{Task, TaskId};

pub struct TaskTable {
    inner: Mutex<Inner>,
    retain: usize,
    keep_for: Duration,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<TaskId, Arc<Task>>,
    /// Finished tasks, oldest first.
    finished: VecDeque<TaskId>,
}

impl TaskTable {
    /// A table that keeps at most `retain` finished tasks, each for at most `keep_for`.
    pub fn new(retain: usize, keep_for: Duration) -> Self {
        Self { inner: Mutex::default(), retain, keep_for }
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

    /// The most recent tasks first among those `filter` keeps, at most `limit`.
    pub fn list(&self, filter: impl Fn(&Task) -> bool, limit: usize) -> Vec<Arc<Task>> {
        let (mut tasks, _expired) = {
            let mut inner = self.inner.lock();
            let expired = self.forget_expired(&mut inner);
            let tasks: Vec<Arc<Task>> = inner.by_id.values().filter(|t| filter(t)).cloned().collect();
            (tasks, expired)
        };
        tasks.sort_by_key(|t| std::cmp::Reverse(t.submitted_at));
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
        let forgotten = {
            let mut inner = self.inner.lock();
            inner.finished.push_back(id);
            let mut forgotten = self.forget_expired(&mut inner);
            while inner.finished.len() > self.retain {
                if let Some(oldest) = inner.finished.pop_front() {
                    forgotten.extend(inner.by_id.remove(&oldest));
                }
            }
            forgotten
        };
        drop(forgotten);
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
            expired.extend(inner.by_id.remove(&oldest));
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Origin, Outcome};

    fn task(plugin: &str) -> Arc<Task> {
        Arc::new(Task::new(plugin.into(), "v1".into(), Origin::Caller(None), Duration::from_mins(1), 16, 100))
    }

    fn finished(table: &TaskTable, plugin: &str) -> TaskId {
        let task = task(plugin);
        table.insert(task.clone());
        task.finish(Outcome::Cancelled);
        table.keep_finished(task.id);
        task.id
    }

    #[test]
    fn finished_tasks_beyond_the_count_are_forgotten_oldest_first() {
        let table = TaskTable::new(2, Duration::from_hours(1));
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
        let table = TaskTable::new(100, Duration::from_millis(50));
        let old = finished(&table, "a");
        std::thread::sleep(Duration::from_millis(80));
        let recent = finished(&table, "a");
        assert!(table.get(old).is_none(), "ended 80 ms ago, kept for 50 ms");
        assert!(table.get(recent).is_some());
    }

    #[test]
    fn listings_filter_and_show_the_newest_first() {
        let table = TaskTable::new(100, Duration::from_hours(1));
        let first = finished(&table, "a");
        std::thread::sleep(Duration::from_millis(2));
        let _other = finished(&table, "b");
        std::thread::sleep(Duration::from_millis(2));
        let last = finished(&table, "a");
        let listed: Vec<TaskId> = table.list(|t| t.plugin == "a", 10).iter().map(|t| t.id).collect();
        assert_eq!(listed, [last, first]);
        assert_eq!(table.list(|_| true, 1).len(), 1);
    }
}
