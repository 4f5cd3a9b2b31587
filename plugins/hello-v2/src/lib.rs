//! `hello`, second version: `v` → `{"hello": v, "version": 2}`. Uploaded over `hello` to
//! show a hot swap.

use ignareo_sdk::Error;
use serde_json::{Value, json};

fn run(input: Value) -> Result<Value, Error> {
    Ok(json!({ "hello": input, "version": 2 }))
}

ignareo_sdk::task!(run);
