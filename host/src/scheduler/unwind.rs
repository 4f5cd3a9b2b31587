//! Panics while a task runs. A panic in a host call (or anywhere in the runtime under a task)
//! unwinds through the task's future; left alone, tokio would swallow it with the task's
//! driver, and the task would read `running` forever with its slots taken. Caught here, it
//! ends that one task `failed` (`host-error`, with the panic's message) and the driver goes on
//! to free the slots and record the end like for any other.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;

use crate::task::{Failure, FailureKind, Outcome};

/// Runs `future`, answering the message of a panic in it instead of unwinding further.
///
/// Unwind safety: what a panicking future leaves half-changed is its own store and instance,
/// which are dropped with it; the task it ran for is only finished afterwards.
pub(super) async fn caught<T>(future: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(future).catch_unwind().await.map_err(|panic| message(panic.as_ref()))
}

/// How a task whose run panicked ends.
pub(super) fn host_failure(panic: &str) -> Outcome {
    Outcome::Failed(Failure {
        kind: FailureKind::HostError,
        message: format!(
            "the host failed while running this task ({panic}); the task was stopped, other tasks are unaffected: \
             report this as a bug of the host"
        ),
    })
}

fn message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_message_is_the_panics_own_whatever_its_payload() {
        assert_eq!(caught(async { 1 }).await, Ok(1));
        let formatted = caught(async { panic!("a host call broke: {}", 42) }).await;
        assert_eq!(formatted, Err::<(), _>("a host call broke: 42".to_owned()));
        let other = caught(async { std::panic::panic_any(7_u8) }).await;
        assert_eq!(other, Err::<(), _>("a panic without a message".to_owned()));
    }
}
