//! What one process can hold at once: the address space the instance pool reserves up front,
//! and the kernel's cap on memory mappings that live instances count against.
//!
//! Both are decided at start from `limits.max_running_tasks`, so that a host configured for
//! 100,000 tasks starts (and says what bounds it) instead of failing half-way through a load.

use wasmtime::Config;

/// Each live instance holds about this many memory mappings: its linear memory, the
/// copy-on-write image over it, tables, and its fiber stack with its guard page.
const MAPPINGS_PER_TASK: u64 = 6;
/// Mappings the rest of the process uses (code, heap, threads, compiled plugins).
const MAPPINGS_BESIDE_TASKS: u64 = 10_000;
/// wasmtime's default per-memory reservation: 4 GiB plus a 32 MiB guard lets compiled code
/// drop bounds checks on memory accesses.
const DEFAULT_SLOT_BYTES: u64 = (4 << 30) + (32 << 20);
/// Address space the memory pool may take with default slots: a quarter of the 128 TiB that
/// x86-64 Linux gives a process, leaving the rest to stacks, heap and other mappings.
const POOL_ADDRESS_BUDGET: u64 = 32 << 40;
/// Address space the memory pool may take at all, with slots shrunk to the task memory.
const POOL_ADDRESS_LIMIT: u64 = 64 << 40;
/// Guard after each memory once slots shrink to the task memory: catches small offsets past
/// the end without a bounds check.
const SMALL_SLOT_GUARD: u64 = 2 << 20;

/// How the memory pool's slots are laid out for `memories` slots of `task_memory` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum MemorySlots {
    /// 4 GiB per slot: the fastest code, affordable while the pool fits the budget.
    Default,
    /// Each slot only as large as the task memory (plus a small guard); compiled code checks
    /// bounds explicitly. Chosen when the default slots would not fit.
    Compact { reservation: u64, guard: u64 },
}

impl MemorySlots {
    pub fn for_pool(memories: u64, task_memory: u64) -> anyhow::Result<Self> {
        if memories.saturating_mul(DEFAULT_SLOT_BYTES) <= POOL_ADDRESS_BUDGET {
            return Ok(Self::Default);
        }
        let compact = memories.saturating_mul(task_memory.saturating_add(SMALL_SLOT_GUARD));
        if compact > POOL_ADDRESS_LIMIT {
            anyhow::bail!(
                "{memories} task memories of {} MiB need {} TiB of address space, more than the {} TiB a process can spare: \
                 lower limits.max_running_tasks or limits.task_memory_mb",
                task_memory >> 20,
                compact >> 40,
                POOL_ADDRESS_LIMIT >> 40
            );
        }
        Ok(Self::Compact { reservation: task_memory, guard: SMALL_SLOT_GUARD })
    }

    pub fn apply(&self, config: &mut Config) {
        if let Self::Compact { reservation, guard } = *self {
            tracing::info!(
                reservation_mib = reservation >> 20,
                "memory slots sized to the task memory: 4 GiB slots for every running task would not fit the address space"
            );
            config.memory_reservation(reservation).memory_guard_size(guard).memory_reservation_for_growth(0);
        }
    }
}

/// Turns transparent huge pages off for this process, for every mapping made before or after.
///
/// mimalloc asks for huge pages on its heap. As thousands of tasks start, each 2 MiB of heap
/// touched anew (and again after mimalloc gave it back) is a whole huge page zeroed at once,
/// which made starting many sleeping tasks, and triggers, cost markedly more CPU (compare
/// `bench/run sleepers 50000` with and without this call). Linear memories and fiber stacks
/// touch a few small pages each anyway.
pub fn small_pages_only() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; it takes no pointers.
    let refused = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0;
    if refused {
        tracing::debug!(error = %std::io::Error::last_os_error(), "transparent huge pages stay as the system sets them");
    }
}

/// The kernel's cap on one process's memory mappings, where Linux tells it.
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

/// Mappings a host running `tasks` at once needs.
pub fn mappings_needed(tasks: u64) -> u64 {
    tasks.saturating_mul(MAPPINGS_PER_TASK).saturating_add(MAPPINGS_BESIDE_TASKS)
}

/// The operator's fix, for logs and task errors: how many tasks fit under `cap` and what to raise.
pub fn map_count_advice(cap: u64) -> String {
    let fit = cap.saturating_sub(MAPPINGS_BESIDE_TASKS) / MAPPINGS_PER_TASK;
    format!(
        "vm.max_map_count is {cap}, room for about {fit} tasks running at once; \
         raise it (sysctl -w vm.max_map_count=1048576) or lower limits.max_running_tasks"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_slots_while_the_pool_fits_the_budget() {
        assert_eq!(MemorySlots::for_pool(1026, 128 << 20).unwrap(), MemorySlots::Default);
        assert_eq!(MemorySlots::for_pool(7_000, 128 << 20).unwrap(), MemorySlots::Default);
    }

    #[test]
    fn compact_slots_beyond_the_budget() {
        assert_eq!(
            MemorySlots::for_pool(100_002, 128 << 20).unwrap(),
            MemorySlots::Compact { reservation: 128 << 20, guard: SMALL_SLOT_GUARD }
        );
    }

    #[test]
    fn a_pool_beyond_the_address_space_is_refused_with_the_keys_to_lower() {
        let err = MemorySlots::for_pool(100_002, 4096 << 20).unwrap_err().to_string();
        assert!(err.contains("limits.max_running_tasks or limits.task_memory_mb"), "{err}");
    }

    #[test]
    fn advice_names_the_setting_and_the_fit() {
        let advice = map_count_advice(65_530);
        assert!(advice.contains("about 9255 tasks"), "{advice}");
        assert!(advice.contains("sysctl -w vm.max_map_count"), "{advice}");
    }
}
