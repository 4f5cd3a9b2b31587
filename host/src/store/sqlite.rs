//! The embedded store: SQLite (WAL) in the data directory, written by one thread that
//! commits whatever has queued up in one transaction, so that a burst of submissions costs
//! one sync to disk rather than one each. Outputs above `store.inline_output_kb` are files in
//! a directory beside the database, named by task id; finished tasks past their retention
//! (count and age) are deleted, files included, in the background.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, ErrorCode, Row, params};
use tokio::sync::oneshot;

use super::{PluginRecord, ScheduleRecord, Store, StoreError, StoreFuture, TaskEnd, TaskRecord};
use crate::auth::TokenRecord;
use crate::config::{StoreConfig, Synchronous};
use crate::registry::VersionInfo;
use crate::task::{TaskId, TaskState};

/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 4096;

/// The schema, one step per version: a file at version `n` gets the steps after its `n`th.
/// The schema this build writes is their count; a file with a higher one is refused.
const MIGRATIONS: [&str; 2] = [
    "
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    version TEXT NOT NULL,
    owner TEXT,
    input BLOB NOT NULL,
    timeout_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    submitted_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    finished_at_ms INTEGER,
    failure_kind TEXT,
    message TEXT,
    output BLOB,
    output_file INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (submitted_at_ms) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
",
    "
ALTER TABLE tasks ADD COLUMN schedule TEXT;
CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    input BLOB NOT NULL,
    cron TEXT,
    interval_ms INTEGER,
    timeout_ms INTEGER,
    overlap INTEGER NOT NULL,
    paused INTEGER NOT NULL,
    owner TEXT,
    created_at_ms INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    last_run_at_ms INTEGER,
    last_task TEXT,
    runs INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE plugins (
    name TEXT PRIMARY KEY,
    live TEXT NOT NULL
) STRICT;
CREATE TABLE plugin_versions (
    plugin TEXT NOT NULL,
    position INTEGER NOT NULL,
    version TEXT NOT NULL,
    component TEXT NOT NULL,
    manifest TEXT,
    size INTEGER NOT NULL,
    uploaded_at_ms INTEGER NOT NULL,
    compile_ms INTEGER NOT NULL,
    PRIMARY KEY (plugin, position)
) STRICT;
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    record TEXT NOT NULL
) STRICT;
",
];

const COLUMNS: &str = "id, plugin, version, owner, input, timeout_ms, state, attempts, submitted_at_ms, started_at_ms, finished_at_ms, \
                       failure_kind, message, output, output_file, schedule";

const SCHEDULE_COLUMNS: &str = "name, plugin, input, cron, interval_ms, timeout_ms, overlap, paused, owner, created_at_ms, since_ms, \
                                last_run_at_ms, last_task, runs, skipped";

enum Write {
    Accept(Vec<TaskRecord>),
    Requeued { id: TaskId },
    Started { id: TaskId, attempt: u32, at: SystemTime },
    Finished { id: TaskId, at: SystemTime, end: TaskEnd },
    PutSchedule(ScheduleRecord),
    DeleteSchedule(String),
    ScheduleSkipped { name: String, at: SystemTime },
    PutPlugin(PluginRecord),
    DeletePlugin(String),
    PutToken(TokenRecord),
    DeleteToken(String),
}

/// A write, and who waits for its commit.
struct Queued {
    write: Write,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// What the writer keeps, and where large outputs go.
#[derive(Clone)]
struct Retention {
    outputs: PathBuf,
    inline_output_bytes: usize,
    keep_finished: usize,
    keep_for: Duration,
    prune_every: Duration,
    sync_files: bool,
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
            .map_err(|e| StoreError::Write(format!("cannot create {}: {e}", retention.outputs.display())))?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(Duration::from_secs(5))?;
        let (sender, receiver) = mpsc::channel();
        let for_writer = retention.clone();
        let thread = std::thread::Builder::new()
            .name("ignareo-store".into())
            .spawn(move || write_loop(writer, receiver, &for_writer))
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
        let writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.as_ref().ok_or(StoreError::Stopped)?.send(queued).map_err(|_| StoreError::Stopped)
    }

