//! The engine's configuration, in one place: the pooling allocator sized for
//! `limits.max_running_tasks`, the memory slots' layout, stacks, and epoch interruption.

use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::capacity;
use crate::config::Limits;

/// Pool slots kept beyond `max_running_tasks` for validating uploads, so that an upload (a hot
/// swap) still works while every task slot is busy.
pub(super) const VALIDATION_SLOTS: u32 = 2;
/// Room on a task's fiber stack beyond its wasm stack, for the host functions it calls.
const ASYNC_STACK_HEADROOM: usize = 1536 * 1024;
/// Table bytes per slot reset in place: a Rust component's tables are a few KiB.
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// Says at start, not under load, when the kernel will refuse instances before the pool is full.
pub(super) fn warn_about_map_count(limits: &Limits) {
    if let Some(cap) = capacity::max_map_count()
        && capacity::mappings_needed(limits.max_running_tasks.into()) > cap
    {
        tracing::warn!(
            max_running_tasks = limits.max_running_tasks,
            "tasks beyond the kernel's mapping cap will fail to instantiate: {}",
            capacity::map_count_advice(cap)
        );
    }
}

/// The pool holds, for every running slot, as many core instances, memories and tables as one
/// task's component may have (`limits.max_*_per_task`, also each component's own limits): a
/// task admitted to a slot always finds its component's share free, whatever its language, so
/// a full host queues tasks instead of failing them, and no component takes the share of
/// several tasks.
pub(super) fn engine_config(limits: &Limits) -> anyhow::Result<Config> {
    let instances = limits.max_running_tasks + VALIDATION_SLOTS;
    let memories = instances.saturating_mul(limits.max_memories_per_task);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(limits.max_core_instances_per_task))
        .total_memories(memories)
        .total_tables(instances.saturating_mul(limits.max_tables_per_task))
        .total_stacks(instances)
        .max_core_instances_per_component(limits.max_core_instances_per_task)
        .max_memories_per_component(limits.max_memories_per_task)
        .max_memories_per_module(limits.max_memories_per_task)
        .max_tables_per_component(limits.max_tables_per_task)
        .max_tables_per_module(limits.max_tables_per_task)
        .max_memory_size(limits.task_memory_bytes())
        // Reset in place (only the pages a task wrote, found with PAGEMAP_SCAN where the
        // kernel has it) rather than by madvise: no page faults on the next task, and no
        // TLB-shootdown interrupts to the other cores on every task's end.
        .linear_memory_keep_resident(limits.memory_keep_resident_bytes())
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);

    let stack_bytes = usize::try_from(limits.task_stack_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
    let mut config = Config::new();
    capacity::MemorySlots::for_pool(u64::from(memories), limits.task_memory_bytes() as u64)?.apply(&mut config);
    config
        .max_wasm_stack(stack_bytes)
        // The fiber a task runs on holds its wasm stack plus the host calls made from it.
        .async_stack_size(stack_bytes + ASYNC_STACK_HEADROOM)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .wasm_component_model(true);
    Ok(config)
}
