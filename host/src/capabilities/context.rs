//! The `context` interface: the task's identity, and child tasks it spawns and joins.
//!
//! Spawning goes through the [`Spawner`] the scheduler hands in, so this layer never calls
//! the scheduler directly.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::Resource;

use super::HostState;
pub use super::bindings::context::SpawnError;
use super::bindings::context::{Host, HostChild, JoinError};
use super::bindings::types::{self, TaskError};
use crate::task::{FailureKind, Outcome, Task};

/// Starts tasks on behalf of a running task.
pub trait Spawner: Send + Sync {
    fn spawn(&self, parent: &Task, plugin: &str, input: Bytes) -> Result<Arc<Task>, SpawnError>;
}

/// The host side of a guest's `child` handle.
pub struct Child(Arc<Task>);

impl types::Host for HostState {}

impl Host for HostState {
    async fn task_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.invocation()?.task.id.to_string())
    }

    async fn plugin_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.invocation()?.task.plugin.clone())
    }

    async fn spawn(&mut self, plugin: String, input: Vec<u8>) -> wasmtime::Result<Result<Resource<Child>, SpawnError>> {
        let invocation = self.invocation()?;
        match invocation.spawner.spawn(&invocation.task, &plugin, Bytes::from(input)) {
            Ok(task) => Ok(Ok(self.table.push(Child(task))?)),
            Err(refusal) => Ok(Err(refusal)),
        }
    }
}

impl HostChild for HostState {
    async fn id(&mut self, handle: Resource<Child>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.0.id.to_string())
    }

    async fn join(&mut self, handle: Resource<Child>) -> wasmtime::Result<Result<Vec<u8>, JoinError>> {
        let child = self.table.get(&handle)?.0.clone();
        let status = child.finished().await;
        Ok(match status.outcome {
            Some(Outcome::Succeeded(output)) => Ok(output.to_vec()),
            Some(Outcome::Failed(failure)) => Err(match failure.kind {
                FailureKind::InvalidInput => JoinError::Task(TaskError::InvalidInput(failure.message)),
                FailureKind::TaskError => JoinError::Task(TaskError::Failed(failure.message)),
                _ => JoinError::Aborted(failure.message),
            }),
            Some(outcome @ (Outcome::TimedOut { .. } | Outcome::Interrupted(_))) => {
                Err(JoinError::Aborted(outcome.describe()))
            }
            Some(Outcome::Cancelled) | None => Err(JoinError::Cancelled),
        })
    }

    async fn drop(&mut self, handle: Resource<Child>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
