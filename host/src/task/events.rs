//! The events of one task (log lines, progress, custom events, state changes), kept in a
//! bounded history for late subscribers and broadcast live to current ones.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use super::{TaskState, epoch_ms};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    Log {
        level: Level,
        message: String,
    },
    Progress {
        done: u64,
        total: Option<u64>,
        message: Option<String>,
    },
    Custom {
        name: String,
        /// Kept as the guest's text, not parsed: a tree of small values takes many times the
        /// memory of its text.
        data: Box<serde_json::value::RawValue>,
    },
    State {
        state: TaskState,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl EventKind {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Log { .. } => "log",
            Self::Progress { .. } => "progress",
            Self::Custom { .. } => "custom",
            Self::State { .. } => "state",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, Self::State { state, .. } if state.is_final())
    }

    /// About how many bytes of heap the event holds: what the finished tasks' memory budget
    /// counts.
    pub fn approx_bytes(&self) -> usize {
        EVENT_OVERHEAD
            + match self {
                Self::Log { message, .. } => message.len(),
                Self::Progress { message, .. } => message.as_ref().map_or(0, String::len),
                Self::Custom { name, data } => name.len() + data.get().len(),
                Self::State { error, .. } => error.as_ref().map_or(0, String::len),
            }
    }
}

/// What one kept event costs beyond its text: the event, its `Arc` and its history slot.
const EVENT_OVERHEAD: usize = 96;

#[derive(Debug, Serialize)]
pub struct Event {
    /// Position in this task's stream, from 1; gaps mean dropped events.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Longest text one event keeps (log message, progress message, custom event data); a guest
/// cannot make the host keep more than `events_per_task` times this per task.
pub const MAX_EVENT_TEXT: usize = 16 * 1024;

/// `text`, cut to [`MAX_EVENT_TEXT`] bytes with a note saying how long it was.
pub fn clip(mut text: String) -> String {
    if text.len() <= MAX_EVENT_TEXT {
        return text;
    }
    let original = text.len();
    let cut = (0..=MAX_EVENT_TEXT).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    text.truncate(cut);
    let _ = write!(text, "… [truncated from {original} bytes]");
    text
}

/// Live events buffered per subscriber before it is told it lagged.
const LIVE_CAPACITY: usize = 256;

pub struct EventLog {
    inner: Mutex<History>,
}

/// The first event (the task was queued) stays; after it, the most recent ones.
struct History {
    first: Option<Arc<Event>>,
    recent: VecDeque<Arc<Event>>,
    recent_capacity: usize,
    next_seq: u64,
    /// What the kept events hold, about (see [`EventKind::approx_bytes`]).
    bytes: usize,
    /// Made at the first subscription: most tasks are never watched live.
    live: Option<broadcast::Sender<Arc<Event>>>,
}

/// What a subscriber gets: the kept events after the one it has seen, then live ones.
pub struct Subscription {
    pub history: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The subscriber has seen the task's final state already: nothing more will come.
    pub seen_the_end: bool,
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        Self {
            inner: Mutex::new(History {
                first: None,
                recent: VecDeque::new(),
                recent_capacity: capacity - 1,
                next_seq: 1,
                bytes: 0,
                live: None,
            }),
        }
    }

    pub fn push(&self, kind: EventKind) {
        let mut history = self.inner.lock();
        let at_ms = epoch_ms(SystemTime::now());
        let event = Arc::new(Event { seq: history.next_seq, at_ms, kind });
        history.next_seq += 1;
        history.bytes += event.kind.approx_bytes();
        if history.first.is_none() {
            history.first = Some(event.clone());
        } else {
            if history.recent.len() == history.recent_capacity
                && let Some(dropped) = history.recent.pop_front()
            {
                history.bytes -= dropped.kind.approx_bytes();
            }
            history.recent.push_back(event.clone());
        }
        if let Some(live) = &history.live {
            // No receivers left is fine: nobody is watching any more.
            let _ = live.send(event);
        }
    }

    /// What the kept events hold, about.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Forgets the kept events but the first and the last (a finished task's final state),
    /// handing them back for the caller to drop; a late subscriber sees the gap in `seq`.
    #[must_use = "drop the events after releasing any lock held"]
    pub fn keep_ends_only(&self) -> Vec<Arc<Event>> {
        let mut history = self.inner.lock();
        let last = history.recent.pop_back();
        let dropped: Vec<Arc<Event>> = history.recent.drain(..).collect();
        history.recent.extend(last);
        history.bytes -= dropped.iter().map(|e| e.kind.approx_bytes()).sum::<usize>();
        dropped
    }

    /// Subscribes under the history lock so no event is missed or seen twice.
    pub fn subscribe(&self, after_seq: u64) -> Subscription {
        let mut history = self.inner.lock();
        let live = history.live.get_or_insert_with(|| broadcast::Sender::new(LIVE_CAPACITY)).subscribe();
        let last = history.recent.back().or(history.first.as_ref());
        Subscription {
            history: history.first.iter().chain(&history.recent).filter(|e| e.seq > after_seq).cloned().collect(),
            live,
            seen_the_end: last.is_some_and(|e| e.kind.is_final() && e.seq <= after_seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u32) -> EventKind {
        EventKind::Log { level: Level::Info, message: n.to_string() }
    }

    #[test]
    fn history_is_bounded_and_keeps_order() {
        let events = EventLog::new(3);
        for n in 0..10 {
            events.push(log(n));
        }
        let seqs: Vec<u64> = events.subscribe(0).history.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 9, 10]);
        assert_eq!(events.subscribe(9).history.len(), 1);
    }

    #[test]
    fn only_the_ends_are_kept_when_asked_and_the_bytes_follow() {
        let events = EventLog::new(10);
        for n in 0..5 {
            events.push(log(n));
        }
        events.push(EventKind::State { state: TaskState::Succeeded, error: None });
        let before = events.bytes();
        assert_eq!(events.keep_ends_only().len(), 4);
        let seqs: Vec<u64> = events.subscribe(0).history.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 6]);
        assert_eq!(events.bytes(), 2 * EVENT_OVERHEAD + 1);
        assert!(before > events.bytes());
    }

    #[test]
    fn long_texts_are_clipped_on_a_char_boundary() {
        assert_eq!(clip("short".into()), "short");
        let long = "é".repeat(MAX_EVENT_TEXT);
        let clipped = clip(long);
        assert!(clipped.len() < MAX_EVENT_TEXT + 64);
        assert!(clipped.ends_with(&format!("[truncated from {} bytes]", 2 * MAX_EVENT_TEXT)));
    }

    #[test]
    fn a_subscriber_that_saw_the_final_state_is_told_nothing_more_comes() {
        let events = EventLog::new(10);
        events.push(log(1));
        assert!(!events.subscribe(1).seen_the_end);
        events.push(EventKind::State { state: TaskState::Succeeded, error: None });
        assert!(!events.subscribe(1).seen_the_end, "the final state is still to be read");
        assert!(events.subscribe(2).seen_the_end);
    }

    #[tokio::test]
    async fn live_events_follow_history_without_gaps() {
        let events = EventLog::new(10);
        events.push(log(1));
        let mut sub = events.subscribe(0);
        events.push(log(2));
        assert_eq!(sub.history.len(), 1);
        assert_eq!(sub.live.recv().await.unwrap().seq, 2);
    }
}
