//! `ignareo build [DIR] [-o OUT.wasm]`: a plugin project into a component, by the toolchain of
//! its language, found from its files (`Cargo.toml`, `app.py`, `app.js`):
//!
//! - Rust: `cargo build --release --target wasm32-wasip2`, against the SDK in `.ignareo/`;
//! - Python: componentize-py, with the SDK and the pure-Python wheels of `requirements.txt`
//!   (pip's options are those of `scripts/build-python-plugins`);
//! - JavaScript: componentize-js, through the repository's `scripts/componentize-js.mjs`, on a
//!   copy of the project's files with the SDK beside them as `./ignareo.js`.
//!
//! The toolchains' own output (compiler errors among it) goes to the terminal as it comes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

use super::tools::{self, GUEST_PYTHON_VERSION, INSTALL_NODE, INSTALL_RUST};
use super::{JS_SDK, Lang, SUPPORT_DIR, write_if_changed, write_support};

#[derive(Args)]
pub struct BuildArgs {
    /// The project's directory [default: the current directory].
    pub dir: Option<PathBuf>,
    /// Where to write the component [default: DIR/<the directory's name>.wasm].
    #[arg(short, long, value_name = "OUT.wasm")]
    pub out: Option<PathBuf>,
    /// The project's language, when its files do not settle it.
    #[arg(long, value_enum)]
    pub lang: Option<Lang>,
    /// Where the Python and JavaScript build tools are installed on first use [default:
    /// `$XDG_CACHE_HOME/ignareo`, or `~/.cache/ignareo`].
    #[arg(long, env = "IGNAREO_TOOLS_DIR", value_name = "DIR")]
    pub tools_dir: Option<PathBuf>,
}

const RUST_TARGET: &str = "wasm32-wasip2";

pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        bail!("{} is not a directory: name a plugin project's directory", dir.display());
    }
    // Absolute, for the tools run in other directories.
    let project = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
    let lang = detect(&project, args.lang)?;
    let out = if let Some(out) = args.out {
        std::path::absolute(&out).with_context(|| format!("cannot resolve {}", out.display()))?
    } else {
        let name = project.file_name().map_or_else(|| "plugin".into(), |n| n.to_string_lossy().into_owned());
        project.join(format!("{name}.wasm"))
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }

    write_support(&project, lang)?;
    match lang {
        Lang::Rust => rust(&project, &out)?,
        Lang::Python => python(&project, &out, &tools::tools_dir(args.tools_dir.as_deref())?)?,
        Lang::Js => js(&project, &out, &tools::tools_dir(args.tools_dir.as_deref())?)?,
    }
    let size = std::fs::metadata(&out).with_context(|| format!("the component {} is missing", out.display()))?.len();
    println!("built {} ({})", out.display(), bytesize::ByteSize(size));
    Ok(())
}

/// The project's language: the one asked for if its file is there, else the only one whose
/// file is.
fn detect(project: &Path, asked: Option<Lang>) -> anyhow::Result<Lang> {
    if let Some(lang) = asked {
        if !project.join(lang.marker()).is_file() {
            bail!("{} has no {}: not a {} project", project.display(), lang.marker(), lang.title());
        }
        return Ok(lang);
    }
    let found: Vec<Lang> =
        [Lang::Rust, Lang::Python, Lang::Js].into_iter().filter(|lang| project.join(lang.marker()).is_file()).collect();
    match found.as_slice() {
        [lang] => Ok(*lang),
        [] => bail!(
            "nothing to build in {}: no Cargo.toml (Rust), app.py (Python) or app.js (JavaScript); \
             `ignareo new --lang rust|python|js NAME` makes a project",
            project.display()
        ),
        several => {
            let names: Vec<String> = several.iter().map(|l| format!("{} ({})", l.marker(), l.title())).collect();
            bail!("{} holds {}: say which to build with --lang", project.display(), names.join(" and "))
        }
    }
}

fn rust(project: &Path, out: &Path) -> anyhow::Result<()> {
    // rustc names the target's library directory whether or not it is installed.
    let libdir = tools::output(
        Command::new("rustc").args(["--print", "target-libdir", "--target", RUST_TARGET]).current_dir(project),
        INSTALL_RUST,
    )?;
    if !libdir.status.success() {
        bail!("`rustc --print target-libdir --target {RUST_TARGET}` failed (see above): {INSTALL_RUST}");
    }
    if !Path::new(String::from_utf8_lossy(&libdir.stdout).trim()).is_dir() {
        bail!("the Rust target {RUST_TARGET} is not installed: run `rustup target add {RUST_TARGET}`");
    }
    let built = tools::output(
        Command::new("cargo")
            .args(["build", "--release", "--target", RUST_TARGET, "--message-format=json-render-diagnostics"])
            .current_dir(project),
        INSTALL_RUST,
    )?;
    if !built.status.success() {
        bail!("cargo could not build {} (see above)", project.display());
    }
    let component = component_of(&built.stdout, &project.join("Cargo.toml")).with_context(|| {
        format!(
            "cargo built no component for {}: its Cargo.toml needs `[lib] crate-type = [\"cdylib\"]`",
            project.display()
        )
    })?;
    std::fs::copy(&component, out)
        .with_context(|| format!("cannot copy {} to {}", component.display(), out.display()))?;
    Ok(())
}

