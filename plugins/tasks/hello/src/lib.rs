//! `hello`: any JSON value `v` → `{"hello": v}`. No I/O: the smallest possible task.

use ignareo_sdk::Error;
use serde_json::{Value, json};

#[allow(
    clippy::needless_pass_by_value,
    clippy::unnecessary_wraps,
    reason = "the signature `task!` takes: the input by value, a `Result` whether or not this task can fail"
)]
fn run(input: Value) -> Result<Value, Error> {
    Ok(json!({ "hello": input }))
}

ignareo_sdk::task!(run);
