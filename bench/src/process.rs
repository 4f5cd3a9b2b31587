//! Child processes the benchmarks start: the release host and the plain axum server. Both print
//! a "listening on http://ADDR" line, which is how their port is found.

use std::path::{Path, PathBuf};
use std::process::Stdio;
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
    pub async fn host(binary: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let data_dir = std::env::temp_dir().join(format!("ignareo-bench-{}", std::process::id()));
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
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the host did not exit within 60 s of SIGTERM")??;
        Ok(())
    }

    pub async fn spawn(mut command: Command) -> anyhow::Result<Self> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true).spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
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

    /// A line of /proc/PID/status in MiB (VmRSS, VmHWM).
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

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
