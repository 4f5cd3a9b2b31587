//! Plugins as the API shows them: what an upload answers, a plugin and its versions, and why a
//! plugin is not served when its live version could not be loaded.

use serde::Serialize;

use super::{Live, Plugin};
use crate::runtime::PluginKind;

/// What an upload answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadReport {
    pub plugin: String,
    pub version: String,
    pub component: String,
    pub size: u64,
    pub compile_ms: u64,
    /// True when a compiled artifact was reused instead of compiling.
    pub cached: bool,
    /// `task` (runs with `/run` and `/tasks`) or `http` (a `wasi:http` handler, served at
    /// `/v1/plugins/{name}/http/…`).
    pub kind: PluginKind,
    /// The manifest as the host understood it (no grants without one).
    pub manifest: serde_json::Value,
}

/// A plugin as `GET /v1/plugins/{name}` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    pub name: String,
    pub live: String,
    /// The live version's kind (`task` or `http`); none when it is not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<PluginKind>,
    /// The live version's manifest, proxy passwords hidden.
    pub manifest: serde_json::Value,
    pub versions: Vec<VersionView>,
    /// Why the plugin is not served: its live version could not be loaded when the host
    /// started. Uploading it again, or rolling back to a version that loads, serves it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub version: String,
    pub component: String,
    pub has_manifest: bool,
    pub size: u64,
    pub uploaded_at_ms: u64,
    pub compile_ms: u64,
}

pub(super) fn view(name: &str, plugin: &Plugin) -> PluginView {
    let versions = plugin
        .versions
        .iter()
        .map(|v| VersionView {
            version: v.version.clone(),
            component: v.component.clone(),
            has_manifest: v.manifest.is_some(),
            size: v.size,
            uploaded_at_ms: v.uploaded_at_ms,
            compile_ms: v.compile_ms,
        })
        .collect();
    let (manifest, kind, unavailable) = match &plugin.live {
        Live::Loaded(loaded) => {
            (serde_json::to_value(&loaded.manifest).unwrap_or_default(), Some(loaded.linked.kind()), None)
        }
        Live::Unavailable { error, .. } => (serde_json::Value::Null, None, Some(error.clone())),
    };
    PluginView { name: name.to_owned(), live: plugin.live.version().to_owned(), kind, manifest, versions, unavailable }
}
