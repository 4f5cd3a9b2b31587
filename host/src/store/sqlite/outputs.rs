//! Outputs too large for a row: one file per task in the outputs directory, named by task id.
//!
//! A file is written whole before the row that names it is committed: to `{id}.partial`,
//! synced, renamed, and the directory synced (when the store syncs at all), so that a
//! committed row never names a missing or half-written file. A write that fails removes its
//! partial file; partial files a crash left behind are removed when the store opens. A file
//! that is gone all the same (removed by hand, a damaged disk) reads as an error, never as an
//! empty output.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::task::TaskId;

/// The extension of a file being written.
const PARTIAL: &str = "partial";

/// Where task `id`'s output file is.
fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(id)
}

/// Writes task `id`'s output file; on failure no file of it is left.
pub(super) fn write(dir: &Path, id: &TaskId, output: &[u8], sync: bool) -> std::io::Result<()> {
    let path = path(dir, &id.to_string());
    let partial = path.with_extension(PARTIAL);
    if let Err(e) = write_then_rename(&partial, &path, output, sync) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    // Without it the rename, and so the file, may not survive a power loss.
    if sync && let Err(e) = File::open(dir).and_then(|dir| dir.sync_all()) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(())
}

fn write_then_rename(partial: &Path, path: &Path, output: &[u8], sync: bool) -> std::io::Result<()> {
    let mut file = File::create(partial)?;
    file.write_all(output)?;
    if sync {
        file.sync_all()?;
    }
    std::fs::rename(partial, path)
}

/// Task `id`'s output file, or what keeps it from being read.
pub(super) fn read(dir: &Path, id: &str) -> Result<Bytes, String> {
    let path = path(dir, id);
    std::fs::read(&path)
        .map(Bytes::from)
        .map_err(|e| format!("its output file {} cannot be read ({e})", path.display()))
}

/// Removes task `id`'s output file, if it has one.
pub(super) fn remove(dir: &Path, id: &str) {
    if let Err(e) = std::fs::remove_file(path(dir, id))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(task = %id, error = %e, "cannot delete a task's output file");
    }
}

/// Removes the partial files a crash left behind: no row names them.
pub(super) fn remove_partials(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == PARTIAL) {
            std::fs::remove_file(&path)?;
            tracing::info!(path = %path.display(), "a partly written output file removed");
        }
    }
    Ok(())
}
