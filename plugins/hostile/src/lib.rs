//! `hostile`: a plugin that misbehaves on purpose, one way per `kind`, so that tests can show
//! the host stopping each with a typed error that names the limit it hit.
//!
//! Input `{"kind": K, "n": N}`:
//! - `busy-with-host-calls`: loops forever, calling the host between iterations;
//! - `memory-bomb`: allocates until the host refuses to grow its memory;
//! - `stack-overflow`: recurses without end;
//! - `huge-output`: returns N MiB (default 100) of output;
//! - `log-flood`: logs N lines (default 1,000,000), then returns;
//! - `spawn-bomb`: spawns N copies of itself (default 4), each doing the same, and joins them;
//! - `sleep-forever`: sleeps for good;
//! - `many-sessions`: opens N sessions (default 1,000) and keeps them;
//! - `peek`: reports what it can see of the host: environment, arguments, files, clocks,
//!   randomness.

use std::time::Duration;

use ignareo_sdk::http::Session;
use ignareo_sdk::{Error, log};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    BusyWithHostCalls,
    MemoryBomb,
    StackOverflow,
    HugeOutput,
    LogFlood,
    SpawnBomb,
    SleepForever,
    ManySessions,
    Peek,
}

#[derive(Deserialize)]
struct Input {
    kind: Kind,
    n: Option<u64>,
}

fn run(input: Input) -> Result<Value, Error> {
    match input.kind {
        Kind::BusyWithHostCalls => {
            let mut calls = 0u64;
            loop {
                calls = calls.wrapping_add(ignareo_sdk::task_id().len() as u64);
                std::hint::black_box(calls);
            }
        }
        Kind::MemoryBomb => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Kind::StackOverflow => Ok(json!(recurse(std::hint::black_box(1)))),
        Kind::HugeOutput => {
            let mib = input.n.unwrap_or(100) as usize;
            let text = "x".repeat(mib << 20);
            Ok(Value::String(text))
        }
        Kind::LogFlood => {
            let lines = input.n.unwrap_or(1_000_000);
            for i in 0..lines {
                log::info(format!("line {i}"));
            }
            Ok(json!({ "logged": lines }))
        }
        Kind::SpawnBomb => {
            let copies = input.n.unwrap_or(4);
            let me = ignareo_sdk::plugin_name();
            let children = (0..copies)
                .map(|_| ignareo_sdk::spawn(&me, &json!({"kind": "spawn-bomb", "n": copies})))
                .collect::<Result<Vec<_>, _>>()?;
            for child in children {
                child.join::<Value>()?;
            }
            Ok(json!({ "spawned": copies }))
        }
        Kind::SleepForever => loop {
            ignareo_sdk::sleep(Duration::from_secs(3600));
        },
        Kind::Peek => {
            let seen = |result: std::io::Result<usize>| match result {
                Ok(n) => json!({ "ok": n }),
                Err(e) => json!({ "error": e.to_string() }),
            };
            let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let hashed = {
                use std::hash::BuildHasher;
                std::collections::hash_map::RandomState::new().hash_one(0u8)
            };
            Ok(json!({
                "env": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
                "args": std::env::args().collect::<Vec<_>>(),
                "root": seen(std::fs::read_dir("/").map(|d| d.count())),
                "passwd": seen(std::fs::read("/etc/passwd").map(|b| b.len())),
                "cwd_entries": seen(std::fs::read_dir(".").map(|d| d.count())),
                "unix_secs": since_epoch.as_secs(),
                "random": hashed.to_string(),
            }))
        }
        Kind::ManySessions => {
            let count = input.n.unwrap_or(1_000);
            let sessions: Vec<Session> = (0..count).map(|_| Session::new()).collect();
            Ok(json!({ "sessions": sessions.len() }))
        }
    }
}

/// Recursion the optimiser cannot turn into a loop. Its frames live on the engine's call
/// stack, not in linear memory (where Rust keeps a stack of its own for large locals).
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse(depth + 1)) ^ depth
}

ignareo_sdk::task!(run);
