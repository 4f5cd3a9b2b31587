//! The plugin registry: uploaded versions, validation of uploads, which version is live, hot
//! swap and rollback.
//!
//! Hot swap is a pointer swap: an invocation clones the live `Arc<LoadedVersion>` when it is
//! accepted and keeps it to its end, so an upload never waits for running tasks and running
//! tasks never see a half-made version. Compilation happens at upload (or at start, from the
//! artifact cache), never on the invocation path, within `limits.upload_validation_timeout_secs`.
//!
//! Uploads, rollbacks and deletions of one plugin take their turn, from start to end, so that
//! none records a live version whose files another one pruned. A plugin whose live version
//! cannot be loaded at start is kept, shown as unavailable with the reason, and not served;
//! the others are.

mod disk;
mod views;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use disk::Disk;
pub use views::{PluginView, UploadReport, VersionView};

use crate::capabilities::PluginCapabilities;
use crate::manifest::{Ceilings, Manifest, ManifestError, TaskLimits};
use crate::runtime::{LinkError, Linked, Runtime};
use crate::store::{PluginRecord, Store, VersionInfo};
use crate::task::{NAME_RULE, epoch_ms, is_valid_name, millis};

/// A plugin version compiled, linked and ready to instantiate, with what its manifest grants.
pub struct LoadedVersion {
    pub plugin: String,
    pub info: VersionInfo,
    pub linked: Linked,
    pub manifest: Manifest,
    pub limits: TaskLimits,
    pub capabilities: PluginCapabilities,
}

struct Plugin {
    live: Live,
    versions: Vec<VersionInfo>,
}

/// A plugin's live version: served, or recorded but not loadable when the host started.
enum Live {
    Loaded(Arc<LoadedVersion>),
    Unavailable { version: String, error: String },
}

impl Live {
    fn version(&self) -> &str {
        match self {
            Self::Loaded(loaded) => &loaded.info.version,
            Self::Unavailable { version, .. } => version,
        }
    }
}

/// How many locks the plugins' changes are spread over: changes to one plugin always take
/// the same one; two plugins rarely share one.
const CHANGE_LOCKS: usize = 64;

/// Why an upload was refused; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("invalid plugin name {0:?}: use {NAME_RULE}")]
    InvalidName(String),
    #[error("the body is empty: send the component's bytes (e.g. curl --data-binary @plugin.wasm)")]
    Empty,
    #[error("the body is not WebAssembly (no \\0asm header): send a .wasm component built for wasm32-wasip2")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build with `cargo build --target wasm32-wasip2` or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error(
        "compiling and instantiating the component took longer than {} s (limits.upload_validation_timeout_secs): \
         make it smaller or its start-up cheaper, or raise that limit",
        .0.as_secs()
    )]
    ValidationTimeout(Duration),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no plugin named {0:?}")]
    NoSuchPlugin(String),
    #[error("plugin {plugin:?} has no version {version:?}")]
    NoSuchVersion { plugin: String, version: String },
    #[error("plugin {0:?} has no version older than the live one to roll back to")]
    NothingToRollBackTo(String),
    #[error(transparent)]
    Upload(#[from] UploadError),
}

pub struct Registry {
    runtime: Arc<Runtime>,
    disk: Arc<Disk>,
    store: Arc<dyn Store>,
    plugins: RwLock<HashMap<String, Plugin>>,
    /// Held while a plugin changes, from its record in the store to the map, so that both
    /// take changes in the same order, and while files are written or pruned.
    persist: tokio::sync::Mutex<()>,
    /// Held by an upload, rollback or deletion of a plugin from its start to its end.
    changes: Box<[tokio::sync::Mutex<()>]>,
    versions_kept: usize,
    ceilings: Ceilings,
    validation_timeout: Duration,
    compilations: AtomicU64,
}

