//! The `context` interface: the task's identity, and child tasks it spawns and joins.
//!
//! A task spawns only plugins its own plugin version's manifest lists (`spawn = [..]`, none
//! by default), checked here; the [`Spawner`] the scheduler hands in then checks the rest
//! (the submitting token's scope, the tree's limits), so this layer never calls the scheduler
//! directly.

use std::collections::BTreeSet;
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

/// Plugins one plugin version's tasks may spawn: its manifest's `spawn` list.
#[derive(Debug, Default)]
pub struct SpawnGrant(BTreeSet<String>);

impl SpawnGrant {
    pub fn new(plugins: impl IntoIterator<Item = String>) -> Self {
        Self(plugins.into_iter().collect())
    }

    /// Refuses a child that `parent`'s manifest does not name.
    fn check(&self, parent: &str, child: &str) -> Result<(), SpawnError> {
        if self.0.contains(child) {
            return Ok(());
        }
        let listed = if self.0.is_empty() {
            "its manifest lists none (spawn = [..])".to_owned()
        } else {
            let names: Vec<String> = self.0.iter().map(|p| format!("{p:?}")).collect();
            format!("its manifest's spawn list is [{}]", names.join(", "))
        };
        Err(SpawnError::Rejected(format!("plugin {parent:?} may not spawn {child:?}: {listed}")))
    }
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
        if let Err(refusal) = invocation.spawn.check(&invocation.task.plugin, &plugin) {
            return Ok(Err(refusal));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_spawns_only_what_its_manifest_lists() {
        let listed = SpawnGrant::new(["hello".to_owned(), "fetch-title".to_owned()]);
        assert!(listed.check("crawler", "hello").is_ok());
        let Err(SpawnError::Rejected(refusal)) = listed.check("crawler", "chatter") else { panic!("refused") };
        assert!(refusal.contains("\"chatter\"") && refusal.contains("[\"fetch-title\", \"hello\"]"), "{refusal}");
        let Err(SpawnError::Rejected(refusal)) = SpawnGrant::default().check("crawler", "hello") else {
            panic!("refused")
        };
        assert!(refusal.contains("lists none"), "{refusal}");
    }
}
