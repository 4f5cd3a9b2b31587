//! Schedules: tasks that start on their own, by a cron expression or at an interval, as
//! ordinary recorded tasks linked to their schedule (`GET /v1/tasks?schedule=...`).
//!
//! - A schedule never overlaps itself unless its `overlap` says so: a run that comes due
//!   while the previous run is queued or running is skipped, and counted as skipped.
//! - Runs missed while the host was down (or too busy to start them) run once when it can,
//!   then the schedule keeps to its times: a minute schedule down for ten minutes runs once,
//!   not ten times.
//! - A paused schedule does not run; resumed, it runs at its next time after the resume (an
//!   interval counts from the resume).
//! - A run that cannot be accepted (plugin deleted, queue full, store failing) is not
//!   retried: the schedule shows why in `last_error` and runs again at its next time.
//! - A schedule runs for the token that defined it, checked at every run: once that token is
//!   revoked (or may not trigger the plugin), the schedule is paused and `last_error` says
//!   why; an admin may define it anew to run it under another token.
//! - Who may change a schedule is checked under the same lock as the change itself, so a
//!   schedule cannot change hands between the check and the change.
//! - A run and its task are committed together (see the store's contract), so a crash can
//!   neither lose a run that started a task nor run it twice.

mod timing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use timing::{MAX_INTERVAL, Timing};

use crate::scheduler::{Scheduler, SubmitError};
use crate::store::{ScheduleRecord, Store, StoreError};
use crate::task::OwnerRefusal;

/// The longest the loop sleeps before looking at the clock again, so that a jump of the
/// wall clock is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("no schedule named {0:?}")]
    NotFound(String),
    #[error("{0} schedules exist already (limits.max_schedules): delete some first")]
    TooMany(usize),
    #[error("schedule {0:?} was defined with another token; only it or an admin may change it")]
    Forbidden(String),
    #[error("{0}; the schedule was not changed, retry later")]
    Store(#[from] StoreError),
}

/// What a schedule runs, and when.
pub struct Definition {
    pub plugin: String,
    pub input: Bytes,
    pub timing: Timing,
    pub timeout: Option<Duration>,
    pub overlap: bool,
    pub paused: bool,
}

/// A schedule at one moment, for the API.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub record: ScheduleRecord,
    /// When it runs next; `None` while paused.
    pub next_run_at: Option<SystemTime>,
    /// Why its last run could not start, if it could not.
    pub last_error: Option<String>,
}

struct Entry {
    record: ScheduleRecord,
    timing: Option<Timing>,
    due: Option<SystemTime>,
    /// A run is being accepted.
    starting: bool,
    last_error: Option<String>,
}

impl Entry {
    fn new(record: ScheduleRecord, timing: Option<Timing>, now: SystemTime) -> Self {
        let mut entry = Self { record, timing, due: None, starting: false, last_error: None };
        entry.plan(now);
        entry
    }

    /// Sets when the schedule runs next: its first time after its last run (or its
    /// definition), which may be past (a missed run, due at once).
    fn plan(&mut self, now: SystemTime) {
        let after = self.record.last_run_at.map_or(self.record.since, |last| last.max(self.record.since));
        self.due = match &self.timing {
            Some(timing) if !self.record.paused => timing.next_after(after.min(now), self.record.since),
            _ => None,
        };
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot { record: self.record.clone(), next_run_at: self.due, last_error: self.last_error.clone() }
    }

    /// Pauses a schedule whose token may start no more runs, saying why.
    fn stop(&mut self, refusal: &OwnerRefusal, now: SystemTime) {
        self.record.paused = true;
        self.plan(now);
        self.last_error = Some(format!(
            "{refusal}; the schedule is paused: an admin may define it anew to run it under another token"
        ));
    }

    /// Refuses the change unless `may_change` allows it for this schedule's token.
    fn check_owner(&self, may_change: impl Fn(Option<&str>) -> bool) -> Result<(), ScheduleError> {
        if may_change(self.record.owner.as_deref()) {
            return Ok(());
        }
        Err(ScheduleError::Forbidden(self.record.name.clone()))
    }
}

/// A run that came due.
struct Run {
    schedule: Arc<str>,
    plugin: String,
    input: Bytes,
    timeout: Option<Duration>,
    owner: Option<Arc<str>>,
}

pub struct Schedules {
    scheduler: Arc<Scheduler>,
    store: Arc<dyn Store>,
    max: usize,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Held while a definition changes, so that the store and the entries take changes in
    /// the same order.
    edits: tokio::sync::Mutex<()>,
    changed: Notify,
}

