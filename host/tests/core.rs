//! In-process tests of the core: the registry, the scheduler and the runtime wired as the
//! server wires them, driven through their own APIs (no HTTP), with the plugins that
//! `plugins/` builds into `target/wasm32-wasip2/release/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ignareo::capabilities::Capabilities;
use ignareo::config::{Config, Limits};
use ignareo::manifest::Ceilings;
use ignareo::registry::{Registry, UploadError};
use ignareo::runtime::Runtime;
use ignareo::scheduler::{Scheduler, SubmitError};
use ignareo::store::{SqliteStore, Store};
use ignareo::task::{FailureKind, Outcome, OwnerRefusal, Owners, Status, Task, TaskState};
use serde_json::{Value, json};

/// A data directory of its own, removed when the test ends.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("ignareo-core-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).expect("the temporary directory is created");
        Self(path)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn component(name: &str) -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("cannot read {} ({e}): build the plugins first (cd plugins && cargo build --release)", path.display())
    })
}

/// Stands in for the tokens: every task may start every plugin, except that asking about
/// plugin `explodes` panics, as a host call that breaks would.
struct AnyOwner;

impl Owners for AnyOwner {
    fn may_start(&self, _: Option<&str>, plugin: &str) -> Result<(), OwnerRefusal> {
        assert_ne!(plugin, "explodes", "the token check broke");
        Ok(())
    }
}

/// The core as the server wires it, on a data directory of its own.
struct Core {
    registry: Arc<Registry>,
    scheduler: Arc<Scheduler>,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    config: Config,
    dir: DataDir,
}

