//! The `events` interface: a task's log lines, progress and custom events go to its event
//! log, where the API streams them to watchers.

use crate::events::{EventKind, Level};
use crate::runtime::HostState;
use crate::runtime::events::{Host, Level as WitLevel};

impl Host for HostState {
    async fn log(&mut self, level: WitLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            WitLevel::Trace => Level::Trace,
            WitLevel::Debug => Level::Debug,
            WitLevel::Info => Level::Info,
            WitLevel::Warn => Level::Warn,
            WitLevel::Error => Level::Error,
        };
        self.invocation()?.task.events.push(EventKind::Log { level, message });
        Ok(())
    }

    async fn progress(&mut self, done: u64, total: Option<u64>, message: Option<String>) -> wasmtime::Result<()> {
        self.invocation()?.task.events.push(EventKind::Progress { done, total, message });
        Ok(())
    }

    async fn emit(&mut self, name: String, data: String) -> wasmtime::Result<()> {
        let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data));
        self.invocation()?.task.events.push(EventKind::Custom { name, data });
        Ok(())
    }
}
