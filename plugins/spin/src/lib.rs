//! `spin`: computes forever without calling the host. The host must stop it at its deadline
//! while other tasks keep running.

use ignareo_sdk::Error;
use serde_json::Value;

fn run(_input: Value) -> Result<Value, Error> {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

ignareo_sdk::task!(run);
