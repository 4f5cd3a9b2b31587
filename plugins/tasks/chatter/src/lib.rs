//! `chatter`: `{"steps": N, "ms": M}` → for each step logs `step i`, reports progress i/N and
//! sleeps M ms → `{"steps": N}`. Shows live events.

use std::time::Duration;

use ignareo_sdk::{Error, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    steps: u64,
    #[serde(default)]
    ms: u64,
}

#[derive(Serialize)]
struct Output {
    steps: u64,
}

#[allow(
    clippy::needless_pass_by_value,
    clippy::unnecessary_wraps,
    reason = "the signature `task!` takes: the input by value, a `Result` whether or not this task can fail"
)]
fn run(input: Input) -> Result<Output, Error> {
    for step in 1..=input.steps {
        log::info(format!("step {step}"));
        ignareo_sdk::progress(step, Some(input.steps), None);
        ignareo_sdk::sleep(Duration::from_millis(input.ms));
    }
    Ok(Output { steps: input.steps })
}

ignareo_sdk::task!(run);
