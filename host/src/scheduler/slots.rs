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
    per_plugin: Mutex<HashMap<String, PluginSlots>>,
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

/// What a running task holds; [`Slots::release`] gives them back.
pub struct Permits {
    plugin: OwnedSemaphorePermit,
    background: Option<OwnedSemaphorePermit>,
    global: OwnedSemaphorePermit,
}

impl Slots {
    pub fn new(max_running: u32, background_max_running: u32) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max_running as usize)),
            max_running: max_running as usize,
            background: Arc::new(Semaphore::new(background_max_running as usize)),
            per_plugin: Mutex::default(),
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
        Permits { plugin: plugin_permit, background, global }
    }

    /// Gives a running task's slots back (its plugin slot only if no shrink is owed one).
    pub fn release(&self, plugin: &str, permits: Permits) {
        let Permits { plugin: plugin_permit, background, global } = permits;
        let mut per_plugin = self.per_plugin.lock();
        if let Some(slots) = per_plugin.get_mut(plugin)
            && slots.owed > 0
            && Arc::ptr_eq(plugin_permit.semaphore(), &slots.semaphore)
        {
            slots.owed -= 1;
            plugin_permit.forget();
        }
        drop(per_plugin);
        drop((background, global));
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
