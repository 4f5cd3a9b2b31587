//! A guest's stdout and stderr: each complete line becomes a log event of the task (stdout at
//! `info`, stderr at `warn`), so `println!` debugging and panic messages show up live. The
//! last stderr lines are also kept to explain a trap.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::task::Task;
use crate::task::events::Level;

/// Longest line kept whole; longer ones are split.
const MAX_LINE: usize = 4096;
/// How much of the end of stderr explains a failure.
const TAIL_BYTES: usize = 1024;

#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Lines>>);

struct Lines {
    task: Arc<Task>,
    level: Level,
    partial: Vec<u8>,
    tail: String,
}

impl GuestOutput {
    pub fn new(task: Arc<Task>, level: Level) -> Self {
        Self(Arc::new(Mutex::new(Lines { task, level, partial: Vec::new(), tail: String::new() })))
    }

    /// Emits any unterminated last line, then returns the end of what was written.
    pub fn finish(&self) -> String {
        let mut lines = self.0.lock();
        lines.flush_partial();
        lines.tail.clone()
    }
}

impl Lines {
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..end]);
            self.flush_partial();
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            self.flush_partial();
            self.partial = rest;
        }
    }

    fn flush_partial(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        self.tail.push_str(&line);
        self.tail.push('\n');
        if self.tail.len() > TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            let boundary = (cut..self.tail.len()).find(|&i| self.tail.is_char_boundary(i)).unwrap_or(self.tail.len());
            self.tail.drain(..boundary);
        }
        self.task.log(self.level, line);
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        self.0.lock().write(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.lock().flush_partial();
        Poll::Ready(Ok(()))
    }
}
