//! `[store]`: the embedded store's durability and retention.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DAY_SECS, within};

/// The embedded store (`<data_dir>/ignareo.db`: tasks, schedules, plugins, tokens; large outputs in `<data_dir>/ignareo.outputs/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// How hard a commit waits for the disk.
    pub synchronous: Synchronous,
    /// Finished tasks older than this are deleted (and at most `limits.retain_finished_tasks`
    /// are kept whatever their age).
    pub retain_finished_secs: u64,
    /// Outputs larger than this are kept as files beside the database, not in it.
    pub inline_output_kb: u64,
    /// How often finished tasks past their retention are deleted.
    pub prune_interval_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            retain_finished_secs: 7 * 24 * 3600,
            inline_output_kb: 64,
            prune_interval_secs: 60,
        }
    }
}

impl StoreConfig {
    pub fn retain_finished(&self) -> Duration {
        Duration::from_secs(self.retain_finished_secs)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        within("store.retain_finished_secs", self.retain_finished_secs, 1..=3650 * DAY_SECS)?;
        within("store.prune_interval_secs", self.prune_interval_secs, 1..=DAY_SECS)?;
        within("store.inline_output_kb", self.inline_output_kb, 0..=1024 * 1024)?;
        Ok(())
    }
}

/// `full`: an accepted task survives a power loss. `normal`: it survives the process being
/// killed, but the last commits before a power loss may be lost; commits are cheaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

impl Synchronous {
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}
