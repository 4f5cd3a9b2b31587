//! ignareo: a WebAssembly task host.
//!
//! Module map (data flows down this list):
//! - [`api`]: the HTTP API (axum): plugins, tasks, schedules, events, health.
//! - [`schedules`]: tasks that start on their own, by cron expression or interval.
//! - [`scheduler`]: admission (limits, bounded queue), task lifecycle, cancellation.
//! - [`registry`]: plugin versions, upload validation, the live version, hot swap and rollback.
//! - [`manifest`]: a plugin's `ignareo.toml`: grants and the limits its tasks run under.
//! - [`runtime`]: the wasmtime engine, linker, per-invocation stores and limits.
//! - [`capabilities`]: what guests may call: outbound HTTP, events, timers, task context.
//! - [`store`]: the durable record of tasks, schedules, plugins and tokens (SQLite in the data directory).
//! - [`task`], [`events`]: a task's record and its event stream.
//! - [`config`], [`auth`], [`server`], [`cli`]: configuration, the admin token, wiring, the command line.
//! - [`chaos`]: `ignareo chaos-proxy`, the fault-injecting proxy (stands apart from the host).

pub mod api;
pub mod auth;
pub mod capabilities;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod manifest;
pub mod net;
pub mod registry;
pub mod runtime;
pub mod scheduler;
pub mod schedules;
pub mod server;
pub mod store;
pub mod task;
