//! `hello`: any JSON value `v` → `{"hello": v}`. No I/O: the smallest possible task.

use ignareo_sdk::Error;
use serde_json::{Value, json};

fn run(input: Value) -> Result<Value, Error> {
    Ok(json!({ "hello": input }))
}

ignareo_sdk::task!(run);