impl Registry {
    /// Opens the data directory and makes every recorded plugin's live version ready, reusing
    /// compiled artifacts where they match this build; a plugin whose live version cannot be
    /// loaded is reported and kept as unavailable.
    pub async fn open(
        runtime: Arc<Runtime>,
        data_dir: &Path,
        store: Arc<dyn Store>,
        versions_kept: usize,
        ceilings: Ceilings,
        validation_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let disk = Disk::open(data_dir, runtime.artifact_fingerprint())?;
        import_old_index(&disk, store.as_ref()).await?;
        let records = store.plugins()?;
        let registry = Self {
            runtime,
            disk: Arc::new(disk),
            store,
            plugins: RwLock::new(HashMap::new()),
            persist: tokio::sync::Mutex::new(()),
            changes: (0..CHANGE_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            versions_kept: versions_kept.max(1),
            ceilings,
            validation_timeout,
            compilations: AtomicU64::new(0),
        };
        for record in records {
            let live = match registry.load_recorded(&record).await {
                Ok(loaded) => Live::Loaded(Arc::new(loaded)),
                Err(e) => {
                    let error = format!("version {} cannot be loaded: {e:#}", record.live);
                    tracing::error!(
                        plugin = %record.name,
                        %error,
                        "plugin not served: upload it again, or roll it back to a version that loads"
                    );
                    Live::Unavailable { version: record.live, error }
                }
            };
            registry.plugins.write().insert(record.name, Plugin { live, versions: record.versions });
        }
        Ok(registry)
    }

    /// The recorded live version of a plugin, loaded.
    async fn load_recorded(&self, record: &PluginRecord) -> anyhow::Result<LoadedVersion> {
        let info = record
            .versions
            .iter()
            .find(|v| v.version == record.live)
            .cloned()
            .with_context(|| format!("the store names version {} live, but does not list it", record.live))?;
        self.load(&record.name, info).await
    }

    /// The lock an upload, rollback or deletion of `name` holds from start to end.
    fn change_lock(&self, name: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = DefaultHasher::new();
        name.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % CHANGE_LOCKS as u64).unwrap_or(0);
        &self.changes[index]
    }

    /// The live version of `name`, to run a new task on.
    pub fn live(&self, name: &str) -> Option<Arc<LoadedVersion>> {
        self.plugins.read().get(name).and_then(|p| match &p.live {
            Live::Loaded(loaded) => Some(loaded.clone()),
            Live::Unavailable { .. } => None,
        })
    }

    /// Why a plugin that exists is not served, if it is not: its live version could not be
    /// loaded at start.
    pub fn unavailable_reason(&self, name: &str) -> Option<String> {
        self.plugins.read().get(name).and_then(|p| match &p.live {
            Live::Unavailable { error, .. } => Some(error.clone()),
            Live::Loaded(_) => None,
        })
    }

    /// The plugins not served, and why.
    pub fn unavailable(&self) -> HashMap<String, String> {
        let plugins = self.plugins.read();
        let unavailable = plugins.iter().filter_map(|(name, p)| match &p.live {
            Live::Unavailable { error, .. } => Some((name.clone(), error.clone())),
            Live::Loaded(_) => None,
        });
        unavailable.collect()
    }

