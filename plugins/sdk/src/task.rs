//! The task itself: its entry point, its identity, progress, sleeping, and child tasks.

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::Error;
use crate::bindings::ignareo::task::{context, events, timer, types::TaskError};

/// Parses the input, runs the task function and serializes its output.
pub fn dispatch<I, O, E>(input: &[u8], run: fn(I) -> Result<O, E>) -> Result<Vec<u8>, TaskError>
where
    I: DeserializeOwned,
    O: Serialize,
    E: Into<Error>,
{
    let input: &[u8] = if input.iter().all(u8::is_ascii_whitespace) { b"null" } else { input };
    let input = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(input)).map_err(|e| {
        let at = match e.path().to_string().as_str() {
            "." => String::new(),
            path => format!(" at {path}"),
        };
        Error::invalid_input(format!("input is not the expected JSON{at}: {}", e.inner())).into_wit()
    })?;
    let output = run(input).map_err(|e| e.into().into_wit())?;
    serde_json::to_vec(&output).map_err(|e| Error::msg(format!("output could not be serialized: {e}")).into_wit())
}

/// This task's id, as the HTTP API reports it.
pub fn task_id() -> String {
    context::task_id()
}

/// The name of the plugin this task runs as.
pub fn plugin_name() -> String {
    context::plugin_name()
}

/// Suspends the task; the host holds no thread meanwhile.
pub fn sleep(duration: Duration) {
    timer::sleep(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
}

/// Reports progress: `done` of `total` units (`None` if the total is unknown).
pub fn progress(done: u64, total: Option<u64>, message: Option<&str>) {
    events::progress(done, total, message);
}

/// Emits an event of the task's own; `data` is serialized as JSON.
pub fn emit(name: &str, data: &impl Serialize) -> Result<(), Error> {
    events::emit(name, &serde_json::to_string(data)?);
    Ok(())
}

/// A task started with [`spawn`]. Dropping it detaches the task: it keeps running.
pub struct Child(context::Child);

/// Why a child produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The child returned an error.
    Failed(Error),
    /// The child trapped, timed out or hit a limit.
    Aborted(String),
    Cancelled,
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "child task failed: {e}"),
            Self::Aborted(why) => write!(f, "child task aborted: {why}"),
            Self::Cancelled => f.write_str("child task was cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

impl Child {
    pub fn id(&self) -> String {
        self.0.id()
    }

    /// Waits for the child to end and parses its JSON output.
    pub fn join<T: DeserializeOwned>(&self) -> Result<T, JoinError> {
        let output = self.0.join().map_err(|e| match e {
            context::JoinError::Task(TaskError::InvalidInput(m)) => JoinError::Failed(Error::invalid_input(m)),
            context::JoinError::Task(TaskError::Failed(m)) => JoinError::Failed(Error::msg(m)),
            context::JoinError::Aborted(why) => JoinError::Aborted(why),
            context::JoinError::Cancelled => JoinError::Cancelled,
        })?;
        serde_json::from_slice(&output)
            .map_err(|e| JoinError::Failed(Error::msg(format!("child output is not the expected JSON: {e}"))))
    }
}

/// Starts a task of `plugin` with `input` (serialized as JSON), running alongside this one.
pub fn spawn(plugin: &str, input: &impl Serialize) -> Result<Child, Error> {
    let input = serde_json::to_vec(input)?;
    context::spawn(plugin, &input).map(Child).map_err(|e| match e {
        context::SpawnError::NoSuchPlugin(name) => Error::msg(format!("no plugin named {name}")),
        context::SpawnError::Rejected(why) => Error::msg(format!("spawn rejected: {why}")),
    })
}
