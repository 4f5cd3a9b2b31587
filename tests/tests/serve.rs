//! `ignareo serve` itself: configuration from flags, environment and file, refused before
//! binding when invalid; the admin token generated once; graceful shutdown.

use std::process::Stdio;
use std::time::Duration;

use ignareo_e2e::Host;
use serde_json::json;
use tokio::process::Command;

fn binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("ignareo")
}

async fn refused(args: &[&str], envs: &[(&str, &str)]) -> String {
    let data_dir = std::env::temp_dir().join(format!("ignareo-refused-{:016x}", rand::random::<u64>()));
    let mut command = Command::new(binary());
    command.arg("serve").arg("--data-dir").arg(&data_dir).args(args).env("IGNAREO_LOG", "warn");
    for (k, v) in envs {
        command.env(k, v);
    }
    let output =
        tokio::time::timeout(Duration::from_secs(30), command.stdin(Stdio::null()).output()).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(!output.status.success(), "the host must refuse {args:?} {envs:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"), "it must not bind");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn invalid_configuration_is_refused_before_binding() {
    let config = std::env::temp_dir().join(format!("ignareo-bad-{:016x}.toml", rand::random::<u64>()));
    std::fs::write(&config, "[limits]\nmax_runing_tasks = 3\n").unwrap();
    let stderr = refused(&["--config", config.to_str().unwrap()], &[]).await;
    assert!(stderr.contains("max_runing_tasks"), "{stderr}");
    std::fs::remove_file(&config).unwrap();

    let stderr = refused(&[], &[("IGNAREO_MAX_QUEUED_TASKS", "0")]).await;
    assert!(stderr.contains("limits.max_queued_tasks"), "{stderr}");
    let stderr = refused(&["--listen", "nowhere"], &[]).await;
    assert!(stderr.contains("--listen"), "{stderr}");
    let stderr = refused(&["--task-memory-mb", "0"], &[]).await;
    assert!(stderr.contains("limits.task_memory_mb"), "{stderr}");
    let stderr = refused(&[], &[("IGNAREO_TOKEN", "short")]).await;
    assert!(stderr.contains("token"), "{stderr}");
}

#[tokio::test]
async fn the_admin_token_is_generated_once_and_stored_privately() {
    use std::os::unix::fs::PermissionsExt;
    let data_dir = std::env::temp_dir().join(format!("ignareo-token-{:016x}", rand::random::<u64>()));
    let start = || {
        Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
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
    std::fs::remove_dir_all(&data_dir).unwrap();
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