    /// How many components this process has compiled (not loaded from the cache).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    pub fn list(&self) -> Vec<PluginView> {
        let mut plugins: Vec<PluginView> = self.plugins.read().iter().map(|(name, p)| views::view(name, p)).collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        plugins
    }

    pub fn get(&self, name: &str) -> Option<PluginView> {
        self.plugins.read().get(name).map(|p| views::view(name, p))
    }

    /// Validates the manifest, compiles and links `bytes` (within the validation time limit),
    /// then makes them the live version of `name`.
    pub async fn upload(&self, name: &str, bytes: &[u8], manifest: Option<&str>) -> Result<UploadReport, UploadError> {
        if !is_valid_name(name) {
            return Err(UploadError::InvalidName(name.to_owned()));
        }
        check_binary(bytes)?;
        self.runtime.check_world(bytes)?;
        let parsed = Manifest::parse(manifest.unwrap_or_default(), &self.ceilings)?;
        let component = hex::encode(Sha256::digest(bytes));
        let version = match manifest {
            None => component.clone(),
            Some(text) => hex::encode(Sha256::digest(format!("{component}\n{text}"))),
        };
        let _change = self.change_lock(name).lock().await;
        let validated = tokio::time::timeout(self.validation_timeout, self.validate(&component, bytes)).await;
        let Validated { compiled, linked, compile_ms, cached } =
            validated.map_err(|_| UploadError::ValidationTimeout(self.validation_timeout))??;
        let info = VersionInfo {
            version: version.clone(),
            component: component.clone(),
            manifest: manifest.map(str::to_owned),
            size: bytes.len() as u64,
            uploaded_at_ms: epoch_ms(SystemTime::now()),
            compile_ms,
        };
        let manifest_view = serde_json::to_value(&parsed).map_err(anyhow::Error::from)?;
        let kind = linked.kind();
        let loaded = Arc::new(self.loaded(name, info.clone(), linked, parsed));
        self.make_live(name, loaded, Some(NewVersion { info, bytes, compiled: &compiled })).await?;
        Ok(UploadReport {
            plugin: name.to_owned(),
            version,
            component,
            size: bytes.len() as u64,
            compile_ms,
            cached,
            kind,
            manifest: manifest_view,
        })
    }

    /// Compiles (or loads from its artifact) and links an uploaded component.
    async fn validate(&self, component: &str, bytes: &[u8]) -> Result<Validated, UploadError> {
        let (compiled, compile_ms, cached) = if let Some(compiled) = self.cached_component(component) {
            (compiled, self.first_compile_ms(component), true)
        } else {
            let (compiled, compile_ms) = self.compile(bytes).await?;
            (compiled, compile_ms, false)
        };
        let linked = self.runtime.link(&compiled).await?;
        Ok(Validated { compiled, linked, compile_ms, cached })
    }

    /// How long `component` took to compile when it was first uploaded (0 if not known).
    fn first_compile_ms(&self, component: &str) -> u64 {
        let plugins = self.plugins.read();
        let known = plugins.values().flat_map(|p| p.versions.iter()).find(|v| v.component == component);
        known.map_or(0, |v| v.compile_ms)
    }

    fn loaded(&self, name: &str, info: VersionInfo, linked: Linked, manifest: Manifest) -> LoadedVersion {
        LoadedVersion {
            plugin: name.to_owned(),
            limits: manifest.task_limits(&self.ceilings),
            capabilities: manifest.capabilities(&info.version, &self.ceilings),
            info,
            linked,
            manifest,
        }
    }

    /// Makes `version` (or, if none, the version before the live one) live again.
    pub async fn rollback(&self, name: &str, version: Option<&str>) -> Result<PluginView, RegistryError> {
        let _change = self.change_lock(name).lock().await;
        let target =
            {
                let plugins = self.plugins.read();
                let plugin = plugins.get(name).ok_or_else(|| RegistryError::NoSuchPlugin(name.to_owned()))?;
                if let Some(v) = version {
                    plugin.versions.iter().find(|i| i.version == v).cloned().ok_or_else(|| {
                        RegistryError::NoSuchVersion { plugin: name.to_owned(), version: v.to_owned() }
                    })?
                } else {
                    let live = plugin.versions.iter().position(|i| i.version == plugin.live.version());
                    live.and_then(|i| i.checked_sub(1))
                        .map(|i| plugin.versions[i].clone())
                        .ok_or_else(|| RegistryError::NothingToRollBackTo(name.to_owned()))?
                }
            };
        let loaded = self.load(name, target).await.map_err(UploadError::Internal)?;
        self.make_live(name, Arc::new(loaded), None).await.map_err(UploadError::Internal)?;
        self.get(name).ok_or_else(|| RegistryError::NoSuchPlugin(name.to_owned()))
    }

    /// Removes a plugin and its files; tasks already running finish on their version.
    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let _change = self.change_lock(name).lock().await;
        let _persist = self.persist.lock().await;
        if !self.plugins.read().contains_key(name) {
            return Err(RegistryError::NoSuchPlugin(name.to_owned()));
        }
        self.store.delete_plugin(name.to_owned()).await.map_err(|e| UploadError::Internal(e.into()))?;
        let removed = self.plugins.write().remove(name).ok_or_else(|| RegistryError::NoSuchPlugin(name.to_owned()))?;
        for version in &removed.versions {
            if !self.in_use(&version.component) {
                self.disk.remove_component(&version.component);
            }
        }
        Ok(())
    }

    /// Records `loaded` as the live version of `name` (with `new_version` added to its
    /// versions, its files written, the oldest beyond the number kept pruned), then serves it.
    async fn make_live(
        &self,
        name: &str,
        loaded: Arc<LoadedVersion>,
        new_version: Option<NewVersion<'_>>,
    ) -> anyhow::Result<()> {
        let _persist = self.persist.lock().await;
        let mut versions = self.plugins.read().get(name).map(|p| p.versions.clone()).unwrap_or_default();
        if let Some(NewVersion { info, bytes, compiled }) = new_version {
            // Here, not before: a component shared with another plugin may have been pruned
            // since this upload found its files.
            self.keep_files(&info.component, bytes, compiled).await?;
            versions.retain(|v| v.version != info.version);
            versions.push(info);
        }
        let excess = versions.len().saturating_sub(self.versions_kept);
        let live = loaded.info.version.clone();
        let mut pruned = Vec::new();
        versions.retain(|v| {
            let prune = pruned.len() < excess && v.version != live;
            if prune {
                pruned.push(v.component.clone());
            }
            !prune
        });
        self.store.put_plugin(PluginRecord { name: name.to_owned(), live, versions: versions.clone() }).await?;
        self.plugins.write().insert(name.to_owned(), Plugin { live: Live::Loaded(loaded), versions });
        for component in pruned.iter().filter(|c| !self.in_use(c)) {
            self.disk.remove_component(component);
        }
        Ok(())
    }

    /// Writes a new version's component and artifact unless they are there, off the async
    /// threads (each is written and fsynced).
    async fn keep_files(&self, component: &str, bytes: &[u8], compiled: &Component) -> anyhow::Result<()> {
        let (disk, runtime) = (self.disk.clone(), self.runtime.clone());
        let (component, bytes, compiled) = (component.to_owned(), bytes.to_vec(), compiled.clone());
        tokio::task::spawn_blocking(move || {
            disk.write_component(&component, &bytes)?;
            if !disk.artifact_path(&component).exists() {
                disk.write_artifact(&component, &runtime.serialize(&compiled)?)?;
            }
            Ok(())
        })
        .await
        .context("the thread writing the plugin's files failed")?
    }

    /// Whether any version of any plugin still uses this component (files are shared by
    /// content).
    fn in_use(&self, component: &str) -> bool {
        self.plugins.read().values().any(|p| p.versions.iter().any(|v| v.component == component))
    }

    /// Loads a stored version: from its artifact if it matches this build, else recompiled.
    async fn load(&self, name: &str, info: VersionInfo) -> anyhow::Result<LoadedVersion> {
        let manifest =
            Manifest::parse(info.manifest.as_deref().unwrap_or_default(), &self.ceilings).with_context(|| {
                format!(
                    "version {} no longer fits this host's limits; raise them or upload the plugin again",
                    info.version
                )
            })?;
        let component = if let Some(component) = self.cached_component(&info.component) {
            component
        } else {
            let path = self.disk.component_path(&info.component);
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let (component, _) = self.compile(&bytes).await?;
            self.disk.write_artifact(&info.component, &self.runtime.serialize(&component)?)?;
            component
        };
        let linked = self.runtime.link(&component).await?;
        Ok(self.loaded(name, info, linked, manifest))
    }

    fn cached_component(&self, version: &str) -> Option<Component> {
        let path = self.disk.artifact_path(version);
        if !path.exists() {
            return None;
        }
        match self.runtime.load_compiled(&path) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "compiled artifact unusable; recompiling");
                None
            }
        }
    }

    /// Compiles on a thread of its own. An upload that runs out of time stops waiting; the
    /// compiler cannot be interrupted, so the thread runs to its end and its result is dropped.
    async fn compile(&self, bytes: &[u8]) -> Result<(Component, u64), UploadError> {
        let runtime = self.runtime.clone();
        let bytes = bytes.to_vec();
        let started = Instant::now();
        let component = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .context("the compiler thread failed")?
            .map_err(|e| UploadError::Compile(format!("{e:#}")))?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Ok((component, millis(started.elapsed())))
    }
}

