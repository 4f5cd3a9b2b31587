//! Hot swap under load: the trigger load on `hello` (wrk, 64 connections, 10 s) while a new
//! version of `hello` is uploaded every second, next to the same load without uploads. Uploads
//! alternate two components, each with a manifest of its own, so that every upload is a new
//! version (after the first two, their compiled artifacts are reused: the swap itself is what
//! is measured, not the compiler).

use std::time::{Duration, Instant};

use crate::Paths;
use crate::process::{Process, client};
use crate::trigger::{TriggerResult, post_script, wrk};

pub const UPLOADS: usize = 10;

pub struct HotSwapResult {
    pub steady: Vec<TriggerResult>,
    pub swapping: Vec<TriggerResult>,
    /// How long each upload took to answer (ms), over every repetition.
    pub upload_ms: Vec<f64>,
    pub failed_uploads: usize,
}

pub async fn run(paths: &Paths, repetitions: usize) -> anyhow::Result<HotSwapResult> {
    let script = post_script()?;
    let host = Process::host(&paths.host, &[]).await?;
    let components = [paths.plugin("hello")?, paths.plugin("hello_v2")?];
    host.upload(&client(), "hello", components[0].clone()).await?;
    let url = format!("{}/v1/plugins/hello/run", host.base);
    let mut result =
        HotSwapResult { steady: Vec::new(), swapping: Vec::new(), upload_ms: Vec::new(), failed_uploads: 0 };
    let mut version = 0;
    for _ in 0..crate::scale::repetitions(repetitions) {
        result.steady.push(wrk("steady", &url, &script).await?);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let uploads: Vec<(Vec<u8>, String)> = (0..crate::scale::count(UPLOADS))
            .map(|_| {
                version += 1;
                (components[version % 2].clone(), format!("timeout = {}\n", 30 + version))
            })
            .collect();
        let (base, client) = (host.base.clone(), client());
        let uploader = tokio::spawn(async move {
            let started = Instant::now();
            let mut timings = Vec::new();
            for (i, (bytes, manifest)) in uploads.into_iter().enumerate() {
                tokio::time::sleep_until((started + Duration::from_millis(500) + Duration::from_secs(i as u64)).into())
                    .await;
                let form = reqwest::multipart::Form::new()
                    .part("component", reqwest::multipart::Part::bytes(bytes))
                    .part("manifest", reqwest::multipart::Part::text(manifest));
                let sent = Instant::now();
                let ok = client
                    .put(format!("{base}/v1/plugins/hello"))
                    .multipart(form)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                timings.push((sent.elapsed().as_secs_f64() * 1e3, ok));
            }
            timings
        });
        result.swapping.push(wrk("swapping", &url, &script).await?);
        for (ms, ok) in uploader.await? {
            result.upload_ms.push(ms);
            result.failed_uploads += usize::from(!ok);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(result)
}
