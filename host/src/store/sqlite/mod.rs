//! The embedded store: `SQLite` (WAL) in the data directory, written by one thread that
//! commits whatever has queued up in one transaction, so that a burst of submissions costs
//! one sync to disk rather than one each. Outputs above `store.inline_output_kb` are files in
//! a directory beside the database, named by task id; finished tasks past their retention
//! (count and age) are deleted, files included, in the background.

mod outputs;
mod rows;
mod schema;
mod writer;

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{Connection, Row};
use tokio::sync::oneshot;

use super::{
    PluginRecord, RecordedBefore, ScheduleRecord, Store, StoreError, StoreFuture, TaskEnd, TaskRecord, TokenRecord,
    VersionInfo,
};
use crate::config::{StoreConfig, Synchronous};
use crate::task::{TaskId, epoch_ms, from_epoch_ms};
use rows::{END_COLUMNS, SCHEDULE_COLUMNS, SUMMARY_COLUMNS, schedule_record, task_end, task_record};
use schema::open_writer;
use writer::{Queued, Retention, Write, write_loop};

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Backend(Box::new(error))
    }
}

pub struct SqliteStore {
    path: String,
    retention: Retention,
    writes: Mutex<Option<mpsc::Sender<Queued>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` and checks it: a file that is not a database,
    /// is damaged or truncated, or comes from a newer build is refused with a clear error.
    /// Finished tasks beyond the `keep_finished` most recent, or older than the configured
    /// age, are pruned in the background.
    pub fn open(path: &Path, config: &StoreConfig, keep_finished: usize) -> Result<Self, StoreError> {
        let writer = open_writer(path, config.synchronous)?;
        let retention = Retention {
            outputs: path.with_extension("outputs"),
            inline_output_bytes: usize::try_from(config.inline_output_kb.saturating_mul(1024)).unwrap_or(usize::MAX),
            keep_finished,
            keep_for: Duration::from_secs(config.retain_finished_secs),
            prune_every: Duration::from_secs(config.prune_interval_secs),
            sync_files: config.synchronous == Synchronous::Full,
        };
        std::fs::create_dir_all(&retention.outputs)
            .and_then(|()| outputs::remove_partials(&retention.outputs))
            .map_err(|e| StoreError::Write(format!("cannot prepare {}: {e}", retention.outputs.display())))?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(Duration::from_secs(5))?;
        let (sender, receiver) = mpsc::channel();
        let for_writer = retention.clone();
        let thread = std::thread::Builder::new()
            .name("ignareo-store".into())
            .spawn(move || write_loop(writer, &receiver, &for_writer))
            .map_err(|e| StoreError::Write(format!("cannot start the store's writer thread: {e}")))?;
        Ok(Self {
            path: path.display().to_string(),
            retention,
            writes: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(thread)),
            reader: Mutex::new(reader),
        })
    }

    fn send(&self, queued: Queued) -> Result<(), StoreError> {
        let writes = self.writes.lock();
        writes.as_ref().ok_or(StoreError::Stopped)?.send(queued).map_err(|_| StoreError::Stopped)
    }

    /// A write whose commit the returned future waits for.
    fn commit(&self, write: Write) -> StoreFuture<'_> {
        let (done, committed) = oneshot::channel();
        let sent = self.send(Queued { write, done: Some(done) });
        Box::pin(async move {
            sent?;
            committed.await.map_err(|_| StoreError::Stopped)?
        })
    }

    /// A write nobody waits for: a failure is logged (the writer logs commit failures).
    fn send_quietly(&self, write: Write) {
        if let Err(e) = self.send(Queued { write, done: None }) {
            tracing::warn!(error = %e, "a change was not recorded in the store");
        }
    }

    fn read<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        parse: impl Fn(&Row<'_>) -> Result<T, String>,
    ) -> Result<Vec<T>, StoreError> {
        let reader = self.reader.lock();
        let mut statement = reader.prepare(sql)?;
        let rows = statement.query_map(params, |row| Ok(parse(row)))?;
        let mut records = Vec::new();
        for row in rows {
            records.push(row?.map_err(|cause| StoreError::Corrupt { path: self.path.clone(), cause })?);
        }
        Ok(records)
    }

    fn read_tasks(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(sql, params, task_record)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        Store::close(self);
    }
}

impl Store for SqliteStore {
    fn accept(&self, tasks: Vec<TaskRecord>) -> StoreFuture<'_> {
        self.commit(Write::Accept(tasks))
    }

    fn requeued(&self, id: TaskId) {
        self.send_quietly(Write::Requeued { id });
    }

    fn started(&self, id: TaskId, attempt: u32, at: SystemTime) {
        self.send_quietly(Write::Started { id, attempt, at });
    }

    fn finished(&self, id: TaskId, at: SystemTime, end: TaskEnd) -> StoreFuture<'_> {
        self.commit(Write::Finished { id, at, end })
    }

    fn recorded_before(&self) -> Result<RecordedBefore, StoreError> {
        // The sequence first: a row written before the time is read is after the mark by its
        // sequence, whatever time it was stamped with.
        let last = self.read("SELECT COALESCE(MAX(rowid), 0) FROM tasks", [], |row| rows::column::<u64>(row, 0))?;
        Ok(RecordedBefore {
            time: from_epoch_ms(epoch_ms(SystemTime::now())),
            sequence: last.into_iter().next().unwrap_or(0),
        })
    }

    fn unfinished(
        &self,
        after: Option<(SystemTime, TaskId)>,
        before: &RecordedBefore,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let (after_ms, after_id) = after
            .map_or((-1, String::new()), |(at, id)| (i64::try_from(epoch_ms(at)).unwrap_or(i64::MAX), id.to_string()));
        self.read_tasks(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM tasks
                 WHERE state IN ('queued', 'running') AND submitted_at_ms < ?1 AND rowid <= ?5
                     AND (submitted_at_ms > ?2 OR (submitted_at_ms = ?2 AND id > ?3))
                 ORDER BY submitted_at_ms, id LIMIT ?4"
            ),
            rusqlite::params![
                epoch_ms(before.time),
                after_ms,
                after_id,
                u64::try_from(limit).unwrap_or(u64::MAX),
                before.sequence
            ],
        )
    }

    fn count_unfinished(&self, before: &RecordedBefore) -> Result<usize, StoreError> {
        let counts = self.read(
            "SELECT COUNT(*) FROM tasks WHERE state IN ('queued', 'running') AND submitted_at_ms < ?1 AND rowid <= ?2",
            rusqlite::params![epoch_ms(before.time), before.sequence],
            |row| rows::column::<u64>(row, 0),
        )?;
        Ok(counts.into_iter().next().map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let found = self.read_tasks(&format!("SELECT {SUMMARY_COLUMNS} FROM tasks WHERE id = ?1"), [id.to_string()])?;
        Ok(found.into_iter().next())
    }

    fn input(&self, id: TaskId) -> Result<Option<Bytes>, StoreError> {
        let found = self.read("SELECT input FROM tasks WHERE id = ?1", [id.to_string()], |row| {
            rows::column::<Vec<u8>>(row, 0).map(Bytes::from)
        })?;
        Ok(found.into_iter().next())
    }

    fn output(&self, id: TaskId) -> Result<Option<TaskEnd>, StoreError> {
        let id = id.to_string();
        let found = self.read(&format!("SELECT {END_COLUMNS} FROM tasks WHERE id = ?1"), [&id], |row| {
            task_end(row, &self.retention.outputs, &id)
        })?;
        Ok(found.into_iter().flatten().next())
    }

    fn put_schedule(&self, schedule: ScheduleRecord) -> StoreFuture<'_> {
        self.commit(Write::PutSchedule(schedule))
    }

    fn delete_schedule(&self, name: String) -> StoreFuture<'_> {
        self.commit(Write::DeleteSchedule(name))
    }

    fn schedule_skipped(&self, name: String, at: SystemTime) {
        self.send_quietly(Write::ScheduleSkipped { name, at });
    }

    fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.read(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"), [], schedule_record)
    }

    fn put_plugin(&self, plugin: PluginRecord) -> StoreFuture<'_> {
        self.commit(Write::PutPlugin(plugin))
    }

    fn delete_plugin(&self, name: String) -> StoreFuture<'_> {
        self.commit(Write::DeletePlugin(name))
    }

    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let mut plugins = self.read("SELECT name, live FROM plugins ORDER BY name", [], |row| {
            Ok(PluginRecord {
                name: row.get(0).map_err(|e| e.to_string())?,
                live: row.get(1).map_err(|e| e.to_string())?,
                versions: Vec::new(),
            })
        })?;
        let versions = self.read(
            "SELECT plugin, version, component, manifest, size, uploaded_at_ms, compile_ms FROM plugin_versions ORDER BY plugin, position",
            [],
            |row| {
                let get = |e: rusqlite::Error| e.to_string();
                let plugin: String = row.get(0).map_err(get)?;
                let info = VersionInfo {
                    version: row.get(1).map_err(get)?,
                    component: row.get(2).map_err(get)?,
                    manifest: row.get(3).map_err(get)?,
                    size: row.get(4).map_err(get)?,
                    uploaded_at_ms: row.get(5).map_err(get)?,
                    compile_ms: row.get(6).map_err(get)?,
                };
                Ok((plugin, info))
            },
        )?;
        for (plugin, info) in versions {
            if let Some(record) = plugins.iter_mut().find(|p| p.name == plugin) {
                record.versions.push(info);
            }
        }
        Ok(plugins)
    }

    fn put_token(&self, token: TokenRecord) -> StoreFuture<'_> {
        self.commit(Write::PutToken(token))
    }

    fn delete_token(&self, id: String) -> StoreFuture<'_> {
        self.commit(Write::DeleteToken(id))
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read("SELECT record FROM tokens ORDER BY created_at_ms", [], |row| {
            let text: String = row.get(0).map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| format!("a token record: {e}"))
        })
    }

    fn close(&self) {
        drop(self.writes.lock().take());
        if let Some(thread) = self.writer.lock().take()
            && thread.join().is_err()
        {
            tracing::error!(path = %self.path, "the store's writer thread panicked");
        }
    }

    fn recent_finished(&self, limit: usize) -> Result<Vec<TaskRecord>, StoreError> {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        let since = epoch_ms(SystemTime::now().checked_sub(self.retention.keep_for).unwrap_or(UNIX_EPOCH));
        let mut records = self.read_tasks(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM tasks WHERE finished_at_ms >= ?2 ORDER BY finished_at_ms DESC LIMIT ?1"
            ),
            [limit, since],
        )?;
        records.reverse();
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::task::TaskState;
    use crate::testing::TempDir;
    use schema::MIGRATIONS;

    fn open(dir: &TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("ignareo.db"), &StoreConfig::default(), 10).unwrap()
    }

    /// A task of `hello` as accepted, submitted at `submitted_at`.
    fn accepted(submitted_at: SystemTime) -> TaskRecord {
        TaskRecord {
            id: TaskId::random(),
            plugin: "hello".to_owned(),
            version: "v1".to_owned(),
            owner: Some("t1".to_owned()),
            input: Bytes::from_static(b"{}"),
            timeout: Duration::from_secs(5),
            state: TaskState::Queued,
            attempts: 0,
            submitted_at,
            schedule: None,
            started_at: None,
            finished_at: None,
            end: None,
            sequence: None,
        }
    }

    #[test]
    fn a_store_of_the_first_schema_is_migrated_and_keeps_its_tasks() {
        let dir = TempDir::new();
        let path = dir.path().join("ignareo.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(MIGRATIONS[0]).unwrap();
            old.pragma_update(None, "user_version", 1).unwrap();
            old.execute(
                "INSERT INTO tasks (id, plugin, version, owner, input, timeout_ms, state, attempts, submitted_at_ms)
                 VALUES ('6f1c1a52-4a5e-4c43-9d0e-0c1c7a4f0a11', 'hello', 'v1', NULL, x'7b7d', 1000, 'queued', 0, 1)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, &StoreConfig::default(), 10).unwrap();
        let mark = store.recorded_before().unwrap();
        let unfinished = store.unfinished(None, &mark, 10).unwrap();
        assert_eq!(store.count_unfinished(&mark).unwrap(), 1);
        assert_eq!(unfinished.len(), 1);
        assert_eq!((unfinished[0].plugin.as_str(), unfinished[0].schedule.as_deref()), ("hello", None));
        assert!(
            store.schedules().unwrap().is_empty()
                && store.plugins().unwrap().is_empty()
                && store.tokens().unwrap().is_empty()
        );
        drop(store);
        let version: i64 =
            Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(usize::try_from(version).unwrap(), MIGRATIONS.len());
    }

    #[test]
    fn a_task_is_read_back_by_id_in_whatever_state_it_is_recorded() {
        let dir = TempDir::new();
        let store = open(&dir);
        let now = SystemTime::now();
        let (queued, running, finished) = (accepted(now), accepted(now), accepted(now));
        block_on(store.accept(vec![queued.clone(), running.clone(), finished.clone()])).unwrap();
        store.started(running.id, 1, now);
        store.started(finished.id, 1, now);
        let output = Bytes::from_static(b"\"done\"");
        let end =
            TaskEnd { state: TaskState::Succeeded, failure_kind: None, message: None, output: Some(output.clone()) };
        block_on(store.finished(finished.id, now, end)).unwrap();

        let read = |id| store.task(id).unwrap().unwrap();
        let (queued, running, finished) = (read(queued.id), read(running.id), read(finished.id));
        assert_eq!((queued.state, queued.attempts, queued.owner.as_deref()), (TaskState::Queued, 0, Some("t1")));
        assert!(queued.end.is_none() && queued.started_at.is_none() && queued.input.is_empty(), "{queued:?}");
        assert_eq!((running.state, running.attempts), (TaskState::Running, 1));
        assert!(running.end.is_none() && running.started_at.is_some(), "{running:?}");
        assert_eq!(finished.state, TaskState::Succeeded);
        assert!(finished.finished_at.is_some() && finished.end.as_ref().is_some_and(|end| end.output.is_none()));
        assert_eq!(store.output(finished.id).unwrap().and_then(|end| end.output), Some(output), "read on demand");
        assert!(queued.sequence < running.sequence && running.sequence < finished.sequence, "in the order written");
        assert!(store.task(TaskId::random()).unwrap().is_none());
    }

    #[test]
    fn the_backlog_mark_leaves_out_tasks_recorded_after_it_even_if_the_clock_stepped_back() {
        let dir = TempDir::new();
        let store = open(&dir);
        let an_hour_ago = SystemTime::now() - Duration::from_hours(1);
        let earlier = accepted(an_hour_ago);
        block_on(store.accept(vec![earlier.clone()])).unwrap();
        let mark = store.recorded_before().unwrap();
        // The clock stepped back: a task accepted after the mark reads as submitted before it.
        let later = accepted(an_hour_ago - Duration::from_mins(1));
        block_on(store.accept(vec![later.clone()])).unwrap();

        assert_eq!(store.count_unfinished(&mark).unwrap(), 1);
        let page: Vec<TaskId> = store.unfinished(None, &mark, 10).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(page, [earlier.id]);
        let (earlier, later) = (store.task(earlier.id).unwrap().unwrap(), store.task(later.id).unwrap().unwrap());
        assert!(mark.holds(&earlier) && !mark.holds(&later));

        let now = store.recorded_before().unwrap();
        let page: Vec<TaskId> = store.unfinished(None, &now, 10).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(page, [later.id, earlier.id], "a mark taken later holds both, oldest first");
        // A record written before the mark but stamped after its time is not held either: a
        // sequence the store reused cannot count a later task in by itself.
        let stamped_later = TaskRecord { submitted_at: now.time, ..earlier.clone() };
        assert!(!now.holds(&stamped_later) && !RecordedBefore::NOTHING.holds(&earlier));
    }
}
