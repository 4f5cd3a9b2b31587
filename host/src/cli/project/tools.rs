//! The toolchains `ignareo build` runs, and the ones it installs on first use into a cache
//! directory of its own: componentize-py (from Python's package index, into a virtual
//! environment) and componentize-js (from npm, pinned by the repository's `plugins/js-tools`
//! lock file).
//!
//! The cache's layout and the checks that find a tool installed are those of
//! `scripts/build-python-plugins` and `scripts/build-js-plugins` (`guest-venv/`, `js-tools/`),
//! so that the repository's `target/` can serve as the cache of both. A program that is
//! missing is named with what installs it; nothing is installed system-wide.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use anyhow::{Context, bail};

/// The componentize-py `scripts/build-python-plugins` pins.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The Python componentize-py bundles: wheels from `requirements.txt` are chosen for it.
pub const GUEST_PYTHON_VERSION: &str = "3.14";

const JS_TOOLS_PACKAGE: &str = include_str!("../../../../plugins/js-tools/package.json");
const JS_TOOLS_LOCK: &str = include_str!("../../../../plugins/js-tools/package-lock.json");

pub const INSTALL_RUST: &str =
    "install Rust with rustup (https://rustup.rs), then run `rustup target add wasm32-wasip2`";
const INSTALL_PYTHON: &str =
    "install Python 3 with its venv module (Debian, Ubuntu: `apt-get install python3 python3-venv`)";
pub const INSTALL_NODE: &str =
    "install Node.js and npm (Debian, Ubuntu: `apt-get install nodejs npm`; or https://nodejs.org)";

/// Runs `command` with its output on the user's terminal. `missing` says what to install when
/// its program is not found.
pub fn run(command: &mut Command, missing: &str) -> anyhow::Result<ExitStatus> {
    command.status().map_err(|e| not_run(command, &e, missing))
}

/// Runs `command` for its standard output (its errors go to the terminal).
pub fn output(command: &mut Command, missing: &str) -> anyhow::Result<Output> {
    command.stderr(std::process::Stdio::inherit()).output().map_err(|e| not_run(command, &e, missing))
}

fn not_run(command: &Command, error: &std::io::Error, missing: &str) -> anyhow::Error {
    let program = command.get_program().to_string_lossy();
    if error.kind() == ErrorKind::NotFound {
        anyhow::anyhow!("`{program}` was not found: {missing}")
    } else {
        anyhow::anyhow!("cannot run `{program}`: {error}")
    }
}

/// The cache directory: `dir` if given (`--tools-dir`, `IGNAREO_TOOLS_DIR`), else
/// `$XDG_CACHE_HOME/ignareo` or `~/.cache/ignareo`.
pub fn tools_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => match std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
            Some(cache) => cache.join("ignareo"),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".cache/ignareo"),
                None => bail!("no cache directory for the build tools: set IGNAREO_TOOLS_DIR or HOME"),
            },
        },
    };
    // The tools run from other working directories.
    std::path::absolute(&dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Holds the cache's lock while a tool is checked and installed: two builds started at once
/// must not install into the same directory together.
fn lock(tools: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(tools).with_context(|| format!("cannot create {}", tools.display()))?;
    let path = tools.join(".ignareo-tools.lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// The virtual environment holding componentize-py, installed if it is not there yet.
pub fn python_venv(tools: &Path) -> anyhow::Result<PathBuf> {
    let venv = tools.join("guest-venv");
    let _lock = lock(tools)?;
    if componentize_py_installed(&venv) {
        return Ok(venv);
    }
    eprintln!("installing componentize-py {COMPONENTIZE_PY_VERSION} from PyPI into {} (first use)", venv.display());
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    if !run(Command::new("python3").arg("-m").arg("venv").arg(&venv), INSTALL_PYTHON)?.success() {
        bail!("python3 could not make a virtual environment in {} (see above): {INSTALL_PYTHON}", venv.display());
    }
    let pip = venv.join("bin/pip");
    let requirement = format!("componentize-py=={COMPONENTIZE_PY_VERSION}");
    if !run(Command::new(&pip).args(["install", "--quiet", &requirement]), INSTALL_PYTHON)?.success() {
        bail!("pip could not install {requirement} from PyPI (see above)");
    }
    if !componentize_py_installed(&venv) {
        bail!("componentize-py was installed into {} but does not run (see above)", venv.display());
    }
    Ok(venv)
}

fn componentize_py_installed(venv: &Path) -> bool {
    Command::new(venv.join("bin/componentize-py"))
        .arg("--version")
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout).trim() == format!("componentize-py {COMPONENTIZE_PY_VERSION}")
        })
}

/// The directory holding componentize-js in `node_modules`, installed if it is not there yet.
pub fn js_tools(tools: &Path) -> anyhow::Result<PathBuf> {
    // componentize-js runs on Node.js: say so before anything is installed.
    if !run(Command::new("node").arg("--version").stdout(std::process::Stdio::null()), INSTALL_NODE)?.success() {
        bail!("`node --version` failed: {INSTALL_NODE}");
    }
    let dir = tools.join("js-tools");
    let _lock = lock(tools)?;
    let lock_file = dir.join("package-lock.json");
    let installed = std::fs::read(&lock_file).is_ok_and(|lock| lock == JS_TOOLS_LOCK.as_bytes());
    if installed && dir.join("node_modules").is_dir() {
        return Ok(dir);
    }
    eprintln!("installing componentize-js from npm into {} (first use)", dir.display());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let package = dir.join("package.json");
    std::fs::write(&package, JS_TOOLS_PACKAGE).with_context(|| format!("cannot write {}", package.display()))?;
    // `npm ci` installs exactly what the lock names; the lock's presence also marks the
    // install done, so it is taken away again when the install fails.
    std::fs::write(&lock_file, JS_TOOLS_LOCK).with_context(|| format!("cannot write {}", lock_file.display()))?;
    let installed =
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--silent"]).current_dir(&dir), INSTALL_NODE);
    if !installed.as_ref().is_ok_and(ExitStatus::success) {
        let _ = std::fs::remove_file(&lock_file);
        installed?;
        bail!("npm could not install componentize-js into {} (see above)", dir.display());
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_are_the_repository_scripts() {
        let script = include_str!("../../../../scripts/build-python-plugins");
        assert!(script.contains(&format!("COMPONENTIZE_PY_VERSION={COMPONENTIZE_PY_VERSION}\n")));
        assert!(script.contains(&format!("--python-version {GUEST_PYTHON_VERSION} ")));
    }

    #[test]
    fn the_tools_dir_is_absolute() {
        assert!(tools_dir(Some(Path::new("relative/tools"))).unwrap().is_absolute());
    }
}
