//! Why a run failed, told from the types in the error wasmtime returns: the host's own limit
//! errors, wasmtime's `Trap` codes, the kernel's `ENOMEM` (and, its type being private to
//! wasmtime, the text of one error: hostcall fuel). Each becomes a [`Failure`] whose kind the
//! API reports and whose message a plugin author can act on.

use rustix::io::Errno;
use wasmtime::{Trap, WasmBacktrace};

use super::capacity;
use crate::capabilities::{LimitExceeded, MemoryLimitExceeded};
use crate::task::{Failure, FailureKind};

/// wasmtime's error when one host call's arguments pass the store's hostcall fuel (the bytes
/// it copies out of the guest), whose type wasmtime keeps private. The hostile `aliased-*`
/// tests show this host still recognises it.
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// The failure a run's `error` stands for; `stderr` is the end of what the guest wrote there
/// (a panic message, typically), `stack_kb` the call stack it was given and `memory_bytes` its
/// memory limit.
pub fn classify(error: &wasmtime::Error, stderr: &str, stack_kb: u64, memory_bytes: usize) -> Failure {
    if let Some(exceeded) = error.downcast_ref::<MemoryLimitExceeded>() {
        return Failure {
            kind: FailureKind::MemoryLimit,
            message: format!("the task exceeded its memory limit of {}", mebibytes(exceeded.limit)),
        };
    }
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return Failure { kind: FailureKind::ResourceLimit, message: limit.0.clone() };
    }
    if error.chain().any(|cause| cause.to_string().contains(HOSTCALL_FUEL_EXHAUSTED)) {
        return Failure {
            kind: FailureKind::ResourceLimit,
            message: format!(
                "one host call's arguments came to more than the task's memory limit of {} \
                 (entries that point at the same bytes count once each)",
                mebibytes(memory_bytes)
            ),
        };
    }
    let trap = error.downcast_ref::<Trap>();
    if trap == Some(&Trap::StackOverflow) {
        return Failure {
            kind: FailureKind::ResourceLimit,
            message: format!("the task exhausted its call stack of {stack_kb} KiB (limits.task_stack_kb)"),
        };
    }
    let mut message = match trap {
        Some(trap) => format!("the guest trapped: {trap}"),
        None => format!("the guest failed: {}", error.root_cause()),
    };
    if !stderr.is_empty() {
        message.push_str("\nguest stderr:\n");
        message.push_str(stderr.trim_end());
    }
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        message.push('\n');
        message.push_str(&backtrace.to_string());
    }
    Failure { kind: FailureKind::Trap, message }
}

/// Why instantiating failed, with the operator's likely fix when the kernel refused a
/// mapping: past `vm.max_map_count`, mmap and mprotect fail with `ENOMEM` while memory is
/// plentiful.
pub fn instantiate_failure(error: &wasmtime::Error) -> Failure {
    Failure { kind: FailureKind::Instantiate, message: explain_out_of_mappings(error, "cannot instantiate") }
}

/// `error` in full after `what`, plus the mapping cap's advice when the kernel refused a mapping.
pub fn explain_out_of_mappings(error: &wasmtime::Error, what: &str) -> String {
    let message = format!("{what}: {error:#}");
    match capacity::max_map_count() {
        Some(cap) if error.downcast_ref::<Errno>() == Some(&Errno::NOMEM) => format!(
            "{message}; the kernel refused a memory mapping, which with many tasks running means the cap on mappings: {}",
            capacity::map_count_advice(cap)
        ),
        _ => message,
    }
}

/// "16 MiB", or the exact byte count when it is not a whole number of MiB.
pub fn mebibytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes.is_multiple_of(MIB) { format!("{} MiB", bytes / MIB) } else { format!("{bytes} bytes") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_is_known_by_its_type_under_any_context() {
        let error = wasmtime::Error::new(MemoryLimitExceeded { desired: 32 << 20, limit: 16 << 20 })
            .context("while growing memory");
        let failure = classify(&error, "", 512, 16 << 20);
        assert_eq!(failure.kind, FailureKind::MemoryLimit);
        assert_eq!(failure.message, "the task exceeded its memory limit of 16 MiB");
    }

    #[test]
    fn host_limits_and_stack_overflows_are_resource_limits() {
        let refused = wasmtime::Error::new(LimitExceeded("too many sessions".into()));
        assert_eq!(
            classify(&refused, "", 512, 16 << 20),
            Failure { kind: FailureKind::ResourceLimit, message: "too many sessions".into() }
        );
        let overflow = wasmtime::Error::new(Trap::StackOverflow);
        let failure = classify(&overflow, "", 256, 16 << 20);
        assert_eq!(failure.kind, FailureKind::ResourceLimit);
        assert!(failure.message.contains("256 KiB (limits.task_stack_kb)"), "{}", failure.message);
    }

    #[test]
    fn other_traps_carry_the_guests_last_words() {
        let failure =
            classify(&wasmtime::Error::new(Trap::UnreachableCodeReached), "panicked at 'oops'\n", 512, 16 << 20);
        assert_eq!(failure.kind, FailureKind::Trap);
        assert!(failure.message.starts_with("the guest trapped: "), "{}", failure.message);
        assert!(failure.message.ends_with("guest stderr:\npanicked at 'oops'"), "{}", failure.message);
    }

    #[test]
    fn a_refused_mapping_names_the_kernels_cap_when_there_is_one() {
        let refused = wasmtime::Error::new(Errno::NOMEM).context("mmap failed");
        let message = explain_out_of_mappings(&refused, "cannot instantiate");
        assert!(message.starts_with("cannot instantiate: mmap failed"), "{message}");
        if capacity::max_map_count().is_some() {
            assert!(message.contains("vm.max_map_count"), "{message}");
        }
        let other = wasmtime::Error::new(Errno::INVAL);
        assert!(!explain_out_of_mappings(&other, "cannot instantiate").contains("vm.max_map_count"));
    }
}