    /// A write whose commit the returned future waits for.
    fn commit(&self, write: Write) -> StoreFuture<'_> {
        let (done, committed) = oneshot::channel();
        let sent = self.send(Queued { write, done: Some(done) });
        Box::pin(async move {
            sent?;
            committed.await.map_err(|_| StoreError::Stopped)?.map_err(StoreError::Write)
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
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement = reader.prepare(sql)?;
        let rows = statement.query_map(params, |row| Ok(parse(row)))?;
        let mut records = Vec::new();
        for row in rows {
            records.push(row?.map_err(|cause| StoreError::Corrupt { path: self.path.clone(), cause })?);
        }
        Ok(records)
    }

    fn read_tasks(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(sql, params, |row| task_record(row, &self.retention.outputs))
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

    fn finished(&self, id: TaskId, at: SystemTime, end: TaskEnd) {
        self.send_quietly(Write::Finished { id, at, end });
    }

    fn unfinished(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.read_tasks(
            &format!("SELECT {COLUMNS} FROM tasks WHERE state IN ('queued', 'running') ORDER BY submitted_at_ms"),
            [],
        )
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
        drop(self.writes.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(thread) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take()
            && thread.join().is_err()
        {
            tracing::error!(path = %self.path, "the store's writer thread panicked");
        }
    }

    fn recent_finished(&self, limit: usize) -> Result<Vec<TaskRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let since = epoch_ms(SystemTime::now().checked_sub(self.retention.keep_for).unwrap_or(UNIX_EPOCH));
        let mut records = self.read_tasks(
            &format!("SELECT {COLUMNS} FROM tasks WHERE finished_at_ms >= ?2 ORDER BY finished_at_ms DESC LIMIT ?1"),
            [limit, since],
        )?;
        records.reverse();
        Ok(records)
    }
}

/// The writer's connection to a checked store, its schema in place.
fn open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let shown = path.display().to_string();
    let corrupt = |e: rusqlite::Error| match &e {
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(failure.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) =>
        {
            StoreError::Corrupt { path: shown.clone(), cause: e.to_string() }
        }
        _ => StoreError::Database(e),
    };
    let mut writer = Connection::open(path).map_err(corrupt)?;
    writer.pragma_update(None, "journal_mode", "WAL").map_err(corrupt)?;
    writer.pragma_update(None, "synchronous", synchronous.pragma()).map_err(corrupt)?;
    writer.busy_timeout(Duration::from_secs(5))?;
    let check: String = writer.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(corrupt)?;
    if check != "ok" {
        return Err(StoreError::Corrupt { path: shown, cause: check });
    }
    let found: i64 = writer.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(corrupt)?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(StoreError::NewerSchema { found, supported });
    }
    let tx = writer.transaction()?;
    for step in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", supported)?;
    tx.commit()?;
    Ok(writer)
}

/// Takes whatever writes have queued up, commits them in one transaction, tells the waiting
/// submitters; prunes now and then; until every sender is gone.
fn write_loop(mut connection: Connection, writes: mpsc::Receiver<Queued>, retention: &Retention) {
    let mut pruned_at: Option<Instant> = None;
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= retention.prune_every) {
            if let Err(e) = prune(&connection, retention) {
                tracing::warn!(error = %e, "cannot prune finished tasks from the store");
            }
            pruned_at = Some(Instant::now());
        }
        let first = match writes.recv_timeout(retention.prune_every) {
            Ok(write) => write,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return checkpoint(&connection),
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(write) = writes.try_recv()
        {
            batch.push(write);
        }
        let result = commit(&mut connection, &batch, retention);
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = batch.len(), "cannot commit to the store");
        }
        for done in batch.into_iter().filter_map(|queued| queued.done) {
            let _ = done.send(result.clone());
        }
    }
}

