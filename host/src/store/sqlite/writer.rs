//! The writer thread: takes whatever writes have queued up and commits them in one
//! transaction; writes large outputs to files first; prunes finished tasks past their retention.
//!
//! One write that cannot be made fails alone: a task whose output file cannot be written is
//! recorded as failed, saying why, and a group whose transaction fails is committed again one
//! write at a time, so that only the write that fails is refused to whoever waits for it.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, params};
use tokio::sync::oneshot;

use super::outputs;
use super::rows::{SCHEDULE_COLUMNS, millis};
use crate::store::{PluginRecord, ScheduleRecord, StoreError, TaskEnd, TaskRecord, TokenRecord};
use crate::task::{FailureKind, TaskId, TaskState, epoch_ms};

/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 4096;

/// A change to record.
pub(super) enum Write {
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

impl Write {
    /// What the write records, for the log.
    fn describe(&self) -> String {
        match self {
            Self::Accept(tasks) => format!("{} accepted task(s)", tasks.len()),
            Self::Requeued { id } => format!("task {id} queued again"),
            Self::Started { id, .. } => format!("the start of task {id}"),
            Self::Finished { id, .. } => format!("the end of task {id}"),
            Self::PutSchedule(schedule) => format!("schedule {:?}", schedule.name),
            Self::DeleteSchedule(name) => format!("the deletion of schedule {name:?}"),
            Self::ScheduleSkipped { name, .. } => format!("a skipped run of schedule {name:?}"),
            Self::PutPlugin(plugin) => format!("plugin {:?}", plugin.name),
            Self::DeletePlugin(name) => format!("the deletion of plugin {name:?}"),
            Self::PutToken(token) => format!("token {}", token.id),
            Self::DeleteToken(id) => format!("the deletion of token {id}"),
        }
    }
}

/// A write, and who waits for its commit.
pub(super) struct Queued {
    pub write: Write,
    pub done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// What the writer keeps, and where large outputs go.
#[derive(Clone)]
pub(super) struct Retention {
    pub outputs: PathBuf,
    pub inline_output_bytes: usize,
    pub keep_finished: usize,
    pub keep_for: Duration,
    pub prune_every: Duration,
    pub sync_files: bool,
}

/// Takes whatever writes have queued up, commits them in one transaction, tells the waiting
/// submitters; prunes now and then; until every sender is gone.
pub(super) fn write_loop(mut connection: Connection, writes: &mpsc::Receiver<Queued>, retention: &Retention) {
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
        let not_kept = write_outputs(&mut batch, retention);
        let results = commit(&mut connection, &batch, retention);
        for ((queued, result), not_kept) in batch.into_iter().zip(results).zip(not_kept) {
            if let Some(done) = queued.done {
                let _ = done.send(result.and(not_kept.map_or(Ok(()), |why| Err(StoreError::OutputNotKept(why)))));
            }
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
        .query_map(params![before, u64::try_from(retention.keep_finished).unwrap_or(u64::MAX)], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })?;
    let mut pruned = 0;
    for row in deleted {
        let (id, in_file) = row?;
        pruned += 1;
        if in_file {
            outputs::remove(&retention.outputs, &id);
        }
    }
    if pruned > 0 {
        tracing::debug!(pruned, "finished tasks past their retention deleted");
    }
    Ok(())
}

/// Writes the outputs too large for a row to their files, before the rows that name them; a
/// task whose output cannot be written is recorded as failed instead. For each write, why its
/// output was not kept, if it was not.
fn write_outputs(batch: &mut [Queued], retention: &Retention) -> Vec<Option<String>> {
    let mut not_kept = vec![None; batch.len()];
    for (queued, not_kept) in batch.iter_mut().zip(&mut not_kept) {
        let Write::Finished { id, end, .. } = &mut queued.write else { continue };
        let Some(output) = end.output.as_ref().filter(|output| output.len() > retention.inline_output_bytes) else {
            continue;
        };
        if let Err(e) = outputs::write(&retention.outputs, id, output, retention.sync_files) {
            tracing::error!(task = %id, bytes = output.len(), error = %e, "cannot write a task's output; it is recorded as failed");
            *end = output_not_kept(output.len(), &e);
            not_kept.clone_from(&end.message);
        }
    }
    not_kept
}

/// The end recorded for a task whose output could not be written.
fn output_not_kept(bytes: usize, error: &std::io::Error) -> TaskEnd {
    TaskEnd {
        state: TaskState::Failed,
        failure_kind: Some(FailureKind::ResourceLimit.as_str().to_owned()),
        message: Some(format!(
            "the task returned {bytes} bytes of output, but the host could not store them ({error}), so they were not kept: \
             free space for the host's data directory (or raise its file size limit), then run the task again"
        )),
        output: None,
    }
}

/// Commits `batch` in one transaction; if that fails, each write in a transaction of its own,
/// so that only the writes that fail by themselves are refused. Each write's result, in order.
fn commit(connection: &mut Connection, batch: &[Queued], retention: &Retention) -> Vec<Result<(), StoreError>> {
    let inline = retention.inline_output_bytes;
    match commit_rows(connection, batch, inline) {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(e) if batch.len() == 1 => vec![refused(&batch[0], &e, retention)],
        Err(e) => {
            tracing::warn!(error = %e, writes = batch.len(), "a group commit failed; committing its writes one at a time");
            batch
                .iter()
                .map(|queued| {
                    commit_rows(connection, std::slice::from_ref(queued), inline)
                        .or_else(|e| refused(queued, &e, retention))
                })
                .collect()
        }
    }
}

/// Reports a write that could not be committed, and removes the output file no row names.
fn refused(queued: &Queued, error: &rusqlite::Error, retention: &Retention) -> Result<(), StoreError> {
    tracing::error!(error = %error, write = %queued.write.describe(), "cannot commit to the store");
    if let Write::Finished { id, end: TaskEnd { output: Some(output), .. }, .. } = &queued.write
        && output.len() > retention.inline_output_bytes
    {
        outputs::remove(&retention.outputs, &id.to_string());
    }
    Err(StoreError::Write(error.to_string()))
}

fn commit_rows(connection: &mut Connection, batch: &[Queued], inline_output_bytes: usize) -> rusqlite::Result<()> {
    let tx = connection.transaction()?;
    for queued in batch {
        apply(&tx, &queued.write, inline_output_bytes)?;
    }
    tx.commit()
}

fn apply(tx: &Transaction<'_>, write: &Write, inline_output_bytes: usize) -> rusqlite::Result<()> {
    match write {
        Write::Accept(tasks) => insert_tasks(tx, tasks),
        Write::Requeued { id } => {
            tx.prepare_cached("UPDATE tasks SET state = 'queued' WHERE id = ?1")?.execute([id.to_string()]).map(drop)
        }
        Write::Started { id, attempt, at } => tx
            .prepare_cached("UPDATE tasks SET state = 'running', attempts = ?2, started_at_ms = ?3 WHERE id = ?1")?
            .execute(params![id.to_string(), attempt, epoch_ms(*at)])
            .map(drop),
        Write::Finished { id, at, end } => finish_task(tx, *id, *at, end, inline_output_bytes),
        Write::PutSchedule(schedule) => put_schedule(tx, schedule),
        Write::DeleteSchedule(name) => {
            tx.prepare_cached("DELETE FROM schedules WHERE name = ?1")?.execute([name]).map(drop)
        }
        Write::ScheduleSkipped { name, at } => tx
            .prepare_cached("UPDATE schedules SET last_run_at_ms = ?2, skipped = skipped + 1 WHERE name = ?1")?
            .execute(params![name, epoch_ms(*at)])
            .map(drop),
        Write::PutPlugin(plugin) => put_plugin(tx, plugin),
        Write::DeletePlugin(name) => {
            tx.prepare_cached("DELETE FROM plugin_versions WHERE plugin = ?1")?.execute([name])?;
            tx.prepare_cached("DELETE FROM plugins WHERE name = ?1")?.execute([name]).map(drop)
        }
        Write::PutToken(token) => put_token(tx, token),
        Write::DeleteToken(id) => tx.prepare_cached("DELETE FROM tokens WHERE id = ?1")?.execute([id]).map(drop),
    }
}

/// Records accepted tasks as queued, and each one's run of its schedule.
fn insert_tasks(tx: &Transaction<'_>, tasks: &[TaskRecord]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO tasks (id, plugin, version, owner, input, timeout_ms, state, attempts, submitted_at_ms, schedule)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9)",
    )?;
    let mut ran =
        tx.prepare_cached("UPDATE schedules SET last_run_at_ms = ?2, last_task = ?3, runs = runs + 1 WHERE name = ?1")?;
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

