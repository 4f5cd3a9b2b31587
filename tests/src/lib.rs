//! The harness for end-to-end tests: starts the real `ignareo` binary on 127.0.0.1:0 with a
//! fresh data directory, and serves local target sites (pages, a slow endpoint, a shop, ...)
//! and a recording forward proxy for plugins to fetch through. Nothing here talks to anything
//! but 127.0.0.1.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

pub mod guests;
pub mod projects;
pub mod proxy;
pub mod sse;
pub mod target;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

pub const TOKEN: &str = "test-admin-token-0123456789";

/// The manifest of plugins that fetch the local targets: 127.0.0.1 is a private address, so
/// it must be granted by address.
pub const LOCAL_MANIFEST: &str = "allowed_hosts = [\"http://127.0.0.1:*\"]\n";

/// Reads until the peer closes the connection (or `limit` passes): what was received.
pub async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(String::from_utf8_lossy(&received).into_owned())
}

/// Where cargo put the binaries of this workspace (target/debug or target/release).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test-binary>
    exe.parent().and_then(Path::parent).expect("test binaries live in target/<profile>/deps").to_path_buf()
}

/// The workspace's target directory, where the plugins are built too.
pub fn target_dir() -> PathBuf {
    target_profile_dir().parent().expect("target/<profile> has a parent").to_path_buf()
}

/// A directory of its own under the system's temp directory, created empty and removed with
/// everything in it when dropped (also when the test fails): data directories, configuration
/// files, certificates.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// `<temp>/ignareo-<purpose>-<random>`.
    pub fn new(purpose: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ignareo-{purpose}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to the file `name` in this directory; its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The path of the file `name` in this directory, as a flag's value.
    pub fn arg(&self, name: &str) -> String {
        self.join(name).to_str().expect("temp paths are UTF-8").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Milliseconds since the Unix epoch, as the host reports times.
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("the clock is past 1970");
    u64::try_from(since.as_millis()).expect("milliseconds since 1970 fit in a u64")
}

/// A client that sends the admin token with every request.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("the token is a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("a client with default headers builds")
}

/// A plugin component built by `cargo build --release` in `plugins/`, by its package name.
pub fn plugin_path(name: &str) -> PathBuf {
    target_dir().join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")))
}

pub fn plugin_bytes(name: &str) -> Vec<u8> {
    let path = plugin_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): build the plugins first with `cd plugins && cargo build --release`",
            path.display()
        )
    })
}

/// An answer of `run` as a plugin's contract has it: the output, or the error's code (its
/// message is in the words of the plugin's language, its `task_id` the run's own).
pub fn as_contract((status, body): (u16, Value)) -> (u16, Value) {
    match body["error"]["code"].as_str() {
        Some(code) => (status, serde_json::json!({"error": {"code": code}})),
        None => (status, body),
    }
}

/// A Python plugin component built by `scripts/build-python-plugins`, by its directory name
/// in `plugins/tasks-python/` or `plugins/fixtures-python/`.
pub fn python_plugin_bytes(name: &str) -> Vec<u8> {
    built_plugin_bytes("python-plugins", name, "scripts/build-python-plugins")
}

/// A JavaScript plugin component built by `scripts/build-js-plugins`, by its directory name in
/// `plugins/tasks-js/` or `plugins/fixtures-js/`.
pub fn js_plugin_bytes(name: &str) -> Vec<u8> {
    built_plugin_bytes("js-plugins", name, "scripts/build-js-plugins")
}

fn built_plugin_bytes(dir: &str, name: &str, script: &str) -> Vec<u8> {
    let path = target_dir().join(dir).join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}): build the plugins first with `{script}`", path.display()))
}

/// The `ignareo` binary under test.
pub fn binary() -> PathBuf {
    target_profile_dir().join("ignareo")
}

/// Starts `command` (an `ignareo` subcommand on 127.0.0.1:0) and waits for its
/// "... listening on `http://ADDR`" line: the child and its base URL.
async fn start_listening(mut command: Command) -> anyhow::Result<(Child, String)> {
    let mut child = command
        .env("IGNAREO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the ignareo binary")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_mins(1), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(at) = line.find(" listening on ") {
                return Ok(line[at + " listening on ".len()..].to_owned());
            }
        }
        bail!("the process exited before listening")
    })
    .await
    .context("the process did not start within 60 s")??;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, base))
}

