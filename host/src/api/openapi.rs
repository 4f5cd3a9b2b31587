//! The API's `OpenAPI` 3 document, generated from the handlers' annotations and the types they
//! exchange, and served at `/v1/openapi.json`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{AppState, batch, events, http_plugins, plugins, schedules, tasks, tokens};
use crate::config::Limits;

/// The bearer scheme, required by every operation that does not opt out.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ignareo", description = "A WebAssembly task host: upload task plugins, trigger them over HTTP, run thousands at once."),
    paths(
        super::health,
        openapi_json,
        super::show_config,
        plugins::list,
        plugins::show,
        plugins::upload,
        plugins::delete,
        plugins::rollback,
        tasks::run,
        tasks::submit,
        batch::submit_batch,
        http_plugins::serve,
        tasks::list,
        tasks::show,
        tasks::cancel,
        events::events,
        schedules::put,
        schedules::list,
        schedules::show,
        schedules::delete,
        schedules::pause,
        schedules::resume,
        tokens::create,
        tokens::list,
        tokens::revoke,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "plugins", description = "Upload, list, swap and roll back plugins"),
        (name = "tasks", description = "Run tasks, follow them, cancel them"),
        (name = "schedules", description = "Tasks that start on their own, by cron expression or interval"),
        (name = "tokens", description = "Scoped access tokens"),
        (name = "host", description = "Health, configuration, this document"),
    )
)]
struct ApiDoc;

/// The document of this host: the annotations, this host's limits on the query parameters
/// they bound and on a batch's size, and what annotations cannot say (bodies read by hand, the event stream, links,
/// the token request's rule that `plugins` goes with `trigger`).
pub fn document(limits: &Limits) -> Bytes {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    bound_parameters(&mut doc, limits);
    doc["components"]["schemas"]["Batch"]["properties"]["inputs"]["maxItems"] = json!(limits.max_batch_tasks);
    add_hand_written_schemas(&mut doc["components"]["schemas"]);
    add_links(&mut doc["paths"]);
    constrain_token_request(&mut doc["components"]["schemas"]["NewToken"]);
    doc["components"]["schemas"]["ScheduleRequest"]["oneOf"] =
        json!([{ "required": ["cron"] }, { "required": ["interval_secs"] }]);
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

fn bound_parameters(doc: &mut Value, limits: &Limits) {
    for parameter in parameters(doc) {
        // An optional parameter is absent, never null: parameters carry no JSON null.
        if let Some(types) = parameter["schema"]["type"].as_array() {
            let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            parameter["schema"]["type"] = if types.len() == 1 { types[0].clone() } else { Value::Array(types) };
        }
        for (name, maximum) in [
            ("timeout", limits.task_timeout_secs),
            ("wait", limits.max_wait_secs),
            ("limit", limits.max_list_page.into()),
        ] {
            if parameter["name"] == name && parameter["in"] == "query" {
                parameter["schema"]["maximum"] = json!(maximum);
            }
        }
    }
}

/// Every parameter of every operation.
fn parameters(doc: &mut Value) -> impl Iterator<Item = &mut Value> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("parameters").and_then(Value::as_array_mut))
        .flatten()
}

/// The upload's bodies (bytes read by hand, not a type) and one Server-Sent Event.
fn add_hand_written_schemas(schemas: &mut Value) {
    let binary = |description: &str| json!({ "description": description, "type": "string", "format": "binary" });
    schemas["ComponentBytes"] = binary("A WebAssembly component (.wasm)");
    schemas["UploadForm"] = json!({
        "type": "object",
        "required": ["component"],
        "properties": {
            "component": binary("The component (.wasm)"),
            "manifest": { "type": "string", "description": "The manifest (ignareo.toml)" },
        },
    });
    schemas["TaskEvent"] = json!({
        "description": "One Server-Sent Event: `data` is the event as JSON (seq, at_ms, type and its fields)",
        "type": "object",
        "required": ["data"],
        "properties": {
            "id": { "type": "string", "pattern": "^[0-9]+$" },
            "event": { "type": "string", "enum": ["state", "log", "progress", "custom", "lagged"] },
            "data": { "type": "string" },
        },
    });
}

/// Links from a created resource to the operations on it, for clients and fuzzers to follow.
fn add_links(paths: &mut Value) {
    let task_link = |operation: &str| json!({ "operationId": operation, "parameters": { "id": "$response.body#/id" } });
    paths["/v1/plugins/{name}/tasks"]["post"]["responses"]["202"]["links"] = json!({
        "ShowTask": task_link("show_task"),
        "TaskEvents": task_link("task_events"),
        "CancelTask": task_link("cancel_task"),
    });
    let plugin_link =
        |operation: &str| json!({ "operationId": operation, "parameters": { "name": "$request.path.name" } });
    for status in ["200", "201"] {
        paths["/v1/plugins/{name}"]["put"]["responses"][status]["links"] = json!({
            "ShowPlugin": plugin_link("show_plugin"),
            "RollBackPlugin": plugin_link("roll_back_plugin"),
            "RunTask": plugin_link("run_task"),
            "SubmitTask": plugin_link("submit_task"),
        });
    }
    let schedule_link =
        |operation: &str| json!({ "operationId": operation, "parameters": { "name": "$request.path.name" } });
    for status in ["200", "201"] {
        paths["/v1/schedules/{name}"]["put"]["responses"][status]["links"] = json!({
            "ShowSchedule": schedule_link("show_schedule"),
            "PauseSchedule": schedule_link("pause_schedule"),
            "ResumeSchedule": schedule_link("resume_schedule"),
            "DeleteSchedule": schedule_link("delete_schedule"),
        });
    }
}

/// What the token store checks beyond the types: printable names, plugin names or `*`, and
/// `plugins` with `trigger` only.
fn constrain_token_request(new_token: &mut Value) {
    new_token["properties"]["name"]["pattern"] = json!(TOKEN_NAME_PATTERN);
    new_token["properties"]["plugins"]["items"]["pattern"] = json!(TOKEN_PLUGIN_PATTERN);
    new_token["if"] =
        json!({ "required": ["scopes"], "properties": { "scopes": { "contains": { "const": "trigger" } } } });
    new_token["then"] = json!({ "required": ["plugins"], "properties": { "plugins": { "minItems": 1 } } });
    new_token["else"] = json!({ "properties": { "plugins": { "maxItems": 0 } } });
}

/// Printable, not only spaces (the host trims the name and refuses control characters).
const TOKEN_NAME_PATTERN: &str =
    r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";
const TOKEN_PLUGIN_PATTERN: &str = r"^(\*|[a-z0-9][a-z0-9_-]{0,63})$";

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "host", security(()), operation_id = "openapi_document", responses(
    (status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json", body = serde_json::Value),
))]
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.clone())
}
