//! Tasks share nothing through the instance slots they reuse: a task finds none of the
//! previous task's memory (statics, heap, stack, pages it grew), whether the host reset those
//! pages in place or handed them back to the kernel.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use ignareo_e2e::Host;
use serde_json::{Value, json};

/// What `memory-residue`'s static holds in a fresh instance.
const INITIAL: &str = "memory-residue: initial contents";

async fn residue(host: &Host, input: Value) -> Value {
    let (status, output) = host.run("residue", &input).await;
    assert_eq!(status, 200, "{input} -> {output}");
    output
}

#[tokio::test]
async fn a_task_on_a_reused_instance_slot_sees_none_of_the_previous_tasks_memory() {
    // One task runs at a time, so every task takes the instance slot the previous one left.
    let host = Host::start_with(&["--max-running-tasks", "1"]).await;
    host.upload("residue", "memory-residue").await;

    for round in 0..12 {
        let secret = format!("{:032x}", rand::random::<u128>());
        // Every other round the writer touches 8 MiB more than limits.memory_keep_resident_kb
        // (4 MiB by default) lets the host reset in place: those pages go back to the kernel.
        let grow_kb: u32 = if round % 2 == 0 { 0 } else { 12 * 1024 };
        let wrote = residue(&host, json!({"secret": secret, "write": true, "grow_kb": grow_kb})).await;
        assert_eq!(wrote["found"], 0, "round {round}: a fresh secret is nowhere before it is written: {wrote}");
        assert_eq!(wrote["static"], INITIAL, "round {round}: {wrote}");
        // The probe finds what it wrote: a search that could not fail would prove nothing.
        let written = wrote["found_after_write"].as_u64().unwrap();
        let spread = u64::from(grow_kb) * 1024 / 32;
        assert!(written > spread + 1, "round {round}: the writer found {written} copies of its secret: {wrote}");

        for reader in 0..2 {
            let read = residue(&host, json!({"secret": secret, "grow_kb": grow_kb})).await;
            assert_eq!(read["static"], INITIAL, "round {round}, reader {reader}: the static was reset: {read}");
            assert_eq!(
                read["found"], 0,
                "round {round}, reader {reader}: no byte sequence of the previous task's secret is left anywhere in memory: {read}"
            );
            assert!(
                read["memory_kb"].as_u64() >= wrote["memory_kb"].as_u64(),
                "round {round}: the reader looked through at least the memory the writer had: {read} {wrote}"
            );
        }
    }
    assert_eq!(host.get_json("/healthz").await["load"]["ended"]["failed"].as_u64().unwrap_or(0), 0);
}
