//! The `timer` interface: sleeping suspends the guest's fiber on a tokio timer, no thread held.

use std::time::Duration;

use super::HostState;
use super::bindings::timer::Host;

impl Host for HostState {
    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}