    Ok(())
}

/// Records how a task ended; an output too large for its row is already in its file.
fn finish_task(
    tx: &Transaction<'_>,
    id: TaskId,
    at: SystemTime,
    end: &TaskEnd,
    inline_output_bytes: usize,
) -> rusqlite::Result<()> {
    let in_file = end.output.as_ref().is_some_and(|output| output.len() > inline_output_bytes);
    tx.prepare_cached(
            "UPDATE tasks SET state = ?2, finished_at_ms = ?3, failure_kind = ?4, message = ?5, output = ?6, output_file = ?7 WHERE id = ?1",
        )?
        .execute(params![
            id.to_string(),
            end.state.as_str(),
            epoch_ms(at),
            end.failure_kind,
            end.message,
            if in_file { None } else { end.output.as_deref() },
            in_file,
        ])?;

    Ok(())
}

/// A schedule's definition, new or replacing one whose counts are kept.
fn put_schedule(tx: &Transaction<'_>, s: &ScheduleRecord) -> rusqlite::Result<()> {
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

    Ok(())
}

/// A plugin's versions and its live one, replacing what was recorded.
fn put_plugin(tx: &Transaction<'_>, plugin: &PluginRecord) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO plugins (name, live) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET live = excluded.live",
    )?
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

    Ok(())
}

fn put_token(tx: &Transaction<'_>, token: &TokenRecord) -> rusqlite::Result<()> {
    let record = serde_json::to_string(token).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.prepare_cached("INSERT OR REPLACE INTO tokens (id, created_at_ms, record) VALUES (?1, ?2, ?3)")?
        .execute(params![token.id, token.created_at_ms, record])?;

    Ok(())
}
