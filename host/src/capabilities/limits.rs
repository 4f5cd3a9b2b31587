//! The limits a task's store enforces while its guest runs, and the typed errors that end the
//! task when one is reached, so that the runtime tells them apart without reading messages.

use wasmtime::ResourceLimiter;

/// A host call refused because the task reached one of its limits; the message names it. The
/// guest traps and the task fails with `resource-limit`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitExceeded(pub String);

/// The guest asked for more memory than its task may have: all its linear memories and
/// tables together.
#[derive(Debug, thiserror::Error)]
#[error("the guest's memories and tables would take {desired} bytes, past its limit of {limit} bytes")]
pub struct MemoryLimitExceeded {
    pub desired: usize,
    pub limit: usize,
}

/// The guest grew a table past the maximum its module declares.
#[derive(Debug, thiserror::Error)]
#[error("the guest grew a table to {desired} elements, past its maximum of {maximum}")]
pub struct TableLimitExceeded {
    pub desired: usize,
    pub maximum: usize,
}

/// What one table element costs the host: a pointer.
const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();

/// Caps a task's linear memories and tables together at `memory_bytes`: wasmtime asks about
/// each memory and table on its own (creation included), so the limiter keeps the sum. A
/// component with many memories gets no more than one with a single memory. Growing past the
/// cap (or past a maximum the module declares) traps with [`MemoryLimitExceeded`] rather than
/// failing the growth, since a Rust guest's allocator turns a failed growth into an
/// `unreachable` that names nothing.
pub struct TaskLimiter {
    memory_bytes: usize,
    /// Bytes of all memories and tables of the store so far.
    used: usize,
}

impl TaskLimiter {
    pub fn new(memory_bytes: usize) -> Self {
        Self { memory_bytes, used: 0 }
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Takes `current` to `desired` bytes of one memory or table out of the task's budget.
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let used = self.used.saturating_sub(current).saturating_add(desired);
        if used > self.memory_bytes {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { desired: used, limit: self.memory_bytes }));
        }
        self.used = used;
        Ok(true)
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if let Some(maximum) = maximum.filter(|&maximum| desired > maximum) {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { desired, limit: maximum }));
        }
        self.grow(current, desired)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the host could not grow the guest's memory"))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if let Some(maximum) = maximum.filter(|&maximum| desired > maximum) {
            return Err(wasmtime::Error::new(TableLimitExceeded { desired, maximum }));
        }
        self.grow(current.saturating_mul(TABLE_ELEMENT_BYTES), desired.saturating_mul(TABLE_ELEMENT_BYTES))
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the host could not grow the guest's table"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_grows_up_to_the_limit_and_no_further() {
        let mut limiter = TaskLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        let error = limiter.memory_growing(1 << 20, (1 << 20) + 1, None).unwrap_err();
        let exceeded = error.downcast_ref::<MemoryLimitExceeded>().expect("a typed error");
        assert_eq!((exceeded.desired, exceeded.limit), ((1 << 20) + 1, 1 << 20));
    }

    #[test]
    fn memories_and_tables_share_one_limit() {
        let mut limiter = TaskLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 19, None).unwrap());
        assert!(limiter.memory_growing(0, 1 << 18, None).unwrap());
        assert!(limiter.memory_growing(1 << 18, (1 << 19) + 1, None).is_err(), "a second memory takes what is left");
        assert!(limiter.table_growing(0, (1 << 16) / TABLE_ELEMENT_BYTES, None).unwrap());
        let error = limiter.memory_growing(0, 1 << 18, None).unwrap_err();
        let exceeded = error.downcast_ref::<MemoryLimitExceeded>().expect("a typed error");
        assert_eq!((exceeded.desired, exceeded.limit), ((1 << 19) + (1 << 18) + (1 << 16) + (1 << 18), 1 << 20));
    }

    #[test]
    fn a_declared_maximum_below_the_limit_is_the_limit() {
        let mut limiter = TaskLimiter::new(1 << 20);
        let error = limiter.memory_growing(0, 2 << 16, Some(1 << 16)).unwrap_err();
        assert!(error.downcast_ref::<MemoryLimitExceeded>().is_some());
        assert!(limiter.table_growing(0, 10, Some(10)).unwrap());
        assert!(limiter.table_growing(0, 11, Some(10)).unwrap_err().downcast_ref::<TableLimitExceeded>().is_some());
    }
}
