//! The registry's files in the data directory:
//!
//! - `components/{sha256}.wasm`: uploaded component bytes, content-addressed;
//! - `compiled/{sha256}.{engine}.cwasm`: compiled artifacts, so a restart does not recompile;
//! - `plugins.json`, from earlier versions only: the index, now in the store (imported once,
//!   then renamed `plugins.json.imported`).
//!
//! Every file is written by write-then-rename: artifacts are memory-mapped while in use, and
//! a crash must never leave half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::store::VersionInfo;

/// The index file of earlier versions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PluginIndex {
    pub live: String,
    /// Oldest first.
    pub versions: Vec<VersionInfo>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Index {
    pub plugins: BTreeMap<String, PluginIndex>,
}

pub struct Disk {
    components: PathBuf,
    compiled: PathBuf,
    index: PathBuf,
    fingerprint: String,
}

impl Disk {
    pub fn open(data_dir: &Path, fingerprint: String) -> anyhow::Result<Self> {
        let disk = Self {
            components: data_dir.join("components"),
            compiled: data_dir.join("compiled"),
            index: data_dir.join("plugins.json"),
            fingerprint,
        };
        for dir in [&disk.components, &disk.compiled] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(disk)
    }

    pub fn component_path(&self, component: &str) -> PathBuf {
        self.components.join(format!("{component}.wasm"))
    }

    pub fn artifact_path(&self, component: &str) -> PathBuf {
        self.compiled.join(format!("{component}.{}.cwasm", self.fingerprint))
    }

    /// The index file of an earlier version, if there is one.
    pub fn old_index(&self) -> anyhow::Result<Option<Index>> {
        match std::fs::read(&self.index) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!("{} is corrupt; restore it from a backup or move it away to start empty", self.index.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.index.display())),
        }
    }

    /// Renames the index file of an earlier version once it is imported, so that it is not
    /// imported again.
    pub fn retire_old_index(&self) -> anyhow::Result<std::path::PathBuf> {
        let imported = self.index.with_extension("json.imported");
        std::fs::rename(&self.index, &imported)
            .with_context(|| format!("cannot rename {} after importing it", self.index.display()))?;
        Ok(imported)
    }

    pub fn write_component(&self, component: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.component_path(component);
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    pub fn write_artifact(&self, component: &str, bytes: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.artifact_path(component), bytes)
    }

    /// Removes a component's files; running tasks keep their mapping until they end.
    pub fn remove_component(&self, component: &str) {
        for path in [self.component_path(component), self.artifact_path(component)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a pruned plugin version");
            }
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}
