//! Rows of the store as records, and records as column values.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::Row;
use rusqlite::types::FromSql;

use super::outputs;
use crate::store::{ScheduleRecord, TaskEnd, TaskRecord};
use crate::task::{TaskId, TaskState, from_epoch_ms};

/// The columns [`task_record`] reads, the input and the output left out (read as empty):
/// reads of many tasks leave their payloads in the store, to be read one at a time when needed.
/// The rowid is the record's sequence: `tasks` is a rowid table, and a row inserted later has
/// a higher one (unless the highest rows were deleted since: see [`RecordedBefore`]); nothing
/// here runs `VACUUM`, which may renumber the rows of a table without an integer key.
///
/// [`RecordedBefore`]: crate::store::RecordedBefore
pub(super) const SUMMARY_COLUMNS: &str = "id, plugin, version, owner, x'' AS input, timeout_ms, state, attempts, submitted_at_ms, started_at_ms, \
                       finished_at_ms, failure_kind, message, schedule, rowid";

/// The columns [`task_end`] reads.
pub(super) const END_COLUMNS: &str = "state, failure_kind, message, output, output_file, finished_at_ms";

pub(super) const SCHEDULE_COLUMNS: &str = "name, plugin, input, cron, interval_ms, timeout_ms, overlap, paused, owner, created_at_ms, since_ms, \
                                last_run_at_ms, last_task, runs, skipped";

/// A row of [`SUMMARY_COLUMNS`] as a record, without its input and output; `Err` names what
/// is wrong with it.
pub(super) fn task_record(row: &Row<'_>) -> Result<TaskRecord, String> {
    let id: String = column(row, 0)?;
    let state: String = column(row, 6)?;
    let state = TaskState::from_str(&state).map_err(|e| format!("task {id}: {e}"))?;
    let finished_at = column::<Option<u64>>(row, 10)?.map(from_epoch_ms);
    let end = match finished_at {
        None => None,
        Some(_) => Some(TaskEnd { state, failure_kind: column(row, 11)?, message: column(row, 12)?, output: None }),
    };
    Ok(TaskRecord {
        id: TaskId::from_str(&id).map_err(|e| format!("task id {id:?}: {e}"))?,
        plugin: column(row, 1)?,
        version: column(row, 2)?,
        owner: column(row, 3)?,
        input: Bytes::from(column::<Vec<u8>>(row, 4)?),
        timeout: Duration::from_millis(column(row, 5)?),
        state,
        attempts: column(row, 7)?,
        submitted_at: from_epoch_ms(column(row, 8)?),
        schedule: column(row, 13)?,
        started_at: column::<Option<u64>>(row, 9)?.map(from_epoch_ms),
        finished_at,
        end,
        sequence: Some(column(row, 14)?),
    })
}

/// A row of [`END_COLUMNS`] as how the task ended, its output read from its file if it has
/// one; `None` if it has not ended.
pub(super) fn task_end(row: &Row<'_>, outputs: &Path, id: &str) -> Result<Option<TaskEnd>, String> {
    if column::<Option<u64>>(row, 5)?.is_none() {
        return Ok(None);
    }
    let state: String = column(row, 0)?;
    let state = TaskState::from_str(&state).map_err(|e| format!("task {id}: {e}"))?;
    let output = if column(row, 4)? {
        match outputs::read(outputs, id) {
            Ok(output) => Some(output),
            Err(cause) => return Ok(Some(output_lost(id, state, &cause))),
        }
    } else {
        column::<Option<Vec<u8>>>(row, 3)?.map(Bytes::from)
    };
    Ok(Some(TaskEnd { state, failure_kind: column(row, 1)?, message: column(row, 2)?, output }))
}

pub(super) fn schedule_record(row: &Row<'_>) -> Result<ScheduleRecord, String> {
    let name: String = column(row, 0)?;
    let last_task = column::<Option<String>>(row, 12)?
        .map(|id| TaskId::from_str(&id).map_err(|err| format!("schedule {name}: last task {id:?}: {err}")))
        .transpose()?;
    Ok(ScheduleRecord {
        plugin: column(row, 1)?,
        input: Bytes::from(column::<Vec<u8>>(row, 2)?),
        cron: column(row, 3)?,
        interval: column::<Option<u64>>(row, 4)?.map(Duration::from_millis),
        timeout: column::<Option<u64>>(row, 5)?.map(Duration::from_millis),
        overlap: column(row, 6)?,
        paused: column(row, 7)?,
        owner: column(row, 8)?,
        created_at: from_epoch_ms(column(row, 9)?),
        since: from_epoch_ms(column(row, 10)?),
        last_run_at: column::<Option<u64>>(row, 11)?.map(from_epoch_ms),
        last_task,
        runs: column(row, 13)?,
        skipped: column(row, 14)?,
        name,
    })
}

/// Column `index` of `row`; `Err` says what is wrong with it.
pub(super) fn column<T: FromSql>(row: &Row<'_>, index: usize) -> Result<T, String> {
    row.get(index).map_err(|e| e.to_string())
}

/// The end of a task whose output file is gone: it reads as interrupted, saying so, never as
/// a task that ended with no output.
fn output_lost(id: &str, state: TaskState, cause: &str) -> TaskEnd {
    tracing::warn!(task = %id, error = %cause, "the output of a finished task is lost");
    TaskEnd {
        state: TaskState::Interrupted,
        failure_kind: None,
        message: Some(format!(
            "the task ended {}, but {cause}: its output is lost; run the task again",
            state.as_str()
        )),
        output: None,
    }
}

/// A duration as the store writes it: whole milliseconds.
pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