impl Core {
    async fn start(limits: Limits) -> Self {
        let dir = DataDir::new();
        let config = Config { limits, data_dir: dir.0.clone(), ..Config::default() };
        let runtime = Arc::new(Runtime::new(&config.limits).expect("the runtime starts"));
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.0.join("ignareo.db"), &config.store, 100).expect("the store opens"));
        let registry = Arc::new(Self::registry(&config, &runtime, &store).await);
        let capabilities = Capabilities::new(&config.outbound).expect("the outbound client builds");
        let scheduler = Scheduler::new(
            registry.clone(),
            store.clone(),
            runtime.clone(),
            capabilities,
            Arc::new(AnyOwner),
            config.limits.clone(),
            config.store.retain_finished(),
        )
        .expect("the scheduler starts");
        Self { registry, scheduler, runtime, store, config, dir }
    }

    async fn registry(config: &Config, runtime: &Arc<Runtime>, store: &Arc<dyn Store>) -> Registry {
        let validation_timeout = config.limits.upload_validation_timeout();
        Registry::open(runtime.clone(), &config.data_dir, store.clone(), 10, Ceilings::of(config), validation_timeout)
            .await
            .expect("the registry opens")
    }

    async fn upload(&self, name: &str, file: &str, manifest: Option<&str>) -> String {
        let report = self.registry.upload(name, &component(file), manifest).await.expect("the upload is accepted");
        report.version
    }

    fn submit(&self, plugin: &str, input: &Value) -> Arc<Task> {
        self.scheduler.submit(plugin, Bytes::from(input.to_string()), None, None).expect("the task is accepted")
    }

    async fn run(&self, plugin: &str, input: &Value) -> Status {
        finished(&self.submit(plugin, input)).await
    }

    /// Waits until `running` tasks run at once (or fails after a while).
    async fn until_running(&self, running: usize) {
        for _ in 0..500 {
            if self.scheduler.load().running == running {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{running} tasks never ran at once: {:?}", self.scheduler.load());
    }
}

async fn finished(task: &Task) -> Status {
    tokio::time::timeout(Duration::from_mins(1), task.finished()).await.expect("the task ends within a minute")
}

fn output(status: &Status) -> Value {
    match &status.outcome {
        Some(Outcome::Succeeded(bytes)) => serde_json::from_slice(bytes).expect("the output is JSON"),
        other => panic!("the task did not succeed: {other:?}"),
    }
}

fn failure(status: &Status) -> (FailureKind, String) {
    match &status.outcome {
        Some(Outcome::Failed(failure)) => (failure.kind, failure.message.clone()),
        other => panic!("the task did not fail: {other:?}"),
    }
}

fn small_limits() -> Limits {
    Limits { max_running_tasks: 8, task_threads: Some(2), ..Limits::default() }
}

#[tokio::test]
async fn the_registry_makes_uploads_live_rolls_back_and_deletes() {
    let core = Core::start(small_limits()).await;
    let refused = core.registry.upload("../hello", &component("hello"), None).await;
    assert!(matches!(refused, Err(UploadError::InvalidName(name)) if name == "../hello"));
    let first = core.upload("hello", "hello", None).await;
    assert_eq!(output(&core.run("hello", &json!(1)).await), json!({"hello": 1}));
    let second = core.upload("hello", "hello_v2", None).await;
    assert_ne!(first, second);
    assert_eq!(core.registry.live("hello").expect("hello is live").info.version, second);
    assert_eq!(output(&core.run("hello", &json!(1)).await), json!({"hello": 1, "version": 2}));

    let view = core.registry.rollback("hello", None).await.expect("an earlier version exists");
    assert_eq!(view.live, first);
    assert_eq!(output(&core.run("hello", &json!(1)).await), json!({"hello": 1}));
    assert_eq!(core.registry.compilations(), 2, "each component compiled once, rollback from the cache");

    // A registry opened anew on the same data directory loads the live version from its
    // compiled artifact, without compiling.
    let reopened = Core::registry(&core.config, &core.runtime, &core.store).await;
    assert_eq!(reopened.live("hello").expect("hello is live after a reopen").info.version, first);
    assert_eq!(reopened.compilations(), 0);

    core.registry.delete("hello").await.expect("hello exists");
    assert!(core.registry.live("hello").is_none());
    assert!(matches!(
        core.scheduler.submit("hello", Bytes::new(), None, None),
        Err(SubmitError::NoSuchPlugin(name)) if name == "hello"
    ));
    let leftovers = std::fs::read_dir(core.dir.0.join("components")).expect("the components directory").count();
    assert_eq!(leftovers, 0, "a deleted plugin's components are removed");
}

#[tokio::test]
async fn tasks_beyond_the_running_and_queued_limits_are_refused_not_lost() {
    let core = Core::start(Limits { max_running_tasks: 2, max_queued_tasks: 2, ..small_limits() }).await;
    core.upload("sleep", "sleep", None).await;
    let nap = json!({"ms": 5_000});
    let mut tasks = vec![core.submit("sleep", &nap), core.submit("sleep", &nap)];
    core.until_running(2).await;
    tasks.push(core.submit("sleep", &nap));
    tasks.push(core.submit("sleep", &nap));
    let load = core.scheduler.load();
    assert_eq!((load.running, load.queued), (2, 2));
    match core.scheduler.submit("sleep", Bytes::from(nap.to_string()), None, None) {
        Err(SubmitError::QueueFull(2)) => {}
        other => panic!("a fifth task is refused while two wait: {:?}", other.map(|t| t.id)),
    }
    let two = vec![Bytes::from(nap.to_string()); 2];
    let batch = core.scheduler.accept_many("sleep", two, None, None).await;
    assert!(matches!(batch, Err(SubmitError::NoRoom { count: 2, queued: 2, max_queued: 2 })), "{:?}", batch.err());

    for task in &tasks {
        task.cancel();
    }
    for task in &tasks {
        assert_eq!(finished(task).await.state, TaskState::Cancelled);
    }
    assert_eq!(core.scheduler.load().queued, 0, "cancelled tasks give their queue places back");
    assert_eq!(output(&core.run("sleep", &json!({"ms": 1})).await), json!({"slept_ms": 1}));
}

#[tokio::test]
async fn a_new_version_resizes_its_plugins_running_slots() {
    let core = Core::start(small_limits()).await;
    core.upload("sleep", "sleep", Some("max_concurrency = 1\n")).await;
    let nap = json!({"ms": 3_000});
    let mut tasks: Vec<Arc<Task>> = (0..3).map(|_| core.submit("sleep", &nap)).collect();
    core.until_running(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(core.scheduler.load().running, 1, "max_concurrency = 1 holds");

    core.upload("sleep", "sleep", Some("max_concurrency = 3\n")).await;
    tasks.push(core.submit("sleep", &nap));
    core.until_running(3).await;
    for task in &tasks {
        task.cancel();
    }
    for task in &tasks {
        finished(task).await;
    }
}

#[tokio::test]
async fn an_invocation_ends_on_its_limits_with_the_failure_that_names_them() {
    let limits = Limits { max_output_mb: 1, task_stack_kb: 256, ..small_limits() };
    let core = Core::start(limits).await;
    core.upload("hostile", "hostile", Some("memory_limit = \"16MiB\"\n")).await;
    core.upload("trap", "trap", None).await;
    core.upload("spin", "spin", Some("timeout = 1\n")).await;

    let (kind, message) = failure(&core.run("hostile", &json!({"kind": "memory-bomb"})).await);
    assert_eq!((kind, message.as_str()), (FailureKind::MemoryLimit, "the task exceeded its memory limit of 16 MiB"));

    let (kind, message) = failure(&core.run("hostile", &json!({"kind": "stack-overflow"})).await);
    assert_eq!(kind, FailureKind::ResourceLimit);
    assert!(message.contains("call stack of 256 KiB (limits.task_stack_kb)"), "{message}");

    let (kind, message) = failure(&core.run("hostile", &json!({"kind": "huge-output", "n": 2})).await);
    assert_eq!(kind, FailureKind::ResourceLimit);
    assert!(message.contains("exceeds limits.max_output_mb (1 MiB)"), "{message}");

    let (kind, message) = failure(&core.run("trap", &json!({"kind": "panic"})).await);
    assert_eq!(kind, FailureKind::Trap);
    assert!(message.contains("the trap plugin panics on purpose"), "the guest's stderr explains the trap: {message}");

    let spun = core.run("spin", &json!(null)).await.outcome.expect("the task ended");
    assert_eq!(spun.state(), TaskState::TimedOut, "a guest that never yields is stopped at its deadline");
    assert_eq!(spun.describe(), "exceeded its deadline of 1000 ms");
}

/// A host call that panics (here the token check of a spawn) ends its task as a host error
/// with the panic's message, and frees its running slot: with one slot in all, the next task
/// runs.
#[tokio::test]
async fn a_host_call_that_panics_fails_its_task_and_frees_its_slot() {
    let core = Core::start(Limits { max_running_tasks: 1, ..small_limits() }).await;
    core.upload("spawner", "spawner", Some("spawn = [\"explodes\"]\n")).await;
    core.upload("hello", "hello", None).await;
    let (kind, message) = failure(&core.run("spawner", &json!({"plugin": "explodes", "inputs": [1]})).await);
    assert_eq!(kind, FailureKind::HostError);
    assert!(message.contains("the token check broke"), "{message}");
    assert_eq!(core.scheduler.load().running, 0);
    assert_eq!(output(&core.run("hello", &json!(1)).await), json!({"hello": 1}), "the one running slot is free");
}
