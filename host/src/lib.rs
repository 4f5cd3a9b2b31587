//! ignareo: a WebAssembly task host.
//!
//! # Module map
//!
//! Two stacks on a shared vocabulary. A module imports only modules below it on its own stack
//! or the vocabulary; `scripts/check-layers` holds the table of what each may import and
//! fails the test command on an import against it.
//!
//! ```text
//! cli           → server, chaos, manifest, config
//! server        → every module below: it wires the host
//! api           → schedules, scheduler, registry, runtime, manifest, auth, store
//! schedules     → scheduler, store
//! scheduler     → registry, runtime, capabilities, manifest, store
//! registry      → runtime, capabilities, manifest, store
//! auth          → store
//! manifest      → capabilities
//! runtime       → capabilities
//! capabilities  → (the vocabulary only)
//! store         → (the vocabulary only)
//! chaos         → net
//! and every one → task, config: the vocabulary, which imports nothing of the crate
//! ```
//!
//! Execution, top down:
//! - [`api`]: the HTTP API (axum): plugins, tasks, schedules, events, tokens, health.
//! - [`schedules`]: tasks that start on their own, by cron expression or interval.
//! - [`scheduler`]: admission (limits, bounded queue), running slots, the task table, each
//!   task's lifecycle, recovery at start.
//! - [`registry`]: plugin versions, upload validation, the live version, hot swap, rollback.
//! - [`manifest`]: a plugin's `ignareo.toml`: grants and the limits its tasks run under.
//! - [`runtime`]: the wasmtime engine, the linker, per-invocation stores, why a run failed.
//! - [`capabilities`]: the guest world (bindings, per-task host state) and what guests may
//!   call through it: outbound HTTP, events, timers, task context.
//!
//! Persistence: the scheduler, registry, schedules and [`auth`] (tokens and scopes) record
//! through the [`store`] (its trait and records; `SQLite` in the data directory).
//!
//! Vocabulary: [`task`] (a task and the words every module shares about it), [`config`]
//! (every limit, validated before anything binds), [`net`] (listening sockets).
//!
//! On top: [`server`] wires the host from a configuration and serves it; [`cli`] is the command
//! line, with the tooling for plugin projects (`ignareo new`, `ignareo build`). [`chaos`] is
//! `ignareo chaos-proxy`, the fault-injecting proxy, which shares nothing with the host but the
//! vocabulary.

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
#[cfg(test)]
mod testing;
