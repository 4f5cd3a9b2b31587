use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Thousands of tasks allocate and free request bodies, events and futures on every thread at
/// once; glibc's allocator serialises them on its arena locks, mimalloc keeps them per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("IGNAREO_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    ignareo::runtime::small_pages_only();
    match ignareo::cli::run(ignareo::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
