//! The speed limit: one byte budget shared by every link through the proxy, so `speed` is the
//! total rate toward all clients together. Each piece reserves its time on a shared schedule
//! (the next free instant advances by `len / rate`) and waits for it; nothing polls.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Default)]
pub struct Throttle {
    state: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    /// Bytes per second; no limit if none.
    rate: Option<u64>,
    next: Option<Instant>,
}

impl Throttle {
    pub fn set_rate(&self, rate: Option<u64>) {
        let mut state = self.state.lock();
        state.rate = rate;
        if rate.is_none() {
            state.next = None;
        }
    }

    pub fn rate(&self) -> Option<u64> {
        self.state.lock().rate
    }

    /// Waits until `len` more bytes fit in the total rate.
    pub async fn take(&self, len: usize) {
        let start = {
            let mut state = self.state.lock();
            let Some(rate) = state.rate else { return };
            let now = Instant::now();
            let start = state.next.map_or(now, |next| next.max(now));
            state.next = Some(start + Duration::from_secs_f64(len as f64 / rate as f64));
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pieces_share_one_rate() {
        let throttle = std::sync::Arc::new(Throttle::default());
        throttle.set_rate(Some(100_000));
        let started = Instant::now();
        let links = (0..4).map(|_| {
            let throttle = throttle.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    throttle.take(10_000).await;
                }
            })
        });
        futures::future::join_all(links).await;
        // 400,000 bytes at 100,000 B/s: the last piece starts after 3.9 s.
        assert_eq!(started.elapsed(), Duration::from_millis(3_900));
    }
}
