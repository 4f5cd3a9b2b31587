//! Child processes the benchmarks start: the release host and the plain axum server, which
//! print a `listening on http://ADDR` line (how their port is found), and clients that run to
//! their exit and are measured from the outside.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const TOKEN: &str = "bench-admin-token-0123456789";

/// A client that sends the host's admin token with every request.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("the token is a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("a client with default headers builds")
}

pub struct Process {
    pub base: String,
    child: Child,
    data_dir: Option<PathBuf>,
}

impl Process {
    /// A host on a fresh data directory of its own, removed when the host is dropped.
    pub async fn host(binary: &Path, args: &[&str]) -> anyhow::Result<Self> {
        static HOSTS: AtomicUsize = AtomicUsize::new(0);
        let n = HOSTS.fetch_add(1, Ordering::Relaxed);
        let data_dir = std::env::temp_dir().join(format!("ignareo-bench-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut process = Self::host_in(binary, &data_dir, args).await?;
        process.data_dir = Some(data_dir);
        Ok(process)
    }

    /// A host on `data_dir`, which is left in place (for restarts).
    pub async fn host_in(binary: &Path, data_dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command.args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN]).arg("--data-dir").arg(data_dir).args(args);
        command.env("IGNAREO_LOG", "warn");
        Self::spawn(command).await
    }

    /// Stops the process with SIGTERM and waits for it to exit.
    pub async fn terminate(mut self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        if !status.success() {
            bail!("cannot send SIGTERM to {pid}");
        }
        tokio::time::timeout(Duration::from_mins(1), self.child.wait())
            .await
            .context("the host did not exit within 60 s of SIGTERM")??;
        Ok(())
    }

    pub async fn spawn(mut command: Command) -> anyhow::Result<Self> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true).spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let base = tokio::time::timeout(Duration::from_mins(1), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(at) = line.find("listening on ") {
                    return Ok(line[at + "listening on ".len()..].to_owned());
                }
            }
            bail!("the process exited before listening")
        })
        .await
        .context("the process did not start within 60 s")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { base, child, data_dir: None })
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the process has exited")
    }

    /// User + system CPU seconds the process has used since it was spawned, every thread
    /// counted.
    pub fn cpu_s(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')').context("a /proc stat line")?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11).context("utime")?.parse::<f64>()? + fields.get(12).context("stime")?.parse::<f64>()?;
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / per_second)
    }

    /// The configuration the host runs with, every setting (`GET /v1/config`).
    pub async fn config(&self) -> anyhow::Result<serde_json::Value> {
        let response = client().get(format!("{}/v1/config", self.base)).send().await?;
        if !response.status().is_success() {
            bail!("GET /v1/config answered {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// A line of `/proc/PID/status` in MiB (`VmRSS`, `VmHWM`).
    pub fn memory_mib(&self, field: &str) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim_start_matches(':').trim().strip_suffix(" kB")))
            .with_context(|| format!("no {field} in /proc/PID/status"))?
            .trim()
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// The process's proportional set size (`Pss` of `/proc/PID/smaps_rollup`).
    pub fn proportional_set_mib(&self) -> anyhow::Result<f64> {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid()?))?;
        let kib: f64 = rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:").and_then(|v| v.trim().strip_suffix(" kB")))
            .context("no Pss in /proc/PID/smaps_rollup")?
            .trim()
            .parse()?;
        Ok(kib / 1024.0)
    }

    pub async fn upload(&self, client: &reqwest::Client, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let response =
            client.put(format!("{}/v1/plugins/{name}", self.base)).bearer_auth(TOKEN).body(bytes).send().await?;
        if !response.status().is_success() {
            bail!("upload of {name} failed: {}", response.text().await?);
        }
        Ok(())
    }
}

impl Process {
    /// Uploads a component with its manifest (multipart).
    pub async fn upload_with_manifest(
        &self,
        client: &reqwest::Client,
        name: &str,
        bytes: Vec<u8>,
        manifest: &str,
    ) -> anyhow::Result<()> {
        let form = reqwest::multipart::Form::new()
            .part("component", reqwest::multipart::Part::bytes(bytes))
            .part("manifest", reqwest::multipart::Part::text(manifest.to_owned()));
        let response =
            client.put(format!("{}/v1/plugins/{name}", self.base)).bearer_auth(TOKEN).multipart(form).send().await?;
        if !response.status().is_success() {
            bail!("upload of {name} failed: {}", response.text().await?);
        }
        Ok(())
    }
}

/// A client process that ran to its exit, measured by the kernel from its spawn to its exit.
pub struct Exited {
    pub stdout: Vec<u8>,
    pub success: bool,
    /// User + system CPU seconds, every thread counted.
    pub cpu_s: f64,
    /// The high-water mark of its resident memory.
    pub peak_rss_mib: f64,
}

/// Runs `command` to its exit (stdout captured, stderr passed through), killed after `limit`.
/// Its CPU time and peak RSS come from `wait4`, so that they cover the whole process, start-up
/// and exit included, however it was written.
pub async fn run_to_exit(mut command: std::process::Command, limit: Duration) -> anyhow::Result<Exited> {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let pid = child.id();
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut waiter = tokio::task::spawn_blocking(move || -> anyhow::Result<Exited> {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out)?;
        let (status, usage) = wait_for(pid)?;
        // Reaped by wait4 above: dropping the handle neither waits nor kills.
        drop(child);
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Ok(Exited {
            stdout: out,
            success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            // Linux counts ru_maxrss in KiB.
            peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        })
    });
    if let Ok(joined) = tokio::time::timeout(limit, &mut waiter).await {
        return joined?;
    }
    // SAFETY: kill takes no pointers; the pid is our child's, not yet reaped (the waiter has
    // not returned).
    unsafe { libc::kill(pid.cast_signed(), libc::SIGKILL) };
    let _ = waiter.await;
    bail!("the process did not exit within {limit:?} and was killed")
}

/// Waits for child `pid` to exit: its wait status and resource usage.
fn wait_for(pid: u32) -> anyhow::Result<(i32, libc::rusage)> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data, zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes only into the two locals passed by pointer.
        let reaped = unsafe { libc::wait4(pid.cast_signed(), &raw mut status, 0, &raw mut usage) };
        if reaped == pid.cast_signed() {
            return Ok((status, usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).context("wait4");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
