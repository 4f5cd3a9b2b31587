//! The limits a task's store enforces while its guest runs, and the typed errors that end the
//! task when one is reached, so that the runtime tells them apart without reading messages.

use wasmtime::ResourceLimiter;

/// A host call refused because the task reached one of its limits; the message names it. The
/// guest traps and the task fails with `resource-limit`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitExceeded(pub String);

/// The guest asked for more linear memory than its task may have.
#[derive(Debug, thiserror::Error)]
#[error("the guest grew a memory to {desired} bytes, past its limit of {limit} bytes")]
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

/// Caps each linear memory of a task at `memory_bytes`; growing past it (or past a maximum the
/// module declares) traps with [`MemoryLimitExceeded`] rather than failing the growth, since a
/// Rust guest's allocator turns a failed growth into an `unreachable` that names nothing.
pub struct TaskLimiter {
    memory_bytes: usize,
}

impl TaskLimiter {
    pub fn new(memory_bytes: usize) -> Self {
        Self { memory_bytes }
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let limit = maximum.map_or(self.memory_bytes, |maximum| maximum.min(self.memory_bytes));
        if desired > limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { desired, limit }));
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the host could not grow the guest's memory"))
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        match maximum {
            Some(maximum) if desired > maximum => Err(wasmtime::Error::new(TableLimitExceeded { desired, maximum })),
            _ => Ok(true),
        }
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
        let error = limiter.memory_growing(0, (1 << 20) + 1, None).unwrap_err();
        let exceeded = error.downcast_ref::<MemoryLimitExceeded>().expect("a typed error");
        assert_eq!((exceeded.desired, exceeded.limit), ((1 << 20) + 1, 1 << 20));
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
