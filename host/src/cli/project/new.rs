//! `ignareo new --lang rust|python|js NAME`: a plugin project to start from, a small task that
//! fetches a page and answers its title, with its manifest, a README saying how to build,
//! upload and run it, and a `.gitignore`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::{Lang, write_if_changed, write_support};
use crate::task::{NAME_RULE, is_valid_name};

#[derive(Args)]
pub struct NewArgs {
    /// The plugin's language.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The plugin's name: the project's directory and component are named after it.
    pub name: String,
    /// The directory to make the project in (as PATH/NAME) [default: the current directory].
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

const MANIFEST: &str = include_str!("templates/ignareo.toml");
const README: &str = include_str!("templates/README.md");
const RUST_CARGO_TOML: &str = include_str!("templates/rust/Cargo.toml");
const RUST_CARGO_CONFIG: &str = include_str!("templates/rust/config.toml");
const RUST_LIB: &str = include_str!("templates/rust/lib.rs");
/// A new project starts from the versions the SDK is built and tested with in the repository;
/// cargo drops what the project does not use.
const RUST_LOCK: &str = include_str!("../../../../plugins/Cargo.lock");
const PYTHON_APP: &str = include_str!("templates/python/app.py");
const JS_APP: &str = include_str!("templates/js/app.js");

pub fn new(args: NewArgs) -> anyhow::Result<()> {
    let NewArgs { lang, name, dir } = args;
    if !is_valid_name(&name) {
        bail!("invalid plugin name {name:?}: use {NAME_RULE}");
    }
    if lang == Lang::Rust && name.as_bytes()[0].is_ascii_digit() {
        bail!("invalid plugin name {name:?} for Rust: it names the crate too, which cannot start with a digit");
    }
    let project = dir.unwrap_or_else(|| PathBuf::from(".")).join(&name);
    make_empty_dir(&project)?;

    let files = project_files(lang, &name);
    for (path, contents) in &files {
        write_if_changed(&project.join(path), contents)?;
    }
    write_support(&project, lang)?;

    println!("made {} plugin {name} in {}", lang.title(), project.display());
    for (path, _) in &files {
        println!("  {path}");
    }
    println!("build it with: ignareo build {}", project.display());
    Ok(())
}

/// Creates `dir`, or takes it if it exists empty; a file, or a directory with anything in it,
/// is refused rather than mixed with the new project.
fn make_empty_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} already exists and is not empty: choose another name, or another --dir", dir.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        Err(e) if dir.exists() && !dir.is_dir() => {
            bail!(
                "{} already exists and is not a directory ({e}): choose another name, or another --dir",
                dir.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// The files of a new project, by their path in it.
fn project_files(lang: Lang, name: &str) -> Vec<(&'static str, String)> {
    let fill = |template: &str| template.replace("{{name}}", name);
    let (source, provided, notes) = match lang {
        Lang::Rust => ("src/lib.rs", "the Rust SDK", include_str!("templates/rust/notes.md")),
        Lang::Python => ("app.py", "the Python SDK", include_str!("templates/python/notes.md")),
        Lang::Js => {
            ("app.js", "the build script; the SDK is staged with the sources", include_str!("templates/js/notes.md"))
        }
    };
    let readme = fill(README)
        .replace("{{language}}", lang.title())
        .replace("{{source}}", source)
        .replace("{{provided}}", provided)
        .replace("{{build_notes}}", notes.trim_end());
    let mut files = vec![("README.md", readme), ("ignareo.toml", fill(MANIFEST))];
    let mut ignored = String::from("# What `ignareo build` writes.\n/.ignareo/\n/*.wasm\n");
    match lang {
        Lang::Rust => {
            files.push(("Cargo.toml", fill(RUST_CARGO_TOML)));
            files.push(("Cargo.lock", RUST_LOCK.to_owned()));
            files.push((".cargo/config.toml", RUST_CARGO_CONFIG.to_owned()));
            files.push(("src/lib.rs", fill(RUST_LIB)));
            ignored.push_str("/target/\n");
        }
        Lang::Python => {
            files.push(("app.py", fill(PYTHON_APP)));
            ignored.push_str("__pycache__/\n");
        }
        Lang::Js => files.push(("app.js", fill(JS_APP))),
    }
    files.push((".gitignore", ignored));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for (path, contents) in project_files(lang, "price-watch") {
                assert!(!contents.contains("{{"), "{lang:?} {path}: {contents}");
            }
        }
    }

    fn fill_for_test(template: &str) -> String {
        template.replace("{{name}}", "price-watch")
    }

    #[test]
    fn the_manifest_is_one_the_host_takes() {
        let ceilings = crate::manifest::Ceilings::of(&crate::config::Config::default());
        let manifest = crate::manifest::Manifest::parse(&fill_for_test(MANIFEST), &ceilings);
        assert!(manifest.is_ok(), "{manifest:?}");
    }
}
