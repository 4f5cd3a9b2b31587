//! The embedded task store: SQLite (WAL) in the data directory, written by one thread that
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

use super::{StoreError, StoreFuture, TaskEnd, TaskRecord, TaskStore};
use crate::config::{StoreConfig, Synchronous};
use crate::task::{TaskId, TaskState};

/// The schema this build writes; a file with a higher one is refused.
const SCHEMA_VERSION: i64 = 1;
/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 4096;

const SCHEMA: &str = "
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
";

const COLUMNS: &str =
    "id, plugin, version, owner, input, timeout_ms, state, attempts, submitted_at_ms, started_at_ms, finished_at_ms, failure_kind, message, output, output_file";

enum Write {
    Accept { tasks: Vec<TaskRecord>, done: oneshot::Sender<Result<(), String>> },
    Requeued { id: TaskId },
    Started { id: TaskId, attempt: u32, at: SystemTime },
    Finished { id: TaskId, at: SystemTime, end: TaskEnd },
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
    writes: Mutex<Option<mpsc::Sender<Write>>>,
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

    fn send(&self, write: Write) -> Result<(), StoreError> {
        let writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.as_ref().ok_or(StoreError::Stopped)?.send(write).map_err(|_| StoreError::Stopped)
    }

    /// A write nobody waits for: a failure is logged (the writer logs commit failures).
    fn send_quietly(&self, write: Write) {
        if let Err(e) = self.send(write) {
            tracing::warn!(error = %e, "a task's state was not recorded");
        }
    }

    fn read(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<TaskRecord>, StoreError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement = reader.prepare(sql)?;
        let rows = statement.query_map(params, |row| Ok(record(row, &self.retention.outputs)))?;
        let mut records = Vec::new();
        for row in rows {
            records.push(row?.map_err(|cause| StoreError::Corrupt { path: self.path.clone(), cause })?);
        }
        Ok(records)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        TaskStore::close(self);
    }
}

impl TaskStore for SqliteStore {
    fn accept(&self, tasks: Vec<TaskRecord>) -> StoreFuture<'_> {
        let (done, committed) = oneshot::channel();
        let sent = self.send(Write::Accept { tasks, done });
        Box::pin(async move {
            sent?;
            committed.await.map_err(|_| StoreError::Stopped)?.map_err(StoreError::Write)
        })
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
        self.read(&format!("SELECT {COLUMNS} FROM tasks WHERE state IN ('queued', 'running') ORDER BY submitted_at_ms"), [])
    }

    fn close(&self) {
        drop(self.writes.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(thread) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take()
            && thread.join().is_err()
        {
            tracing::error!(path = %self.path, "the task store's writer thread panicked");
        }
    }

    fn recent_finished(&self, limit: usize) -> Result<Vec<TaskRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let since = epoch_ms(SystemTime::now().checked_sub(self.retention.keep_for).unwrap_or(UNIX_EPOCH));
        let mut records = self.read(
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
        rusqlite::Error::SqliteFailure(failure, _) if matches!(failure.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
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
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found, supported: SCHEMA_VERSION });
    }
    let tx = writer.transaction()?;
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(writer)
}

/// Takes whatever writes have queued up, commits them in one transaction, tells the waiting
/// submitters; prunes now and then; until every sender is gone.
fn write_loop(mut connection: Connection, writes: mpsc::Receiver<Write>, retention: &Retention) {
    let mut pruned_at: Option<Instant> = None;
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= retention.prune_every) {
            if let Err(e) = prune(&connection, retention) {
                tracing::warn!(error = %e, "cannot prune finished tasks from the task store");
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
            tracing::error!(error = %e, writes = batch.len(), "cannot commit to the task store");
        }
        for write in batch {
            if let Write::Accept { done, .. } = write {
                let _ = done.send(result.clone());
            }
        }
    }
}

/// Moves the write-ahead log into the database file, so that a stopped host leaves one
/// self-contained file behind.
fn checkpoint(connection: &Connection) {
    if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "cannot checkpoint the task store's log");
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
    let deleted = statement.query_map(params![before, i64::try_from(retention.keep_finished).unwrap_or(i64::MAX)], |row| {
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

fn commit(connection: &mut Connection, batch: &[Write], retention: &Retention) -> Result<(), String> {
    for write in batch {
        if let Write::Finished { id, end: TaskEnd { output: Some(output), .. }, .. } = write
            && output.len() > retention.inline_output_bytes
        {
            write_output_file(retention, id, output).map_err(|e| format!("cannot write the output of task {id}: {e}"))?;
        }
    }
    commit_rows(connection, batch, retention.inline_output_bytes).map_err(|e| e.to_string())
}

fn commit_rows(connection: &mut Connection, batch: &[Write], inline_output_bytes: usize) -> rusqlite::Result<()> {
    let tx = connection.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO tasks (id, plugin, version, owner, input, timeout_ms, state, attempts, submitted_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8)",
        )?;
        let mut requeued = tx.prepare_cached("UPDATE tasks SET state = 'queued' WHERE id = ?1")?;
        let mut started = tx.prepare_cached("UPDATE tasks SET state = 'running', attempts = ?2, started_at_ms = ?3 WHERE id = ?1")?;
        let mut finished = tx.prepare_cached(
            "UPDATE tasks SET state = ?2, finished_at_ms = ?3, failure_kind = ?4, message = ?5, output = ?6, output_file = ?7 WHERE id = ?1",
        )?;
        for write in batch {
            match write {
                Write::Accept { tasks, .. } => {
                    for task in tasks {
                        insert.execute(params![
                            task.id.to_string(),
                            task.plugin,
                            task.version,
                            task.owner,
                            task.input.as_ref(),
                            millis(task.timeout),
                            task.attempts,
                            epoch_ms(task.submitted_at),
                        ])?;
                    }
                }
                Write::Requeued { id } => {
                    requeued.execute([id.to_string()])?;
                }
                Write::Started { id, attempt, at } => {
                    started.execute(params![id.to_string(), attempt, epoch_ms(*at)])?;
                }
                Write::Finished { id, at, end } => {
                    let in_file = end.output.as_ref().is_some_and(|output| output.len() > inline_output_bytes);
                    finished.execute(params![
                        id.to_string(),
                        end.state.as_str(),
                        epoch_ms(*at),
                        end.failure_kind,
                        end.message,
                        if in_file { None } else { end.output.as_deref() },
                        in_file,
                    ])?;
                }
            }
        }
    }
    tx.commit()
}

/// A row as a record (its output read from its file if it has one); `Err` names what is
/// wrong with it.
fn record(row: &Row<'_>, outputs: &Path) -> Result<TaskRecord, String> {
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
        started_at: time(9)?,
        finished_at,
        end,
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
