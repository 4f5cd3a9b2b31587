//! Running slots: how many tasks run at once in all (`limits.max_running_tasks`, which also
//! bounds the instance pool), per plugin (its live version's `max_concurrency`), and in the
//! background lane (`limits.background_max_running`).
//!
//! A task waits for its plugin's slot, then (in the background lane) a background slot, then
//! its turn for a global slot: one task per plugin at a time queues for a global slot, so free
//! slots go round the plugins that want one and a plugin with thousands of queued tasks (a
//! spawn bomb, a batch) cannot make another plugin's tasks wait behind all of them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lanes::Lane;

pub struct Slots {
    global: Arc<Semaphore>,
    max_running: usize,
    background: Arc<Semaphore>,
    per_plugin: Arc<Mutex<HashMap<String, PluginSlots>>>,
}

/// Slots of one plugin: sized by its live version's `max_concurrency`, resized when a new
/// version changes it.
struct PluginSlots {
    size: u32,
    /// Permits a shrink still has to take back from running tasks.
    owed: u32,
    semaphore: Arc<Semaphore>,
    /// Held by the one task of this plugin that waits for a global slot.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// What a running task holds, given back when dropped (its plugin slot only if no shrink is
/// owed one), however the task's driver ends: a driver that unwinds gives them back as well.
pub struct Permits {
    /// Taken only when dropped.
    plugin: Option<OwnedSemaphorePermit>,
    plugin_name: Arc<str>,
    per_plugin: Arc<Mutex<HashMap<String, PluginSlots>>>,
    _background: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
}

impl Drop for Permits {
    fn drop(&mut self) {
        let Some(plugin_permit) = self.plugin.take() else { return };
        let mut per_plugin = self.per_plugin.lock();
        if let Some(slots) = per_plugin.get_mut(&*self.plugin_name)
            && slots.owed > 0
            && Arc::ptr_eq(plugin_permit.semaphore(), &slots.semaphore)
        {
            slots.owed -= 1;
            plugin_permit.forget();
        }
    }
}

impl Slots {
    pub fn new(max_running: u32, background_max_running: u32) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max_running as usize)),
            max_running: max_running as usize,
            background: Arc::new(Semaphore::new(background_max_running as usize)),
            per_plugin: Arc::default(),
        }
    }

    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.max_running - self.global.available_permits()
    }

    /// Waits for a slot for a task of `plugin`, whose live version allows `max_concurrency`
    /// running at once.
    pub async fn acquire(&self, plugin: &str, max_concurrency: u32, lane: Lane) -> Permits {
        let (per_plugin, turn) = self.plugin_slots(plugin, max_concurrency);
        // The semaphores are never closed, so acquiring cannot fail.
        let plugin_permit = per_plugin.acquire_owned().await.expect("per-plugin semaphore is never closed");
        let background = match lane {
            Lane::Foreground => None,
            Lane::Background => {
                Some(self.background.clone().acquire_owned().await.expect("background semaphore is never closed"))
            }
        };
        let _turn = turn.lock().await;
        let global = self.global.clone().acquire_owned().await.expect("global semaphore is never closed");
        Permits {
            plugin: Some(plugin_permit),
            plugin_name: plugin.into(),
            per_plugin: self.per_plugin.clone(),
            _background: background,
            _global: global,
        }
    }

    /// The plugin's semaphore, resized first if its live version wants another size: grown at
    /// once; shrunk by taking free permits away now and the rest as running tasks give them
    /// back, before any waiting task can have them.
    fn plugin_slots(&self, plugin: &str, size: u32) -> (Arc<Semaphore>, Arc<tokio::sync::Mutex<()>>) {
        let mut per_plugin = self.per_plugin.lock();
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    /// Whether `acquire` would still be waiting after a while (time is paused: no real wait).
    async fn waits<F: Future<Output = Permits>>(acquire: F) -> bool {
        tokio::time::timeout(Duration::from_mins(1), acquire).await.is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_run_than_the_global_limit() {
        let slots = Slots::new(2, 2);
        let first = slots.acquire("a", 10, Lane::Foreground).await;
        let _second = slots.acquire("b", 10, Lane::Foreground).await;
        assert_eq!(slots.running(), 2);
        assert!(waits(slots.acquire("c", 10, Lane::Foreground)).await);
        drop(first);
        assert_eq!(slots.running(), 1);
        assert!(!waits(slots.acquire("c", 10, Lane::Foreground)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_plugin_runs_at_most_its_concurrency_resized_by_a_new_version() {
        let slots = Slots::new(10, 10);
        let mut held =
            vec![slots.acquire("p", 2, Lane::Foreground).await, slots.acquire("p", 2, Lane::Foreground).await];
        assert!(waits(slots.acquire("p", 2, Lane::Foreground)).await, "a third task waits at a concurrency of 2");
        held.push(slots.acquire("p", 3, Lane::Foreground).await);
        assert_eq!(slots.running(), 3, "a version allowing 3 lets a third run at once");

        // Shrunk to 1 with 3 running: the next task starts only once all three have ended.
        assert!(waits(slots.acquire("p", 1, Lane::Foreground)).await);
        for _ in 0..2 {
            drop(held.pop());
            assert!(waits(slots.acquire("p", 1, Lane::Foreground)).await, "a shrink takes back slots first");
        }
        drop(held.pop());
        assert!(!waits(slots.acquire("p", 1, Lane::Foreground)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_of_a_driver_that_unwinds_still_pay_a_shrink() {
        let slots = Slots::new(10, 10);
        let first = slots.acquire("p", 2, Lane::Foreground).await;
        let second = slots.acquire("p", 2, Lane::Foreground).await;
        assert!(waits(slots.acquire("p", 1, Lane::Foreground)).await, "shrunk to 1 with 2 running");
        let unwound = tokio::spawn(async move {
            let _held = second;
            panic!("a driver panics while its task runs");
        })
        .await;
        assert!(unwound.is_err());
        assert!(waits(slots.acquire("p", 1, Lane::Foreground)).await, "one still runs at a concurrency of 1");
        drop(first);
        assert!(!waits(slots.acquire("p", 1, Lane::Foreground)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn free_slots_go_round_the_plugins_that_wait() {
        let slots = Arc::new(Slots::new(1, 1));
        let blocker = slots.acquire("first", 10, Lane::Foreground).await;
        let (started, mut order) = mpsc::unbounded_channel();
        let (release, _) = tokio::sync::broadcast::channel::<()>(8);
        for (plugin, name) in [("bulk", "bulk 1"), ("bulk", "bulk 2"), ("bulk", "bulk 3"), ("hello", "hello")] {
            let (slots, started, mut released) = (slots.clone(), started.clone(), release.subscribe());
            tokio::spawn(async move {
                let permits = slots.acquire(plugin, 10, Lane::Foreground).await;
                let _ = started.send(name);
                let _ = released.recv().await;
                drop(permits);
            });
            tokio::task::yield_now().await;
        }
        drop(blocker);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(order.recv().await.expect("every task starts"));
            let _ = release.send(());
        }
        // Each bulk task queues for the global slot only once the one before it has one:
        // hello, which queued meanwhile, runs second, not behind the whole backlog.
        assert_eq!(seen, ["bulk 1", "hello", "bulk 2", "bulk 3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_background_lane_holds_at_most_its_share() {
        let slots = Slots::new(4, 1);
        let _heavy = slots.acquire("heavy", 10, Lane::Background).await;
        assert!(waits(slots.acquire("heavy", 10, Lane::Background)).await, "one background slot, taken");
        assert!(!waits(slots.acquire("light", 10, Lane::Foreground)).await, "the foreground is not held up");
    }
}
