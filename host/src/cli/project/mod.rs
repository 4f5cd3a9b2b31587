//! `ignareo new` and `ignareo build`: plugin projects written outside this repository, in Rust,
//! Python or JavaScript.
//!
//! The binary carries what a project needs from ignareo, so that a user needs no checkout: the
//! WIT contract, each language's SDK and the script that drives componentize-js. They are
//! written into the project's `.ignareo/` directory ([`write_support`]) when the project is
//! made and again at every build, so the SDK a plugin is built with is always the one of the
//! `ignareo` that builds it (the host of the same version speaks its WIT). The directory is
//! ignored by the project's `.gitignore`: nothing in it is the user's to edit.
//!
//! The Rust SDK is not published on crates.io, so a Rust project depends on the copy in
//! `.ignareo/sdk/rust` by path; plain `cargo build` works too once that directory exists.

mod build;
mod new;
mod tools;

use std::path::Path;

use anyhow::{Context, bail};
use clap::ValueEnum;

pub use build::{BuildArgs, build};
pub use new::{NewArgs, new};

/// A plugin's language: what `new` writes and which toolchain `build` runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    #[value(alias = "javascript")]
    Js,
}

impl Lang {
    /// The file that makes a directory a project of this language.
    fn marker(self) -> &'static str {
        match self {
            Lang::Rust => "Cargo.toml",
            Lang::Python => "app.py",
            Lang::Js => "app.js",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// Where a project keeps what ignareo provides.
const SUPPORT_DIR: &str = ".ignareo";

const WIT: &str = include_str!("../../../../wit/task.wit");

/// The Rust SDK's sources, by their path under `src/`.
const RUST_SDK: [(&str, &str); 6] = [
    ("lib.rs", include_str!("../../../../plugins/sdk/src/lib.rs")),
    ("error.rs", include_str!("../../../../plugins/sdk/src/error.rs")),
    ("html.rs", include_str!("../../../../plugins/sdk/src/html.rs")),
    ("http.rs", include_str!("../../../../plugins/sdk/src/http.rs")),
    ("log.rs", include_str!("../../../../plugins/sdk/src/log.rs")),
    ("task.rs", include_str!("../../../../plugins/sdk/src/task.rs")),
];
/// The SDK's manifest inherits from the plugins' workspace, which a project does not have.
const RUST_SDK_MANIFEST: &str = include_str!("../../../../plugins/sdk/Cargo.toml");
const PLUGINS_WORKSPACE: &str = include_str!("../../../../plugins/Cargo.toml");

/// The Python SDK (package `ignareo`), by file name.
const PYTHON_SDK: [(&str, &str); 6] = [
    ("__init__.py", include_str!("../../../../plugins/sdk-python/ignareo/__init__.py")),
    ("_task.py", include_str!("../../../../plugins/sdk-python/ignareo/_task.py")),
    ("context.py", include_str!("../../../../plugins/sdk-python/ignareo/context.py")),
    ("html.py", include_str!("../../../../plugins/sdk-python/ignareo/html.py")),
    ("http.py", include_str!("../../../../plugins/sdk-python/ignareo/http.py")),
    ("requests_adapter.py", include_str!("../../../../plugins/sdk-python/ignareo/requests_adapter.py")),
];

const JS_SDK: &str = include_str!("../../../../plugins/sdk-js/ignareo.js");
/// The repository's own build script for JavaScript plugins, run with the tools and WIT named.
const COMPONENTIZE_JS: &str = include_str!("../../../../scripts/componentize-js.mjs");

/// Writes what a project of `lang` needs from ignareo into its `.ignareo/`: the WIT, the Rust
/// or Python SDK, the JavaScript build script. A file whose contents are already right is left
/// alone, so that cargo does not rebuild an SDK that did not change.
fn write_support(project: &Path, lang: Lang) -> anyhow::Result<()> {
    let support = project.join(SUPPORT_DIR);
    write_if_changed(&support.join("wit/task.wit"), WIT)?;
    match lang {
        // `../../wit` from the SDK's directory, as in the repository (plugins/sdk → wit).
        Lang::Rust => {
            let sdk = support.join("sdk/rust");
            write_if_changed(&sdk.join("Cargo.toml"), &rust_sdk_manifest()?)?;
            for (name, source) in RUST_SDK {
                write_if_changed(&sdk.join("src").join(name), source)?;
            }
        }
        Lang::Python => {
            for (name, source) in PYTHON_SDK {
                write_if_changed(&support.join("sdk/python/ignareo").join(name), source)?;
            }
        }
        // The SDK goes beside the sources when they are staged (see `build`).
        Lang::Js => write_if_changed(&support.join("componentize-js.mjs"), COMPONENTIZE_JS)?,
    }
    Ok(())
}

/// The Rust SDK's `Cargo.toml` standing alone: what it inherits from the plugins' workspace
/// filled in, and the workspace's lints left out (they are for working on the SDK).
fn rust_sdk_manifest() -> anyhow::Result<String> {
    let mut manifest: toml::Table = toml::from_str(RUST_SDK_MANIFEST).context("the SDK's Cargo.toml")?;
    let workspace: toml::Table = toml::from_str(PLUGINS_WORKSPACE).context("the plugins' Cargo.toml")?;
    manifest.remove("lints");
    for section in ["package", "dependencies"] {
        let inherited = workspace.get("workspace").and_then(|w| w.get(section)).and_then(toml::Value::as_table);
        let Some(toml::Value::Table(entries)) = manifest.get_mut(section) else { continue };
        for (key, value) in entries.iter_mut() {
            let Some(table) = value.as_table() else { continue };
            if table.get("workspace").and_then(toml::Value::as_bool) != Some(true) {
                continue;
            }
            if table.len() > 1 {
                bail!("the SDK's {section}.{key} adds to what it inherits, which `ignareo new` cannot resolve");
            }
            *value = inherited
                .and_then(|t| t.get(key))
                .cloned()
                .with_context(|| format!("the SDK's {section}.{key} is not in the plugins' workspace"))?;
        }
    }
    Ok(format!(
        "# Written by `ignareo build` (the SDK of this ignareo, for the WIT in ../../wit): not to be edited.\n{}",
        toml::to_string(&manifest)?
    ))
}

fn write_if_changed(path: &Path, contents: &str) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents.as_bytes()) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &str, extension: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(extension))
            .collect();
        names.sort();
        names
    }

    fn sorted(files: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<String> = files.iter().map(|(name, _)| (*name).to_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn every_sdk_file_is_embedded() {
        assert_eq!(sorted(&RUST_SDK), names_in("plugins/sdk/src", ".rs"));
        assert_eq!(sorted(&PYTHON_SDK), names_in("plugins/sdk-python/ignareo", ".py"));
    }

    #[test]
    fn the_rust_sdk_manifest_stands_alone() {
        let manifest: toml::Table = toml::from_str(&rust_sdk_manifest().unwrap()).unwrap();
        assert!(!manifest.to_string().contains("workspace"), "{manifest}");
        assert_eq!(manifest["package"]["name"].as_str(), Some("ignareo-sdk"));
        assert_eq!(manifest["package"]["edition"].as_str(), Some("2024"));
        assert!(manifest["dependencies"]["serde"]["features"].as_array().is_some(), "{manifest}");
        assert!(manifest["dependencies"].get("wit-bindgen").is_some(), "{manifest}");
    }

    #[test]
    fn the_rust_sdk_finds_its_wit_where_support_writes_it() {
        // lib.rs's `path:` is relative to the SDK's directory, .ignareo/sdk/rust.
        assert!(RUST_SDK[0].1.contains("path: \"../../wit\""));
    }
}