impl Schedules {
    /// The recorded schedules, each due at its next time (a missed one at once).
    pub fn load(store: Arc<dyn Store>, scheduler: Arc<Scheduler>, max: usize) -> Result<Arc<Self>, StoreError> {
        let now = SystemTime::now();
        let mut entries = BTreeMap::new();
        for record in store.schedules()? {
            let timing = match (&record.cron, record.interval) {
                (Some(expression), _) => Timing::cron(expression),
                (None, Some(interval)) => Timing::every(interval),
                (None, None) => Err("neither a cron expression nor an interval is recorded".to_owned()),
            };
            let (timing, error) = match timing {
                Ok(timing) => (Some(timing), None),
                Err(e) => {
                    tracing::error!(schedule = %record.name, error = %e, "a recorded schedule cannot run; define it again");
                    (None, Some(e))
                }
            };
            let refusal = scheduler.may_start(record.owner.as_deref(), &record.plugin).err();
            let mut entry = Entry::new(record, timing, now);
            entry.last_error = error;
            if let Some(refusal) = refusal {
                entry.stop(&refusal, now);
            }
            entries.insert(entry.record.name.clone(), entry);
        }
        Ok(Arc::new(Self {
            scheduler,
            store,
            max,
            entries: Mutex::new(entries),
            edits: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
        }))
    }

    pub fn list(&self) -> Vec<Snapshot> {
        self.entries.lock().values().map(Entry::snapshot).collect()
    }

    pub fn get(&self, name: &str) -> Option<Snapshot> {
        self.entries.lock().get(name).map(Entry::snapshot)
    }

    /// Defines a schedule, or defines an existing one anew if `may_change` allows it for its
    /// token (its counts kept; its runs are then `owner`'s). Answers the schedule and whether
    /// it is new.
    pub async fn put(
        &self,
        name: &str,
        definition: Definition,
        owner: Option<Arc<str>>,
        may_change: impl Fn(Option<&str>) -> bool,
    ) -> Result<(Snapshot, bool), ScheduleError> {
        let _edit = self.edits.lock().await;
        let now = SystemTime::now();
        let (existing, count) = {
            let entries = self.entries.lock();
            let existing =
                entries.get(name).map(|e| e.check_owner(&may_change).map(|()| e.record.clone())).transpose()?;
            (existing, entries.len())
        };
        if existing.is_none() && count >= self.max {
            return Err(ScheduleError::TooMany(count));
        }
        let (cron, interval) = match &definition.timing {
            Timing::Cron { expression, .. } => (Some(expression.clone()), None),
            Timing::Every(interval) => (None, Some(*interval)),
        };
        let record = ScheduleRecord {
            name: name.to_owned(),
            plugin: definition.plugin,
            input: definition.input,
            cron,
            interval,
            timeout: definition.timeout,
            overlap: definition.overlap,
            paused: definition.paused,
            owner: owner.as_deref().map(str::to_owned),
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            since: now,
            last_run_at: existing.as_ref().and_then(|e| e.last_run_at),
            last_task: existing.as_ref().and_then(|e| e.last_task),
            runs: existing.as_ref().map_or(0, |e| e.runs),
            skipped: existing.as_ref().map_or(0, |e| e.skipped),
        };
        self.store.put_schedule(record.clone()).await?;
        let snapshot = {
            let mut entries = self.entries.lock();
            let starting = entries.get(name).is_some_and(|e| e.starting);
            let mut entry = Entry::new(record, Some(definition.timing), now);
            entry.starting = starting;
            let snapshot = entry.snapshot();
            entries.insert(name.to_owned(), entry);
            snapshot
        };
        self.changed.notify_one();
        Ok((snapshot, existing.is_none()))
    }

    /// Pauses or resumes a schedule if `may_change` allows it for its token; a resumed one
    /// runs at its next time after now.
    pub async fn set_paused(
        &self,
        name: &str,
        paused: bool,
        may_change: impl Fn(Option<&str>) -> bool,
    ) -> Result<Snapshot, ScheduleError> {
        let _edit = self.edits.lock().await;
        let now = SystemTime::now();
        let mut record = self
            .entries
            .lock()
            .get(name)
            .ok_or_else(|| ScheduleError::NotFound(name.to_owned()))
            .and_then(|e| e.check_owner(may_change).map(|()| e.record.clone()))?;
        if record.paused == paused {
            return self.get(name).ok_or_else(|| ScheduleError::NotFound(name.to_owned()));
        }
        record.paused = paused;
        if !paused {
            record.since = now;
        }
        self.store.put_schedule(record.clone()).await?;
        let snapshot = {
            let mut entries = self.entries.lock();
            let entry = entries.get_mut(name).ok_or_else(|| ScheduleError::NotFound(name.to_owned()))?;
            entry.record.paused = record.paused;
            entry.record.since = record.since;
            entry.plan(now);
            entry.snapshot()
        };
        self.changed.notify_one();
        Ok(snapshot)
    }