/// Moves the write-ahead log into the database file, so that a stopped host leaves one
/// self-contained file behind.
fn checkpoint(connection: &Connection) {
    if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "cannot checkpoint the store's log");
    }
}

/// Deletes finished tasks past their retention: older than its age, or beyond its count of
/// most recently finished (tasks that finished in the same millisecond as the first one beyond
/// go with it); then their output files.
fn prune(connection: &Connection, retention: &Retention) -> rusqlite::Result<()> {
    let before = epoch_ms(SystemTime::now().checked_sub(retention.keep_for).unwrap_or(UNIX_EPOCH));
    let mut statement = connection.prepare_cached(
        "DELETE FROM tasks WHERE finished_at_ms < ?1 OR finished_at_ms <= (SELECT finished_at_ms FROM tasks
             WHERE finished_at_ms IS NOT NULL ORDER BY finished_at_ms DESC LIMIT 1 OFFSET ?2)
         RETURNING id, output_file",
    )?;
    let deleted = statement
        .query_map(params![before, i64::try_from(retention.keep_finished).unwrap_or(i64::MAX)], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })?;
    let mut pruned = 0;
    for row in deleted {
        let (id, in_file) = row?;
        pruned += 1;
        if in_file && let Err(e) = std::fs::remove_file(retention.outputs.join(&id)) {
            tracing::warn!(task = %id, error = %e, "cannot delete a pruned task's output file");
        }
    }
    if pruned > 0 {
        tracing::debug!(pruned, "finished tasks past their retention deleted");
    }
    Ok(())
}

/// Writes an output too large for a row to its file (write, then rename), before the row that
/// points at it is committed.
fn write_output_file(retention: &Retention, id: &TaskId, output: &[u8]) -> std::io::Result<()> {
    let path = retention.outputs.join(id.to_string());
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(output)?;
    if retention.sync_files {
        file.sync_all()?;
    }
    std::fs::rename(partial, path)
}

fn commit(connection: &mut Connection, batch: &[Queued], retention: &Retention) -> Result<(), String> {
    for queued in batch {
        if let Write::Finished { id, end: TaskEnd { output: Some(output), .. }, .. } = &queued.write
            && output.len() > retention.inline_output_bytes
        {
            write_output_file(retention, id, output)
                .map_err(|e| format!("cannot write the output of task {id}: {e}"))?;
        }
    }
    commit_rows(connection, batch, retention.inline_output_bytes).map_err(|e| e.to_string())
}

fn commit_rows(connection: &mut Connection, batch: &[Queued], inline_output_bytes: usize) -> rusqlite::Result<()> {
    let tx = connection.transaction()?;
    for queued in batch {
        apply(&tx, &queued.write, inline_output_bytes)?;
    }
    tx.commit()
}