/// A running `ignareo chaos-proxy`, killed when dropped.
pub struct ChaosProxy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    _child: Child,
}

impl ChaosProxy {
    pub async fn start(args: &[&str]) -> ChaosProxy {
        let mut command = Command::new(binary());
        command.args(["chaos-proxy", "--listen", "127.0.0.1:0"]).args(args);
        let (child, base) = start_listening(command).await.expect("the chaos proxy starts");
        ChaosProxy { base, _child: child }
    }

    /// Runs `ignareo chaos-proxy` with `args` expecting a refusal: its exit code and stderr.
    pub async fn refusal(args: &[&str]) -> (Option<i32>, String) {
        let output = Command::new(binary())
            .args(["chaos-proxy", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .await
            .expect("the binary runs");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Runs `ignareo serve --data-dir <data_dir>` with `args` and `envs`, expecting it to refuse to
/// start: it must exit with a failure before it listens. Its stderr.
pub async fn refused_start(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut command = Command::new(binary());
    command.arg("serve").arg("--data-dir").arg(data_dir).args(args).env("IGNAREO_LOG", "warn");
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command.stdin(Stdio::null()).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_mins(1), output)
        .await
        .expect("the host exits within 60 s")
        .expect("the binary runs");
    assert!(!output.status.success(), "the host must refuse to start with {args:?} {envs:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"), "it must not listen");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running host process, killed when dropped.
pub struct Host {
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    child: Child,
    /// The data directory, when this host made it: removed once the host is killed.
    owned_dir: Option<TempDir>,
}

impl Host {
    /// A host with a fresh data directory and default limits.
    pub async fn start() -> Host {
        Self::start_with(&[]).await
    }

    /// A host with extra `serve` flags.
    pub async fn start_with(args: &[&str]) -> Host {
        Self::start_owned(TempDir::new("e2e"), args).await
    }

    /// A host started with `--config` pointing at a file holding `toml`, plus extra flags.
    pub async fn start_with_config(toml: &str, args: &[&str]) -> Host {
        let data_dir = TempDir::new("e2e");
        let config = data_dir.write("test-config.toml", toml);
        let mut all = vec!["--config", config.to_str().expect("a UTF-8 temp path")];
        all.extend_from_slice(args);
        Self::start_owned(data_dir, &all).await
    }

    async fn start_owned(data_dir: TempDir, args: &[&str]) -> Host {
        let mut host = Self::start_in(data_dir.path(), args).await.expect("the host starts");
        host.owned_dir = Some(data_dir);
        host
    }

    /// A host on an existing data directory (for restarts); it is left in place.
    pub async fn start_in(data_dir: &Path, args: &[&str]) -> anyhow::Result<Host> {
        Self::start_in_with_env(data_dir, args, &[]).await
    }

    /// A host on an existing data directory, with extra environment variables (`IGNAREO_*`).
    pub async fn start_in_with_env(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Host> {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--token", TOKEN])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args);
        for (key, value) in envs {
            command.env(key, value);
        }
        let (child, base) = start_listening(command).await?;
        Ok(Host { base, data_dir: data_dir.to_path_buf(), client: client(), child, owned_dir: None })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads plugin component `file` (a name under plugins/) as plugin `name`.
    pub async fn upload(&self, name: &str, file: &str) -> Value {
        let response = self.upload_bytes(name, plugin_bytes(file)).await;
        let status = response.status();
        let body: Value = response.json().await.expect("upload answers JSON");
        assert!(status.is_success(), "upload of {file} as {name} failed: {status} {body}");
        body
    }

    /// Uploads plugin component `file` with a manifest (multipart), as plugin `name`.
    pub async fn upload_with(&self, name: &str, file: &str, manifest: &str) -> Value {
        self.upload_component(name, plugin_bytes(file), Some(manifest)).await
    }

    /// Uploads component bytes (with a manifest, if any), asserting it is accepted; the
    /// upload's answer (its `version` among others).
    pub async fn upload_component(&self, name: &str, bytes: Vec<u8>, manifest: Option<&str>) -> Value {
        let response = self.upload_form(name, bytes, manifest).await;
        let status = response.status();
        let body = response.text().await.expect("the host answers");
        assert!(status.is_success(), "upload of {name}: {status} {body}");
        serde_json::from_str(&body).expect("an upload's answer is JSON")
    }

    /// Submits one task of `plugin` per input in one `tasks:batch`, and waits for each to end
    /// (a minute at most each): their views, in the inputs' order.
    pub async fn run_batch_to_end(&self, plugin: &str, inputs: Vec<Value>) -> Vec<Value> {
        let body = serde_json::json!({ "inputs": inputs });
        let response = self
            .client
            .post(self.url(&format!("/v1/plugins/{plugin}/tasks:batch")))
            .json(&body)
            .send()
            .await
            .expect("the host answers");
        assert_eq!(response.status(), 202, "a batch of {plugin}");
        let accepted: Value = response.json().await.expect("a batch's answer is JSON");
        let mut ended = Vec::new();
        for id in accepted["ids"].as_array().expect("the batch's ids") {
            ended.push(self.wait(id.as_str().expect("an id"), 60).await);
        }
        ended
    }

    /// `PUT /v1/plugins/{name}` as `multipart/form-data`: a `component` part and, if given, a
    /// `manifest` part.
    pub async fn upload_form(&self, name: &str, bytes: Vec<u8>, manifest: Option<&str>) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new()
            .part("component", reqwest::multipart::Part::bytes(bytes).file_name("plugin.wasm"));
        if let Some(manifest) = manifest {
            form = form.part("manifest", reqwest::multipart::Part::text(manifest.to_owned()).file_name("ignareo.toml"));
        }
        self.client
            .put(self.url(&format!("/v1/plugins/{name}")))
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
            .await
            .expect("the host answers")
    }

    pub async fn upload_bytes(&self, name: &str, bytes: Vec<u8>) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/v1/plugins/{name}")))
            .bearer_auth(TOKEN)
            .body(bytes)
            .send()
            .await
            .expect("the host answers")
    }

    /// `POST /v1/plugins/{name}/run` with a JSON input: (status, body).
    pub async fn run(&self, name: &str, input: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/v1/plugins/{name}/run")))
            .json(input)
            .send()
            .await
            .expect("the host answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("run answers JSON"))
    }

    /// `POST /v1/plugins/{name}/tasks`: the task id.
    pub async fn submit(&self, name: &str, input: &Value) -> String {
        let response = self
            .client
            .post(self.url(&format!("/v1/plugins/{name}/tasks")))
            .json(input)
            .send()
            .await
            .expect("the host answers");
        assert_eq!(response.status().as_u16(), 202, "submit to {name} was not accepted");
        let body: Value = response.json().await.expect("submit answers JSON");
        body["id"].as_str().expect("a task id").to_owned()
    }

    /// `GET /v1/tasks/{id}?wait=...` until the task has ended (or the wait runs out).
    pub async fn wait(&self, id: &str, seconds: u64) -> Value {
        self.get_json(&format!("/v1/tasks/{id}?wait={seconds}")).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.client.get(self.url(path)).send().await.expect("the host answers").json().await.expect("JSON")
    }

    /// Reads a task's whole event stream (it ends after the final state): (name, data) pairs.
    pub async fn events(&self, id: &str) -> Vec<(String, Value)> {
        let stream = self.event_stream(id, None).await;
        stream.rest(Duration::from_secs(30)).await.into_iter().map(|event| (event.name, event.data)).collect()
    }

    /// Opens a task's event stream, resuming after `last_event_id` if given.
    pub async fn event_stream(&self, id: &str, last_event_id: Option<&str>) -> sse::EventStream {
        sse::EventStream::open(&self.client, &self.base, id, last_event_id).await
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the host is running")
    }

    /// The host's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let pid = self.child.id().expect("the host is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status is readable");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kib * 1024
    }

    /// Kills the host with SIGKILL (no chance to clean up) and waits for it to go.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("the host is running");
        let _ = self.child.wait().await;
    }

    /// Stops the host with SIGTERM and waits for it to exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the host is running");
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        tokio::time::timeout(Duration::from_mins(1), self.child.wait())
            .await
            .expect("the host exits after SIGTERM")
            .expect("exit status")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        drop(self.owned_dir.take());
    }
}