    /// Deletes a schedule if `may_change` allows it for its token; a run already started goes
    /// on as an ordinary task.
    pub async fn delete(&self, name: &str, may_change: impl Fn(Option<&str>) -> bool) -> Result<(), ScheduleError> {
        let _edit = self.edits.lock().await;
        self.entries
            .lock()
            .get(name)
            .ok_or_else(|| ScheduleError::NotFound(name.to_owned()))
            .and_then(|e| e.check_owner(may_change))?;
        self.store.delete_schedule(name.to_owned()).await?;
        self.entries.lock().remove(name);
        self.changed.notify_one();
        Ok(())
    }

    /// Pauses the schedules defined with token `owner`, which may start no more runs (it was
    /// revoked), saying why in their `last_error`.
    pub async fn stop_runs_of(&self, owner: &str, refusal: &OwnerRefusal) {
        let _edit = self.edits.lock().await;
        let now = SystemTime::now();
        let stopped: Vec<ScheduleRecord> = self
            .entries
            .lock()
            .values_mut()
            .filter(|e| e.record.owner.as_deref() == Some(owner))
            .map(|entry| {
                entry.stop(refusal, now);
                entry.record.clone()
            })
            .collect();
        self.record_stopped(stopped).await;
    }

    /// Records schedules paused by [`Entry::stop`]. They stay paused in memory if the store
    /// fails: a restart stops them again, since their token is checked when they are loaded.
    async fn record_stopped(&self, stopped: Vec<ScheduleRecord>) {
        for record in stopped {
            let name = record.name.clone();
            if let Err(e) = self.store.put_schedule(record).await {
                tracing::warn!(schedule = %name, error = %e, "a stopped schedule's pause could not be recorded");
            }
        }
    }

    /// Starts the runs that come due, until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let now = SystemTime::now();
            for run in self.take_due(now) {
                tokio::spawn(self.clone().start(run));
            }
            let next = self.entries.lock().values().filter_map(|e| e.due).min();
            let wait =
                next.map_or(MAX_SLEEP, |due| due.duration_since(SystemTime::now()).unwrap_or_default().min(MAX_SLEEP));
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The runs due at `now`, each schedule planned on to its next time after `now`; runs
    /// that would overlap the previous one are skipped.
    fn take_due(&self, now: SystemTime) -> Vec<Run> {
        let mut runs = Vec::new();
        let mut entries = self.entries.lock();
        for entry in entries.values_mut().filter(|e| e.due.is_some_and(|due| due <= now)) {
            let record = &mut entry.record;
            entry.due = entry.timing.as_ref().and_then(|t| t.next_after(now, record.since));
            let previous_unfinished = entry.starting
                || record.last_task.and_then(|id| self.scheduler.get(id)).is_some_and(|task| !task.state().is_final());
            if previous_unfinished && !record.overlap {
                record.skipped += 1;
                record.last_run_at = Some(now);
                self.store.schedule_skipped(record.name.clone(), now);
                tracing::info!(schedule = %record.name, "a run was skipped: the previous run has not ended (set overlap to allow it)");
                continue;
            }
            entry.starting = true;
            runs.push(Run {
                schedule: record.name.as_str().into(),
                plugin: record.plugin.clone(),
                input: record.input.clone(),
                timeout: record.timeout,
                owner: record.owner.as_deref().map(Arc::from),
            });
        }
        runs
    }

    async fn start(self: Arc<Self>, run: Run) {
        let owner = run.owner.clone();
        let result =
            self.scheduler.accept_run(run.schedule.clone(), &run.plugin, run.input, run.timeout, run.owner).await;
        if let Err(SubmitError::Owner(refusal)) = &result {
            self.stop_refused(&run.schedule, owner.as_deref(), refusal).await;
            return;
        }
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(&*run.schedule) else {
            return;
        };
        entry.starting = false;
        match result {
            Ok(task) => {
                entry.record.runs += 1;
                entry.record.last_run_at = Some(task.submitted_at);
                entry.record.last_task = Some(task.id);
                entry.last_error = None;
                tracing::debug!(schedule = %run.schedule, task = %task.id, "scheduled run started");
            }
            Err(e) => {
                tracing::warn!(schedule = %run.schedule, error = %e, "a scheduled run could not start; the schedule runs again at its next time");
                entry.last_error = Some(e.to_string());
            }
        }
    }

    /// Pauses a schedule whose run its token may not start, unless it was defined anew (for
    /// another token) meanwhile.
    async fn stop_refused(&self, name: &str, owner: Option<&str>, refusal: &OwnerRefusal) {
        tracing::warn!(schedule = %name, error = %refusal, "a scheduled run was refused for its token; the schedule is paused");
        let _edit = self.edits.lock().await;
        let stopped = {
            let mut entries = self.entries.lock();
            let Some(entry) = entries.get_mut(name) else {
                return;
            };
            entry.starting = false;
            if entry.record.owner.as_deref() != owner {
                return;
            }
            entry.stop(refusal, SystemTime::now());
            entry.record.clone()
        };
        self.record_stopped(vec![stopped]).await;
    }
}
