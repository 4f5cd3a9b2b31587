//! `ignareo serve` itself: configuration from flags, environment and file, refused before
//! binding when invalid; the admin token generated once; graceful shutdown.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::process::Stdio;
use std::time::Duration;

use ignareo_e2e::{Host, TempDir, binary};
use serde_json::json;
use tokio::process::Command;

/// Starts `serve` on a fresh data directory expecting a refusal before it binds: its stderr.
async fn refused(args: &[&str], envs: &[(&str, &str)]) -> String {
    let data_dir = TempDir::new("refused");
    ignareo_e2e::refused_start(data_dir.path(), args, envs).await
}

#[tokio::test]
async fn invalid_configuration_is_refused_before_binding() {
    let dir = TempDir::new("bad-config");
    dir.write("bad.toml", "[limits]\nmax_runing_tasks = 3\n");
    let stderr = refused(&["--config", &dir.arg("bad.toml")], &[]).await;
    assert!(stderr.contains("max_runing_tasks"), "{stderr}");

    let stderr = refused(&[], &[("IGNAREO_MAX_QUEUED_TASKS", "0")]).await;
    assert!(stderr.contains("limits.max_queued_tasks"), "{stderr}");
    let stderr = refused(&["--listen", "nowhere"], &[]).await;
    assert!(stderr.contains("--listen"), "{stderr}");
    let stderr = refused(&["--task-memory-mb", "0"], &[]).await;
    assert!(stderr.contains("limits.task_memory_mb"), "{stderr}");
    let stderr = refused(&[], &[("IGNAREO_TOKEN", "short")]).await;
    assert!(stderr.contains("token"), "{stderr}");

    // Rates, durations and sizes out of range: refused with the key named, not met later.
    for (config, key) in [
        ("[outbound.politeness]\nrequests_per_second = 1e-300\n", "outbound.politeness.requests_per_second"),
        ("[outbound.politeness]\nrequests_per_second = nan\n", "outbound.politeness.requests_per_second"),
        ("[limits]\ntask_timeout_secs = 9223372036854775807\n", "limits.task_timeout_secs"),
        ("[limits]\nbackground_secs = 9223372036854775807\n", "limits.background_secs"),
        ("[store]\nretain_finished_secs = 9223372036854775807\n", "store.retain_finished_secs"),
        ("[outbound]\nmax_response_mb = 9223372036854775807\n", "outbound.max_response_mb"),
    ] {
        dir.write("range.toml", config);
        let stderr = refused(&["--config", &dir.arg("range.toml")], &[]).await;
        assert!(stderr.contains(key), "{config}: {stderr}");
    }
}

#[tokio::test]
async fn the_admin_token_is_generated_once_and_stored_privately() {
    use std::os::unix::fs::PermissionsExt;
    let data_dir = TempDir::new("token");
    let start = || {
        Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env_remove("IGNAREO_TOKEN")
            .env("IGNAREO_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let first_line = |mut child: tokio::process::Child| async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        child.kill().await.unwrap();
        line
    };
    let line = first_line(start()).await;
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    assert!(line.starts_with("admin token") && line.ends_with(token.trim()), "{line}");
    let mode = std::fs::metadata(data_dir.join("admin-token")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let line = first_line(start()).await;
    assert!(line.starts_with("ignareo listening on"), "the token is printed only once: {line}");
}

#[tokio::test]
async fn sigterm_lets_running_tasks_finish() {
    let host = Host::start().await;
    host.upload("sleep", "sleep").await;
    let id = host.submit("sleep", &json!({"ms": 1000})).await;
    let response = host.client.get(host.url(&format!("/v1/tasks/{id}?wait=30")));
    let waiter = tokio::spawn(response.send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = host.terminate().await;
    assert!(status.success(), "a graceful shutdown exits 0: {status}");
    let task: serde_json::Value = waiter.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(task["state"], "succeeded", "the running task finished before the host exited");
}

#[tokio::test]
async fn a_flag_wins_over_the_environment_which_wins_over_the_file() {
    let data_dir = TempDir::new("precedence");
    data_dir.write("config.toml", "[limits]\nmax_running_tasks = 3\nmax_queued_tasks = 30\ntask_timeout_secs = 40\n");
    let config = data_dir.arg("config.toml");
    let env = [("IGNAREO_MAX_RUNNING_TASKS", "5"), ("IGNAREO_MAX_QUEUED_TASKS", "50")];
    // Each host is stopped before the next one starts on the same data directory.
    let limits = |host: Host| async move {
        let limits = host.get_json("/v1/config").await["limits"].clone();
        let status = host.terminate().await;
        assert!(status.success(), "a graceful shutdown exits 0: {status}");
        limits
    };
    let read = |l: &serde_json::Value| {
        (l["max_running_tasks"].as_u64(), l["max_queued_tasks"].as_u64(), l["task_timeout_secs"].as_u64())
    };

    let file = limits(Host::start_in(data_dir.path(), &["--config", &config]).await.unwrap()).await;
    assert_eq!(read(&file), (Some(3), Some(30), Some(40)), "the file over the defaults: {file}");

    let from_env = limits(Host::start_in_with_env(data_dir.path(), &["--config", &config], &env).await.unwrap()).await;
    assert_eq!(read(&from_env), (Some(5), Some(50), Some(40)), "the environment over the file: {from_env}");

    let flags = ["--config", &config, "--max-running-tasks", "7"];
    let all = limits(Host::start_in_with_env(data_dir.path(), &flags, &env).await.unwrap()).await;
    assert_eq!(read(&all), (Some(7), Some(50), Some(40)), "a flag over the environment: {all}");
    assert_eq!(all["max_input_mb"], 4, "what nobody set keeps its default: {all}");
}
