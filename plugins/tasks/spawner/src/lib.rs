//! `spawner`: `{"plugin": P, "inputs": [..]}` → spawns one task of P per input, joins them all →
//! `{"task_id": .., "children": [ids], "outputs": [..]}` in input order.

use ignareo_sdk::{Child, Error};
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
    let Input { plugin, inputs } = input;
    let children = inputs.iter().map(|i| ignareo_sdk::spawn(&plugin, i)).collect::<Result<Vec<_>, _>>()?;
    let outputs = children.iter().map(Child::join::<Value>).collect::<Result<Vec<_>, _>>()?;
    Ok(Output { task_id: ignareo_sdk::task_id(), children: children.iter().map(Child::id).collect(), outputs })
}

ignareo_sdk::task!(run);
