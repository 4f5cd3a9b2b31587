//! The schema and its migrations, and the checks a store file passes before it is used.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use crate::config::Synchronous;
use crate::store::StoreError;

/// The schema, one step per version: a file at version `n` gets the steps after its `n`th.
/// The schema this build writes is their count; a file with a higher one is refused.
pub(super) const MIGRATIONS: [&str; 2] = [
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

/// The writer's connection to a checked store, its schema in place.
pub(super) fn open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let shown = path.display().to_string();
    let corrupt = |e: rusqlite::Error| match &e {
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(failure.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) =>
        {
            StoreError::Corrupt { path: shown.clone(), cause: e.to_string() }
        }
        _ => StoreError::from(e),
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
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if found > supported {
        return Err(StoreError::NewerSchema { path: shown, found, supported });
    }
    let tx = writer.transaction()?;
    for step in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", supported)?;
    tx.commit()?;
    Ok(writer)
}
