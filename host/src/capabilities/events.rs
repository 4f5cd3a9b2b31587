//! The `events` interface: a task's log lines, progress and custom events go to its event
//! log, where the API streams them to watchers.

use serde_json::value::RawValue;

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
        self.invocation()?.task.events.push(EventKind::Custom { name: clip(name), data: payload(data) });
        Ok(())
    }
}

/// A custom event's data as kept: the guest's JSON as it wrote it (checked, not parsed into a
/// tree), any other text as a JSON string, and a note in place of data past `MAX_EVENT_TEXT`.
fn payload(data: String) -> Box<RawValue> {
    let kept = if data.len() > MAX_EVENT_TEXT {
        serde_json::value::to_raw_value(&serde_json::json!({ "truncated": true, "bytes": data.len() }))
    } else if serde_json::from_str::<&RawValue>(&data).is_ok() {
        RawValue::from_string(data)
    } else {
        serde_json::value::to_raw_value(&data)
    };
    // Writing a string or a small object as JSON cannot fail.
    kept.unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_kept_as_written_and_other_text_as_a_string() {
        assert_eq!(payload(r#"{"a": [1, 2]}"#.into()).get(), r#"{"a": [1, 2]}"#);
        assert_eq!(payload("not json".into()).get(), r#""not json""#);
        assert_eq!(
            payload("x".repeat(MAX_EVENT_TEXT + 1)).get(),
            format!(r#"{{"bytes":{},"truncated":true}}"#, MAX_EVENT_TEXT + 1)
        );
    }
}
