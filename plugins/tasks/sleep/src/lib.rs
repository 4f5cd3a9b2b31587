//! `sleep`: `{"ms": N}` → sleeps N ms on the host (no thread held) → `{"slept_ms": N}`.

use std::time::Duration;

use ignareo_sdk::Error;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    ms: u64,
}

#[derive(Serialize)]
struct Output {
    slept_ms: u64,
}

#[allow(
    clippy::needless_pass_by_value,
    clippy::unnecessary_wraps,
    reason = "the signature `task!` takes: the input by value, a `Result` whether or not this task can fail"
)]
fn run(input: Input) -> Result<Output, Error> {
    ignareo_sdk::sleep(Duration::from_millis(input.ms));
    Ok(Output { slept_ms: input.ms })
}

ignareo_sdk::task!(run);
