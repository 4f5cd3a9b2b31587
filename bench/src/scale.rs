//! How big a run is: full size for RESULTS.md, or a smoke run (seconds per scenario) that the
//! test command runs so that no scenario rots; a smoke run fails on any failure a scenario
//! counts, judges no speed, and writes nothing unless asked (`smoke --write`).

use std::sync::atomic::{AtomicBool, Ordering};

static SMOKE: AtomicBool = AtomicBool::new(false);

/// Every later count, duration and repetition is the smoke run's.
pub fn set_smoke() {
    SMOKE.store(true, Ordering::Relaxed);
}

fn smoke() -> bool {
    SMOKE.load(Ordering::Relaxed)
}

/// `full` items, or a tenth of them (at least one) in a smoke run.
pub fn count(full: usize) -> usize {
    if smoke() { (full / 10).max(1) } else { full }
}

/// Repetitions of a measurement: one in a smoke run.
pub fn repetitions(full: usize) -> usize {
    if smoke() { 1 } else { full }
}

/// The `-d` argument of each wrk load.
pub fn wrk_duration() -> &'static str {
    if smoke() { "-d1s" } else { "-d10s" }
}
