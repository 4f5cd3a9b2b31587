//! Admission: which tasks are accepted. A task is accepted only while fewer than
//! `limits.max_queued_tasks` wait for a slot (a batch all or none); beyond that the caller is
//! told to come back later (429) instead of the host growing without bound. Durable tasks are
//! committed to the store before they are acknowledged.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::payloads::Input;
use super::{Scheduler, SubmitError};
use crate::registry::LoadedVersion;
use crate::runtime::{Exchange, PluginKind};
use crate::store::{StoreError, TaskRecord};
use crate::task::{Origin, Task};

impl Scheduler {
    pub(super) fn admit(
        &self,
        plugin: &str,
        input: Bytes,
        timeout: Option<Duration>,
        origin: Origin<'_>,
    ) -> Result<Arc<Task>, SubmitError> {
        let version = self.admission(plugin, PluginKind::Task, timeout, 1)?;
        let task = Arc::new(self.new_task(&version, timeout, origin));
        let input = self.hold_input(input, false);
        self.launch(task.clone(), version, input);
        Ok(task)
    }

    /// Takes a request for `plugin`, an HTTP plugin, to answer as soon as it has a slot, like
    /// a task that is not recorded (its caller waits for the answer); `owner` is the caller's
    /// token id.
    pub fn serve(&self, plugin: &str, exchange: Exchange, owner: Option<Arc<str>>) -> Result<Arc<Task>, SubmitError> {
        let version = self.admission(plugin, PluginKind::Http, None, 1)?;
        let task = Arc::new(self.new_task(&version, None, Origin::Caller(owner)));
        self.launch(task.clone(), version, Input::Exchange(Box::new(exchange)));
        Ok(task)
    }

    /// Checks that `count` tasks of `plugin` may be accepted and takes their places in the
    /// queue, all or none.
    fn admission(
        &self,
        plugin: &str,
        kind: PluginKind,
        timeout: Option<Duration>,
        count: usize,
    ) -> Result<Arc<LoadedVersion>, SubmitError> {
        if self.closed.is_cancelled() {
            return Err(SubmitError::ShuttingDown);
        }
        let version = self.registry.live(plugin).ok_or_else(|| match self.registry.unavailable_reason(plugin) {
            Some(why) => SubmitError::Unavailable { plugin: plugin.to_owned(), why },
            None => SubmitError::NoSuchPlugin(plugin.to_owned()),
        })?;
        if version.linked.kind() != kind {
            return Err(SubmitError::WrongKind { plugin: plugin.to_owned(), kind: version.linked.kind() });
        }
        if let Some(asked) = timeout.filter(|t| *t > version.limits.timeout) {
            return Err(SubmitError::TimeoutTooLong {
                plugin: plugin.to_owned(),
                asked: asked.as_secs(),
                limit: version.limits.timeout.as_secs(),
            });
        }
        let max_queued = self.limits.max_queued_tasks as usize;
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q + count <= max_queued).then_some(q + count))
            .map_err(|queued| {
                if count == 1 {
                    SubmitError::QueueFull(queued)
                } else {
                    SubmitError::NoRoom { count, queued, max_queued }
                }
            })?;
        Ok(version)
    }

    fn new_task(&self, version: &LoadedVersion, timeout: Option<Duration>, origin: Origin<'_>) -> Task {
        Task::new(
            version.plugin.clone(),
            version.info.version.as_str().into(),
            origin,
            timeout.unwrap_or(version.limits.timeout),
            self.limits.events_per_task as usize,
            self.limits.max_log_lines,
        )
    }

    pub(super) async fn commit_and_launch(
        &self,
        plugin: &str,
        inputs: Vec<Bytes>,
        timeout: Option<Duration>,
        owner: Option<Arc<str>>,
        schedule: Option<Arc<str>>,
    ) -> Result<Vec<Arc<Task>>, SubmitError> {
        let version = self.admission(plugin, PluginKind::Task, timeout, inputs.len())?;
        let tasks: Vec<Arc<Task>> = inputs
            .iter()
            .map(|_| {
                Arc::new(
                    self.new_task(&version, timeout, Origin::Caller(owner.clone()))
                        .durable()
                        .scheduled(schedule.clone()),
                )
            })
            .collect();
        let this = self.this.upgrade().expect("the scheduler outlives its callers");
        // On a task of its own: a caller that hangs up while the commit is under way must not
        // leave recorded tasks unlaunched (or their queue places taken).
        let committed = tokio::spawn(async move {
            let records =
                tasks.iter().zip(&inputs).map(|(task, input)| TaskRecord::accepted(task, input.clone())).collect();
            match this.store.accept(records).await {
                Ok(()) => {
                    for (task, input) in tasks.iter().zip(inputs) {
                        let input = this.hold_input(input, true);
                        this.launch(task.clone(), version.clone(), input);
                    }
                    Ok(tasks)
                }
                Err(e) => {
                    this.queued.fetch_sub(tasks.len(), Ordering::AcqRel);
                    Err(SubmitError::Store(e))
                }
            }
        });
        committed.await.map_err(|e| SubmitError::Store(StoreError::Write(format!("the commit was abandoned: {e}"))))?
    }
}
