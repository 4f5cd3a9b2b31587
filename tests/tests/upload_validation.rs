//! An upload's validation (compiling the component, instantiating it once) has a time limit:
//! a component crafted never to finish instantiating is refused with a clear 4xx, and the host
//! goes on serving.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::path::Path;
use std::time::Duration;

use ignareo_e2e::Host;
use serde_json::{Value, json};
use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, MemorySection, MemoryType, Module,
    StartSection, TypeSection, ValType,
};

/// A component of the `task` world whose core module's start function loops for ever, so that
/// instantiating it never ends (its `run` would trap, were it ever reached).
fn never_instantiates() -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function([], []);
    types.ty().function([ValType::I32, ValType::I32], [ValType::I32]);
    types.ty().function([ValType::I32; 4], [ValType::I32]);
    let mut functions = FunctionSection::new();
    for ty in 0..3 {
        functions.function(ty);
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0).export("run", ExportKind::Func, 1).export(
        "cabi_realloc",
        ExportKind::Func,
        2,
    );
    let mut code = CodeSection::new();
    let mut spin = Function::new([]);
    spin.instructions().loop_(BlockType::Empty).br(0).end().end();
    code.function(&spin);
    for _ in 0..2 {
        let mut trap = Function::new([]);
        trap.instructions().unreachable().end();
        code.function(&trap);
    }
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&memories)
        .section(&exports)
        .section(&StartSection { function_index: 0 })
        .section(&code);
    let mut module = module.finish();

    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/task.wit")).unwrap();
    let world = resolve.select_world(&[package], Some("task")).unwrap();
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    wit_component::ComponentEncoder::default().module(&module).unwrap().validate(true).encode().unwrap()
}

#[tokio::test]
async fn an_upload_that_never_finishes_validating_is_refused_in_time_and_the_host_serves_on() {
    let host = Host::start_with_config("[limits]\nupload_validation_timeout_secs = 2\n", &[]).await;
    host.upload("hello", "hello").await;

    // Bounded only so that a host without the limit fails the test instead of hanging it.
    let response = tokio::time::timeout(Duration::from_mins(2), host.upload_bytes("spinner", never_instantiates()))
        .await
        .expect("the upload is answered");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 422, "the uploader is told, not the host blamed: {body}");
    assert_eq!(body["error"]["code"], "validation_timeout", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("limits.upload_validation_timeout_secs"), "the message names the limit: {message}");

    assert_eq!(host.client.get(host.url("/v1/plugins/spinner")).send().await.unwrap().status(), 404);
    assert_eq!(host.run("hello", &json!(1)).await, (200, json!({"hello": 1})), "the host serves on");
    assert_eq!(host.get_json("/healthz").await["status"], "ok");
}