/// The `.wasm` file cargo's JSON messages say it built for the package of `manifest`.
fn component_of(messages: &[u8], manifest: &Path) -> Option<PathBuf> {
    let artifacts =
        messages.split(|&b| b == b'\n').filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok());
    artifacts
        .filter(|m| {
            m["reason"] == "compiler-artifact" && m["manifest_path"].as_str().is_some_and(|p| Path::new(p) == manifest)
        })
        .filter(|m| m["target"]["crate_types"].as_array().is_some_and(|types| types.iter().any(|t| t == "cdylib")))
        .find_map(|m| {
            let files = m["filenames"].as_array()?;
            files.iter().filter_map(serde_json::Value::as_str).map(PathBuf::from).find(|f| is_component(f))
        })
}

fn python(project: &Path, out: &Path, tools: &Path) -> anyhow::Result<()> {
    let venv = tools::python_venv(tools)?;
    let damaged = format!("the virtual environment {} is damaged: remove it and build again", venv.display());
    let support = project.join(SUPPORT_DIR);
    let mut paths = vec![support.join("sdk/python"), project.to_path_buf()];
    let deps = support.join("python-deps");
    if deps.exists() {
        std::fs::remove_dir_all(&deps).with_context(|| format!("cannot remove {}", deps.display()))?;
    }
    let requirements = project.join("requirements.txt");
    if requirements.is_file() {
        // Pure-Python wheels only: a native extension cannot run inside the component.
        let installed = tools::run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--target"])
                .arg(&deps)
                .args(["--platform", "any", "--python-version", GUEST_PYTHON_VERSION, "--implementation", "py"])
                .args(["--only-binary=:all:", "--no-compile", "--no-deps", "-r"])
                .arg(&requirements),
            &damaged,
        )?;
        if !installed.success() {
            bail!(
                "pip could not install requirements.txt (see above): each package must be listed, its \
                 dependencies too, and be a pure-Python wheel (no native code runs inside a component)"
            );
        }
        paths.push(deps);
    }
    let mut componentize = Command::new(venv.join("bin/componentize-py"));
    componentize.arg("-d").arg(support.join("wit")).args(["-w", "task", "componentize"]);
    for path in &paths {
        componentize.arg("-p").arg(path);
    }
    componentize.arg("app").arg("-o").arg(out).current_dir(project);
    if !tools::run(&mut componentize, &damaged)?.success() {
        bail!("componentize-py could not build {} (see above)", project.display());
    }
    Ok(())
}

fn js(project: &Path, out: &Path, tools: &Path) -> anyhow::Result<()> {
    let js_tools = tools::js_tools(tools)?;
    let support = project.join(SUPPORT_DIR);
    // componentize-js resolves `./ignareo.js` next to the task's own files: they are copied
    // where the SDK can be put beside them without writing into the user's directory.
    let staged = support.join("js");
    if staged.exists() {
        std::fs::remove_dir_all(&staged).with_context(|| format!("cannot remove {}", staged.display()))?;
    }
    stage(project, &staged)?;
    write_if_changed(&staged.join("ignareo.js"), JS_SDK)?;
    let mut componentize = Command::new("node");
    componentize
        .arg(support.join("componentize-js.mjs"))
        .arg("app.js")
        .arg(out)
        .arg(&js_tools)
        .arg(support.join("wit"))
        .current_dir(&staged);
    if !tools::run(&mut componentize, INSTALL_NODE)?.success() {
        bail!("componentize-js could not build {} (see above)", project.display());
    }
    Ok(())
}

fn is_component(path: &Path) -> bool {
    path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("wasm"))
}

/// Copies the project's files from `from` into `to`, leaving out what is not the task's:
/// hidden entries (`.ignareo/` among them), `node_modules` and built components.
fn stage(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries = std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let path = entry.path();
        if text.starts_with('.') || text == "node_modules" || is_component(&path) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            stage(&path, &to.join(&name))?;
        } else if path.is_file() {
            std::fs::copy(&path, to.join(&name)).with_context(|| format!("cannot copy {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_the_cdylib_of_the_project_itself() {
        let messages = br#"{"reason":"compiler-artifact","manifest_path":"/p/.ignareo/sdk/rust/Cargo.toml","target":{"crate_types":["lib"]},"filenames":["/t/libignareo_sdk.rlib"]}
{"reason":"compiler-artifact","manifest_path":"/p/Cargo.toml","target":{"crate_types":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/p.wasm"]}
{"reason":"build-finished","success":true}
"#;
        assert_eq!(
            component_of(messages, Path::new("/p/Cargo.toml")),
            Some(PathBuf::from("/t/wasm32-wasip2/release/p.wasm"))
        );
        assert_eq!(component_of(messages, Path::new("/q/Cargo.toml")), None);
    }
}
