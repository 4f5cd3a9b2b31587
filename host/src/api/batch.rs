//! `POST /v1/plugins/{name}/tasks:batch`: many tasks of one plugin in one request, committed
//! together (all or none).
//!
//! The body is scanned, not parsed into a tree: its inputs are counted against
//! `limits.max_batch_tasks` and measured against `limits.max_input_mb` while the scan goes,
//! and the scan stops at the first one over, so a body of millions of tiny inputs costs no
//! more than its own bytes. Each input is passed to its task as it was sent.

use std::cell::Cell;
use std::fmt;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ErrorBody, Refusals};
use super::extract::{Body, PluginName, Query};
use super::tasks::{SubmitQuery, task_timeout};
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::task::TaskId;

/// Many tasks of one plugin, submitted together.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch<'a> {
    /// One task per input, each given to the plugin as JSON.
    #[schema(min_items = 1, value_type = Vec<serde_json::Value>)]
    #[serde(borrow)]
    inputs: &'a RawValue,
}

/// The tasks of a batch, all committed.
#[derive(Serialize, ToSchema)]
pub struct BatchAccepted {
    plugin: String,
    version: String,
    count: usize,
    /// The tasks' ids, in the order of the inputs.
    #[schema(value_type = Vec<String>)]
    ids: Vec<TaskId>,
}

/// Accept many tasks in one request, committed together (all or none).
#[utoipa::path(post, path = "/v1/plugins/{name}/tasks:batch", operation_id = "submit_batch", tag = "tasks", params(PluginName, SubmitQuery), request_body = Batch,
    responses(
        (status = 202, description = "Accepted: every task is recorded and waits for a running slot", body = BatchAccepted),
        (status = 400, description = "Not a batch, an empty one, or more inputs than limits.max_batch_tasks", body = ErrorBody),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 413, description = "An input over limits.max_input_mb, or a body over limits.max_batch_mb", body = ErrorBody),
        (status = 429, description = "No room in the queue for the whole batch (Retry-After)", body = ErrorBody),
        (status = 503, description = "Shutting down, or the tasks could not be recorded (Retry-After)", body = ErrorBody),
        Refusals,
    ))]
pub async fn submit_batch(
    caller: Caller,
    State(state): State<AppState>,
    PluginName(name): PluginName,
    Query(query): Query<SubmitQuery>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    caller.require_trigger(&name)?;
    let timeout = task_timeout(&state, &query)?;
    let inputs = scan(&state, &body)?;
    let tasks = state.scheduler.accept_many(&name, inputs, timeout, caller.token_id).await?;
    let version = tasks.first().map(|t| t.version.to_string()).unwrap_or_default();
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
    Ok((StatusCode::ACCEPTED, axum::Json(BatchAccepted { plugin: name, version, count: ids.len(), ids }))
        .into_response())
}

/// Each input as the bytes its task gets, within the batch's and the inputs' limits.
fn scan(state: &AppState, body: &[u8]) -> Result<Vec<bytes::Bytes>, ApiError> {
    let bad_json = |e: serde_json::Error| {
        ApiError::bad_request(
            "bad_json",
            format!("invalid batch ({e}); send {{\"inputs\": [{{\"url\": \"...\"}}, {{\"url\": \"...\"}}]}}"),
        )
    };
    let batch: Batch<'_> = serde_json::from_slice(body).map_err(bad_json)?;
    let limits = state.scheduler.limits();
    let refusal = Cell::new(None);
    let seed =
        Inputs { max_count: limits.max_batch_tasks as usize, max_input_mb: limits.max_input_mb, refusal: &refusal };
    let inputs = seed
        .deserialize(&mut serde_json::Deserializer::from_str(batch.inputs.get()))
        .map_err(|e| refusal.take().unwrap_or_else(|| bad_json(e)))?;
    if inputs.is_empty() {
        return Err(ApiError::bad_request("bad_batch", "inputs holds no input: send at least one"));
    }
    Ok(inputs.into_iter().map(|input| bytes::Bytes::copy_from_slice(input.get().as_bytes())).collect())
}

/// The scan of the `inputs` array: its elements as slices of the body, refused (the reason
/// left in `refusal`) at the first one past the count or over the size.
struct Inputs<'r> {
    max_count: usize,
    max_input_mb: u64,
    refusal: &'r Cell<Option<ApiError>>,
}

impl<'de> DeserializeSeed<'de> for Inputs<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Inputs<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of inputs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let max_input = usize::try_from(self.max_input_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let mut inputs = Vec::new();
        while let Some(input) = seq.next_element::<&'de RawValue>()? {
            if inputs.len() == self.max_count {
                self.refusal.set(Some(ApiError::bad_request(
                    "too_many_inputs",
                    format!("more than limits.max_batch_tasks ({}) inputs; split the batch", self.max_count),
                )));
                return Err(de::Error::custom("too many inputs"));
            }
            if input.get().len() > max_input {
                self.refusal.set(Some(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "input_too_large",
                    format!(
                        "inputs[{}] is {} bytes, over limits.max_input_mb ({} MiB)",
                        inputs.len(),
                        input.get().len(),
                        self.max_input_mb
                    ),
                )));
                return Err(de::Error::custom("an input too large"));
            }
            inputs.push(input);
        }
        Ok(inputs)
    }
}
