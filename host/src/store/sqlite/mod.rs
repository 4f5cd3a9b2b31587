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
    PluginRecord, ScheduleRecord, Store, StoreError, StoreFuture, TaskEnd, TaskRecord, TokenRecord, VersionInfo,
};
use crate::config::{StoreConfig, Synchronous};
use crate::task::{TaskId, epoch_ms};
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

    fn unfinished(
        &self,
        after: Option<(SystemTime, TaskId)>,
        before: SystemTime,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let (after_ms, after_id) = after
            .map_or((-1, String::new()), |(at, id)| (i64::try_from(epoch_ms(at)).unwrap_or(i64::MAX), id.to_string()));
        self.read_tasks(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM tasks WHERE state IN ('queued', 'running') AND submitted_at_ms < ?1
                     AND (submitted_at_ms > ?2 OR (submitted_at_ms = ?2 AND id > ?3))
                 ORDER BY submitted_at_ms, id LIMIT ?4"
            ),
            rusqlite::params![epoch_ms(before), after_ms, after_id, u64::try_from(limit).unwrap_or(u64::MAX)],
        )
    }

    fn count_unfinished(&self, before: SystemTime) -> Result<usize, StoreError> {
        let counts = self.read(
            "SELECT COUNT(*) FROM tasks WHERE state IN ('queued', 'running') AND submitted_at_ms < ?1",
            [epoch_ms(before)],
            |row| rows::column::<u64>(row, 0),
        )?;
        Ok(counts.into_iter().next().map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)))
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
    use super::*;
    use crate::testing::TempDir;
    use schema::MIGRATIONS;

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
        let unfinished = store.unfinished(None, SystemTime::now(), 10).unwrap();
        assert_eq!(store.count_unfinished(SystemTime::now()).unwrap(), 1);
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
}