fn apply(tx: &rusqlite::Transaction<'_>, write: &Write, inline_output_bytes: usize) -> rusqlite::Result<()> {
    match write {
        Write::Accept(tasks) => {
            let mut insert = tx.prepare_cached(
                "INSERT INTO tasks (id, plugin, version, owner, input, timeout_ms, state, attempts, submitted_at_ms, schedule)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9)",
            )?;
            let mut ran = tx.prepare_cached(
                "UPDATE schedules SET last_run_at_ms = ?2, last_task = ?3, runs = runs + 1 WHERE name = ?1",
            )?;
            for task in tasks {
                let id = task.id.to_string();
                let submitted_at = epoch_ms(task.submitted_at);
                insert.execute(params![
                    id,
                    task.plugin,
                    task.version,
                    task.owner,
                    task.input.as_ref(),
                    millis(task.timeout),
                    task.attempts,
                    submitted_at,
                    task.schedule,
                ])?;
                if let Some(schedule) = &task.schedule {
                    ran.execute(params![schedule, submitted_at, id])?;
                }
            }
        }
        Write::Requeued { id } => {
            tx.prepare_cached("UPDATE tasks SET state = 'queued' WHERE id = ?1")?.execute([id.to_string()])?;
        }
        Write::Started { id, attempt, at } => {
            tx.prepare_cached("UPDATE tasks SET state = 'running', attempts = ?2, started_at_ms = ?3 WHERE id = ?1")?
                .execute(params![id.to_string(), attempt, epoch_ms(*at)])?;
        }
        Write::Finished { id, at, end } => {
            let in_file = end.output.as_ref().is_some_and(|output| output.len() > inline_output_bytes);
            tx.prepare_cached(
                "UPDATE tasks SET state = ?2, finished_at_ms = ?3, failure_kind = ?4, message = ?5, output = ?6, output_file = ?7 WHERE id = ?1",
            )?
            .execute(params![
                id.to_string(),
                end.state.as_str(),
                epoch_ms(*at),
                end.failure_kind,
                end.message,
                if in_file { None } else { end.output.as_deref() },
                in_file,
            ])?;
        }
        Write::PutSchedule(s) => {
            tx.prepare_cached(&format!(
                "INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (name) DO UPDATE SET plugin = excluded.plugin, input = excluded.input, cron = excluded.cron,
                     interval_ms = excluded.interval_ms, timeout_ms = excluded.timeout_ms, overlap = excluded.overlap,
                     paused = excluded.paused, owner = excluded.owner, since_ms = excluded.since_ms"
            ))?
            .execute(params![
                s.name,
                s.plugin,
                s.input.as_ref(),
                s.cron,
                s.interval.map(millis),
                s.timeout.map(millis),
                s.overlap,
                s.paused,
                s.owner,
                epoch_ms(s.created_at),
                epoch_ms(s.since),
                s.last_run_at.map(epoch_ms),
                s.last_task.map(|id| id.to_string()),
                s.runs,
                s.skipped,
            ])?;
        }
        Write::DeleteSchedule(name) => {
            tx.prepare_cached("DELETE FROM schedules WHERE name = ?1")?.execute([name])?;
        }
        Write::ScheduleSkipped { name, at } => {
            tx.prepare_cached("UPDATE schedules SET last_run_at_ms = ?2, skipped = skipped + 1 WHERE name = ?1")?
                .execute(params![name, epoch_ms(*at)])?;
        }
        Write::PutPlugin(plugin) => {
            tx.prepare_cached("INSERT INTO plugins (name, live) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET live = excluded.live")?
                .execute([&plugin.name, &plugin.live])?;
            tx.prepare_cached("DELETE FROM plugin_versions WHERE plugin = ?1")?.execute([&plugin.name])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO plugin_versions (plugin, position, version, component, manifest, size, uploaded_at_ms, compile_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (position, v) in plugin.versions.iter().enumerate() {
                insert.execute(params![
                    plugin.name,
                    position,
                    v.version,
                    v.component,
                    v.manifest,
                    v.size,
                    v.uploaded_at_ms,
                    v.compile_ms
                ])?;
            }
        }
        Write::DeletePlugin(name) => {
            tx.prepare_cached("DELETE FROM plugin_versions WHERE plugin = ?1")?.execute([name])?;
            tx.prepare_cached("DELETE FROM plugins WHERE name = ?1")?.execute([name])?;
        }
        Write::PutToken(token) => {
            let record =
                serde_json::to_string(token).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            tx.prepare_cached("INSERT OR REPLACE INTO tokens (id, created_at_ms, record) VALUES (?1, ?2, ?3)")?
                .execute(params![token.id, token.created_at_ms, record])?;
        }
        Write::DeleteToken(id) => {
            tx.prepare_cached("DELETE FROM tokens WHERE id = ?1")?.execute([id])?;
        }
    }
    Ok(())
}

/// A row as a record (its output read from its file if it has one); `Err` names what is
/// wrong with it.
fn task_record(row: &Row<'_>, outputs: &Path) -> Result<TaskRecord, String> {
    let text = |i: usize| row.get::<_, String>(i).map_err(|e| e.to_string());
    let id = text(0)?;
    let state = text(6)?;
    let time = |i: usize| row.get::<_, Option<i64>>(i).map(|ms| ms.map(from_epoch_ms)).map_err(|e| e.to_string());
    let end_state = TaskState::from_str(&state).map_err(|e| format!("task {id}: {e}"))?;
    let finished_at = time(10)?;
    let end = if finished_at.is_some() {
        Some(TaskEnd {
            state: end_state,
            failure_kind: row.get(11).map_err(|e| e.to_string())?,
            message: row.get(12).map_err(|e| e.to_string())?,
            output: if row.get::<_, bool>(14).map_err(|e| e.to_string())? {
                output_file(outputs, &id)
            } else {
                row.get::<_, Option<Vec<u8>>>(13).map_err(|e| e.to_string())?.map(Bytes::from)
            },
        })
    } else {
        None
    };
    Ok(TaskRecord {
        id: TaskId::from_str(&id).map_err(|e| format!("task id {id:?}: {e}"))?,
        plugin: text(1)?,
        version: text(2)?,
        owner: row.get(3).map_err(|e| e.to_string())?,
        input: Bytes::from(row.get::<_, Vec<u8>>(4).map_err(|e| e.to_string())?),
        timeout: Duration::from_millis(row.get::<_, i64>(5).map_err(|e| e.to_string())?.max(0).unsigned_abs()),
        state: end_state,
        attempts: row.get(7).map_err(|e| e.to_string())?,
        submitted_at: from_epoch_ms(row.get(8).map_err(|e| e.to_string())?),
        schedule: row.get(15).map_err(|e| e.to_string())?,
        started_at: time(9)?,
        finished_at,
        end,
    })
}

fn schedule_record(row: &Row<'_>) -> Result<ScheduleRecord, String> {
    let e = |e: rusqlite::Error| e.to_string();
    let time = |i: usize| row.get::<_, Option<i64>>(i).map(|ms| ms.map(from_epoch_ms)).map_err(e);
    let duration = |i: usize| {
        row.get::<_, Option<i64>>(i).map(|ms| ms.map(|ms| Duration::from_millis(ms.max(0).unsigned_abs()))).map_err(e)
    };
    let name: String = row.get(0).map_err(e)?;
    let last_task = row
        .get::<_, Option<String>>(12)
        .map_err(e)?
        .map(|id| TaskId::from_str(&id).map_err(|err| format!("schedule {name}: last task {id:?}: {err}")))
        .transpose()?;
    Ok(ScheduleRecord {
        plugin: row.get(1).map_err(e)?,
        input: Bytes::from(row.get::<_, Vec<u8>>(2).map_err(e)?),
        cron: row.get(3).map_err(e)?,
        interval: duration(4)?,
        timeout: duration(5)?,
        overlap: row.get(6).map_err(e)?,
        paused: row.get(7).map_err(e)?,
        owner: row.get(8).map_err(e)?,
        created_at: from_epoch_ms(row.get(9).map_err(e)?),
        since: from_epoch_ms(row.get(10).map_err(e)?),
        last_run_at: time(11)?,
        last_task,
        runs: row.get(13).map_err(e)?,
        skipped: row.get(14).map_err(e)?,
        name,
    })
}

/// A finished task's output kept as a file; a missing file is reported and read as no output.
fn output_file(outputs: &Path, id: &str) -> Option<Bytes> {
    match std::fs::read(outputs.join(id)) {
        Ok(bytes) => Some(Bytes::from(bytes)),
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "the output file of a finished task cannot be read");
            None
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, millis)
}

fn from_epoch_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_the_first_schema_is_migrated_and_keeps_its_tasks() {
        let dir = std::env::temp_dir().join(format!("ignareo-migrate-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ignareo.db");
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
        let unfinished = store.unfinished().unwrap();
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
        assert_eq!(version, MIGRATIONS.len() as i64);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
