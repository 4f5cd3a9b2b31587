//! `spawner`: `{"plugin": P, "inputs": [..]}` → spawns one task of P per input, joins them all →
//! `{"task_id": .., "children": [ids], "outputs": [..]}` in input order.

use ignareo_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct Input {
    plugin: String,
    inputs: Vec<Value>,
}

#[derive(Serialize)]
struct Output {
    task_id: String,
    children: Vec<String>,
    outputs: Vec<Value>,
}

fn run(input: Input) -> Result<Output, Error> {
    let children = input.inputs.iter().map(|i| ignareo_sdk::spawn(&input.plugin, i)).collect::<Result<Vec<_>, _>>()?;
    let outputs = children.iter().map(|c| c.join()).collect::<Result<Vec<Value>, _>>()?;
    Ok(Output { task_id: ignareo_sdk::task_id(), children: children.iter().map(|c| c.id()).collect(), outputs })
}

ignareo_sdk::task!(run);
