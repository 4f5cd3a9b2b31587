//! `trap`: `{"kind": "panic" | "unreachable" | "divide-by-zero" | "out-of-memory"}` → traps
//! that way (out-of-memory: allocates until the host refuses to grow its memory).

use ignareo_sdk::Error;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Panic,
    Unreachable,
    DivideByZero,
    OutOfMemory,
}

#[derive(Deserialize)]
struct Input {
    kind: Kind,
}

fn run(input: Input) -> Result<Value, Error> {
    match input.kind {
        Kind::Panic => panic!("the trap plugin panics on purpose"),
        Kind::Unreachable => std::process::abort(),
        Kind::DivideByZero => {
            let zero = std::hint::black_box(0u32);
            Ok(Value::from(std::hint::black_box(1u32) / zero))
        }
        Kind::OutOfMemory => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
    }
}

ignareo_sdk::task!(run);
