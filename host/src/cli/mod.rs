//! The command line: `ignareo serve` (flags also read from the environment),
//! `ignareo tokens`, `ignareo chaos-proxy`, and `ignareo new` and `ignareo build` for plugin
//! projects.

mod project;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::chaos::{ChaosArgs, ChaosProxy};
use crate::config::Config;
use crate::server::{Server, shutdown_signal};

#[derive(Parser)]
#[command(
    name = "ignareo",
    version,
    about = "A WebAssembly task host: upload task plugins, trigger them over HTTP, run thousands at once."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the task host.
    Serve(ServeArgs),
    /// Create, list and revoke scoped API tokens on a running host.
    Tokens(tokens::TokensArgs),
    /// Run a proxy that degrades the HTTP links through it (latency, speed, jitter, resets).
    ChaosProxy(ChaosArgs),
    /// Make a plugin project (task, manifest, README) in Rust, Python or JavaScript.
    New(project::NewArgs),
    /// Build a plugin project into a component, installing its language's tools on first use.
    Build(project::BuildArgs),
}

/// Flags override the environment, which overrides the config file, which overrides defaults.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "IGNAREO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where plugins, compiled artifacts and the admin token live [default: ./ignareo-data].
    #[arg(long, env = "IGNAREO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (see README for every key).
    #[arg(long, env = "IGNAREO_CONFIG")]
    pub config: Option<PathBuf>,
    /// The bootstrap admin bearer token [default: generated at first start].
    #[arg(long, env = "IGNAREO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tasks running at once across all plugins.
    #[arg(long, env = "IGNAREO_MAX_RUNNING_TASKS")]
    pub max_running_tasks: Option<u32>,
    /// Tasks of one plugin running at once.
    #[arg(long, env = "IGNAREO_MAX_RUNNING_PER_PLUGIN")]
    pub max_running_per_plugin: Option<u32>,
    /// Accepted tasks waiting for a slot before submissions get 429.
    #[arg(long, env = "IGNAREO_MAX_QUEUED_TASKS")]
    pub max_queued_tasks: Option<u32>,
    /// Default and maximum wall-clock seconds of one task.
    #[arg(long, env = "IGNAREO_TASK_TIMEOUT_SECS")]
    pub task_timeout_secs: Option<u64>,
    /// Linear memory one task may use, in MiB.
    #[arg(long, env = "IGNAREO_TASK_MEMORY_MB")]
    pub task_memory_mb: Option<u64>,
}

impl ServeArgs {
    /// The configuration these flags describe, on top of the config file if one is named.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let limits = &mut config.limits;
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.token {
            config.token = Some(v);
        }
        if let Some(v) = self.max_running_tasks {
            limits.max_running_tasks = v;
        }
        if let Some(v) = self.max_running_per_plugin {
            limits.max_running_per_plugin = Some(v);
        }
        if let Some(v) = self.max_queued_tasks {
            limits.max_queued_tasks = v;
        }
        if let Some(v) = self.task_timeout_secs {
            limits.task_timeout_secs = v;
        }
        if let Some(v) = self.task_memory_mb {
            limits.task_memory_mb = v;
        }
        Ok(config)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let server = Server::start(args.into_config()?).await?;
            let shutdown = shutdown_signal();
            // Scripts and tests read this line to find the port when listening on port 0.
            println!("ignareo listening on http://{}", server.local_addr()?);
            server.run(shutdown).await
        }
        Command::Tokens(args) => tokens::run(args).await,
        Command::ChaosProxy(args) => {
            let proxy = ChaosProxy::bind(args.settings()?)?;
            let shutdown = shutdown_signal();
            println!("chaos-proxy listening on http://{}", proxy.local_addr()?);
            proxy.run(shutdown).await
        }
        Command::New(args) => project::new(args),
        Command::Build(args) => project::build(args),
    }
}
