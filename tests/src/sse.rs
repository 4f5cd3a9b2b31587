//! A reader of a task's Server-Sent Events (`GET /v1/tasks/{id}/events`), event by event, so
//! that a test can stop part-way and resume with `Last-Event-ID` as a reconnecting client does.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

/// One event of the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    /// The `id:` field: what a client sends back as `Last-Event-ID`.
    pub id: Option<String>,
    /// The `event:` field.
    pub name: String,
    /// The `data:` field, parsed.
    pub data: Value,
}

/// An open event stream.
pub struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    /// Opens the stream of task `id` on the host at `base`, resuming after `last_event_id` if
    /// given. Panics unless the host answers 200 with `text/event-stream`.
    pub async fn open(client: &reqwest::Client, base: &str, id: &str, last_event_id: Option<&str>) -> EventStream {
        let mut request = client.get(format!("{base}/v1/tasks/{id}/events"));
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await.expect("the host answers");
        assert_eq!(response.status(), 200, "the events of task {id}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event, or `None` once the host has ended the stream. Comments (keep-alives)
    /// are skipped.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
            }
            let chunk = self.body.next().await?.expect("the stream reads");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every event up to the end of the stream, which must come within `limit`.
    pub async fn rest(mut self, limit: Duration) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let read = async {
            while let Some(event) = self.next().await {
                events.push(event);
            }
        };
        tokio::time::timeout(limit, read).await.expect("the stream ends after the final state");
        events
    }
}

/// An event from one block of `field: value` lines; `None` for a block without data.
fn parse(block: &str) -> Option<SseEvent> {
    let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::to_owned);
    let data = field("data: ")?;
    Some(SseEvent {
        id: field("id: "),
        name: field("event: ").unwrap_or_else(|| "message".to_owned()),
        data: serde_json::from_str(&data).expect("event data is JSON"),
    })
}
