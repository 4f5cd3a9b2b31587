//! What the host's unit tests share.

use std::path::{Path, PathBuf};

/// A directory of one test's own, removed when the test ends (whether it passes or fails).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("ignareo-unit-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).expect("the temporary directory is created");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
