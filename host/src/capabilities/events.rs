//! The `events` interface: a task's log lines, progress and custom events go to its event
//! log, where the API streams them to watchers.

use super::HostState;
use super::bindings::events::{Host, Level as WitLevel};
use crate::task::events::{EventKind, Level, MAX_EVENT_TEXT, clip};

impl Host for HostState {
    async fn log(&mut self, level: WitLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            WitLevel::Trace => Level::Trace,
            WitLevel::Debug => Level::Debug,
            WitLevel::Info => Level::Info,
            WitLevel::Warn => Level::Warn,
            WitLevel::Error => Level::Error,
        };
        self.invocation()?.task.log(level, clip(message));
        Ok(())
    }

    async fn progress(&mut self, done: u64, total: Option<u64>, message: Option<String>) -> wasmtime::Result<()> {
        self.invocation()?.task.events.push(EventKind::Progress { done, total, message: message.map(clip) });
        Ok(())
    }

    async fn emit(&mut self, name: String, data: String) -> wasmtime::Result<()> {
        let data = if data.len() > MAX_EVENT_TEXT {
            serde_json::json!({ "truncated": true, "bytes": data.len() })
        } else {
            serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data))
        };
        self.invocation()?.task.events.push(EventKind::Custom { name: clip(name), data });
        Ok(())
    }
}
