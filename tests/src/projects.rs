//! Plugin projects made and built by the binary under test (`ignareo new`, `ignareo build`).
//! Builds share the repository's caches: cargo's target directory, and the componentize-py and
//! componentize-js that `scripts/build-python-plugins` and `scripts/build-js-plugins` keep under
//! `target/` (a build installs them there first if they are not yet).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::{LOCAL_MANIFEST, binary, target_dir};

/// How a run of `ignareo` ended.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `ignareo ARGS` to its end (ten minutes at most: a first build installs its tools) with
/// the repository's caches, and `envs` on top.
pub async fn ignareo(args: &[&OsStr], envs: &[(&str, &OsStr)]) -> Outcome {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("IGNAREO_TOOLS_DIR", target_dir())
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_mins(10), command.output())
        .await
        .expect("ignareo ends within 10 minutes")
        .expect("the binary runs");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `ignareo build DIR`, expecting it to succeed and say where it wrote the component,
/// `DIR/<DIR's name>.wasm`: the component's bytes.
pub async fn build(dir: &Path) -> Vec<u8> {
    let built = ignareo(&[OsStr::new("build"), dir.as_os_str()], &[]).await;
    assert!(built.success, "ignareo build {}:\n{}\n{}", dir.display(), built.stdout, built.stderr);
    let name = dir.file_name().expect("a project directory has a name").to_string_lossy();
    let component = dir.join(format!("{name}.wasm"));
    assert!(built.stdout.contains(&format!("built {}", component.display())), "{}", built.stdout);
    std::fs::read(&component).unwrap_or_else(|e| panic!("cannot read {}: {e}", component.display()))
}

/// `manifest` with its `allowed_hosts` line granting the local targets instead.
pub fn granting_local(manifest: &str) -> String {
    assert!(manifest.lines().any(|line| line.starts_with("allowed_hosts = ")), "no grant to replace: {manifest}");
    manifest
        .lines()
        .map(|line| if line.starts_with("allowed_hosts = ") { LOCAL_MANIFEST.trim_end() } else { line })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A copy of `examples/NAME` in `into`, without what a build in place left there: the copy's
/// path, named as the example.
pub fn copy_example(name: &str, into: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let to = into.join(name);
    copy_dir(&from, &to);
    to
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display())) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let built = Path::new(&name).extension().is_some_and(|extension| extension == "wasm");
        if built || name == ".ignareo" || name == "__pycache__" || name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}