/// An upload that compiled and linked.
struct Validated {
    compiled: Component,
    linked: Linked,
    compile_ms: u64,
    cached: bool,
}

/// A version being uploaded, and what its files are made from.
struct NewVersion<'a> {
    info: VersionInfo,
    bytes: &'a [u8],
    compiled: &'a Component,
}

/// Moves the index file of an earlier version into the store, once.
async fn import_old_index(disk: &Disk, store: &dyn Store) -> anyhow::Result<()> {
    let Some(index) = disk.old_index()? else {
        return Ok(());
    };
    let count = index.plugins.len();
    for (name, plugin) in index.plugins {
        store.put_plugin(PluginRecord { name, live: plugin.live, versions: plugin.versions }).await?;
    }
    let imported = disk.retire_old_index()?;
    tracing::info!(plugins = count, from = %imported.display(), "plugin index imported into the store");
    Ok(())
}

/// Tells apart "not wasm", "a core module" and "a component" from the preamble.
fn check_binary(bytes: &[u8]) -> Result<(), UploadError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
    if bytes.is_empty() {
        return Err(UploadError::Empty);
    }
    if !bytes.starts_with(MAGIC) || bytes.len() < 8 {
        return Err(UploadError::NotWasm);
    }
    if bytes[4..8] == CORE_VERSION {
        return Err(UploadError::CoreModule);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_checks() {
        assert!(matches!(check_binary(b""), Err(UploadError::Empty)));
        assert!(matches!(check_binary(b"hello world"), Err(UploadError::NotWasm)));
        assert!(matches!(check_binary(b"\0asm\x01\0\0\0"), Err(UploadError::CoreModule)));
        assert!(check_binary(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
