//! The sections measured with wrk: trigger, durable submission, hot swap, the chaos proxy, and
//! healthy throughput beside hostile plugins.

use std::fmt::Write as _;

use super::{Report, median, median_range, number, percentile};
use crate::targets;
use crate::trigger::{self, TriggerResult};

const LOAD_HEADER: &str = "| {what} | requests/s median (min–max) | p50 latency (ms) | p99 latency (ms) | failed (non-2xx + socket errors) |\n|---|---|---|---|---|\n";

/// One table row for the runs of one load: medians with the spread of requests/s, and every
/// failed request of every run.
fn load_row(label: &str, runs: &[&TriggerResult]) -> String {
    let rps: Vec<f64> = runs.iter().map(|r| r.requests_per_sec).collect();
    format!(
        "| {label} | {} | {:.2} | {:.2} | {} |\n",
        median_range(&rps, 0),
        median(runs.iter().map(|r| r.p50_ms).collect()),
        median(runs.iter().map(|r| r.p99_ms).collect()),
        runs.iter().map(|r| r.errors + r.socket_errors).sum::<u64>()
    )
}

fn median_rps(runs: &[&TriggerResult]) -> f64 {
    median(runs.iter().map(|r| r.requests_per_sec).collect())
}

impl Report {
    /// (ignareo, plain axum) median requests/s.
    pub(super) fn trigger_medians(&self) -> Option<(f64, f64)> {
        let of = |server: &str| {
            let runs: Vec<&TriggerResult> = self.trigger.iter().filter(|r| r.server == server).collect();
            (!runs.is_empty()).then(|| median_rps(&runs))
        };
        Some((of("ignareo")?, of("plain axum")?))
    }

    pub(super) fn trigger_markdown(&self) -> String {
        if self.trigger.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "## Trigger throughput: `POST /v1/plugins/hello/run`, {} keep-alive connections\n\n",
            trigger::CONNECTIONS
        );
        let _ = write!(
            out,
            "`{}` with a small JSON body, against the host (a fresh instance per request) and against a plain axum handler that answers the same bytes, the two in turn in each repetition. Load generator and server share the machine's cores.\n\n",
            trigger::wrk_command()
        );
        out += &LOAD_HEADER.replace("{what}", "server");
        for server in ["ignareo", "plain axum"] {
            let runs: Vec<&TriggerResult> = self.trigger.iter().filter(|r| r.server == server).collect();
            out += &load_row(server, &runs);
        }
        if let Some((ignareo, plain)) = self.trigger_medians() {
            let _ = write!(
                out,
                "\nignareo / plain axum: **{:.2}×** (target ≥ {}×: {})\n\n",
                ignareo / plain,
                targets::TRIGGER_VS_PLAIN,
                targets::verdict(self.full, ignareo / plain >= targets::TRIGGER_VS_PLAIN)
            );
        }
        out
    }

    /// Median requests/s of each durable-submission variant, in the scenario's order.
    pub(super) fn accept_medians(&self) -> Vec<(&'static str, f64)> {
        crate::accept::labels()
            .filter_map(|label| {
                let runs: Vec<&TriggerResult> = self.accept.iter().filter(|r| r.server == label).collect();
                (!runs.is_empty()).then(|| (label, median_rps(&runs)))
            })
            .collect()
    }

    pub(super) fn accept_markdown(&self) -> String {
        if self.accept.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "## Durable submission: `POST /v1/plugins/hello/tasks`, {} keep-alive connections\n\n",
            trigger::CONNECTIONS
        );
        let _ = write!(
            out,
            "`{}`: each 202 is sent once the task is committed to the task store (SQLite, WAL; one writer commits whatever has queued up in one transaction), after which the task runs; `run` answers with the output and records nothing. A fresh host per row.\n\n",
            trigger::wrk_command()
        );
        out += &LOAD_HEADER.replace("{what}", "route");
        for label in crate::accept::labels() {
            let runs: Vec<&TriggerResult> = self.accept.iter().filter(|r| r.server == label).collect();
            out += &load_row(label, &runs);
        }
        out + "\n"
    }

    pub(super) fn hotswap_markdown(&self) -> String {
        let Some(h) = &self.hotswap else { return String::new() };
        let mut out = String::from("## Hot swap under load: a new version of `hello` every second\n\n");
        let _ = write!(
            out,
            "`{}` on `POST /v1/plugins/hello/run`, once steady and once while uploads (`PUT /v1/plugins/hello`, one a second, {} in each repetition) make a new version live; each upload is a new version (two components alternating, each time with another manifest; their compiled artifacts are reused).\n\n",
            trigger::wrk_command(),
            crate::scale::count(crate::hotswap::UPLOADS)
        );
        out += &LOAD_HEADER.replace("{what}", "load");
        out += &load_row("steady", &h.steady.iter().collect::<Vec<_>>());
        out += &load_row("new version every second", &h.swapping.iter().collect::<Vec<_>>());
        let failed: u64 = h.swapping.iter().map(|r| r.errors + r.socket_errors).sum();
        let mut uploads = h.upload_ms.clone();
        uploads.sort_by(f64::total_cmp);
        let _ = write!(
            out,
            "\nFailed requests while swapping: {failed} (target 0: {}). Uploads: {} ({} failed), answered in {} ms median, {} ms at most.\n\n",
            // A failed request is judged in every run, the smoke run's included.
            targets::verdict(true, failed == 0),
            uploads.len(),
            h.failed_uploads,
            number(percentile(&uploads, 0.5), 0),
            number(uploads.last().copied().unwrap_or(f64::NAN), 0)
        );
        out
    }

    /// (direct, through the proxy) median requests/s.
    pub(super) fn chaos_medians(&self) -> Option<(f64, f64)> {
        let c = self.chaos.as_ref()?;
        if c.direct.is_empty() || c.through.is_empty() {
            return None;
        }
        Some((median_rps(&c.direct.iter().collect::<Vec<_>>()), median_rps(&c.through.iter().collect::<Vec<_>>())))
    }

    /// Each `--speed` with the median measured rate's error (fraction).
    pub(super) fn chaos_speed_errors(&self) -> Vec<(u64, f64)> {
        let Some(c) = &self.chaos else { return Vec::new() };
        let mut speeds: Vec<u64> = c.speed.iter().map(|(s, _)| *s).collect();
        speeds.dedup();
        speeds
            .into_iter()
            .map(|speed| {
                let runs: Vec<f64> = c.speed.iter().filter(|(s, _)| *s == speed).map(|(_, m)| *m).collect();
                (speed, median(runs) / speed as f64 - 1.0)
            })
            .collect()
    }

    pub(super) fn chaos_markdown(&self) -> String {
        let Some(c) = &self.chaos else { return String::new() };
        let mut out = String::from("## chaos-proxy: its own overhead and the accuracy of `--speed`\n\n");
        let _ = write!(
            out,
            "`{}` POSTing to the plain axum server directly and through `ignareo chaos-proxy --upstream ... --latency 0` (no speed limit, no faults), the two in turn in each repetition. Client, proxy and server share the machine's cores.\n\n",
            trigger::wrk_command()
        );
        out += &LOAD_HEADER.replace("{what}", "path");
        out += &load_row("direct", &c.direct.iter().collect::<Vec<_>>());
        out += &load_row("through chaos-proxy", &c.through.iter().collect::<Vec<_>>());
        if let Some((direct, through)) = self.chaos_medians() {
            let _ = write!(out, "\nthrough the proxy / direct: **{:.2}×**\n\n", through / direct);
        }
        let _ = write!(
            out,
            "{} parallel downloads of {} bytes through the proxy at `--speed` (one budget shared by all links):\n\n",
            crate::chaos::DOWNLOADS,
            number(crate::chaos::DOWNLOAD_BYTES as f64, 0)
        );
        out += "| --speed (B/s) | measured B/s, median (min–max) | error of the median |\n|---|---|---|\n";
        for (speed, error) in self.chaos_speed_errors() {
            let runs: Vec<f64> = c.speed.iter().filter(|(s, _)| *s == speed).map(|(_, m)| *m).collect();
            let _ =
                writeln!(out, "| {} | {} | {:+.1}% |", number(speed as f64, 0), median_range(&runs, 0), error * 100.0);
        }
        out + "\n"
    }

    /// (alone, beside the hostile set) median requests/s.
    pub(super) fn hostile_medians(&self) -> Option<(f64, f64)> {
        let h = self.hostile.as_ref()?;
        if h.alone.is_empty() || h.beside_hostile.is_empty() {
            return None;
        }
        Some((
            median_rps(&h.alone.iter().collect::<Vec<_>>()),
            median_rps(&h.beside_hostile.iter().collect::<Vec<_>>()),
        ))
    }

    pub(super) fn hostile_markdown(&self) -> String {
        let Some(h) = &self.hostile else { return String::new() };
        let mut out = String::from("## Healthy throughput beside hostile plugins\n\n");
        let _ = write!(
            out,
            "`{}` on `POST /v1/plugins/hello/run`, alone, then while {} lanes keep running the `hostile` plugin's kinds one after another (busy loops calling the host, memory bombs, stack overflows, {} MiB outputs, log floods, spawn bombs, sleepers, session hoarders; a {} s deadline each), the two in turn in each repetition.\n\n",
            trigger::wrk_command(),
            crate::hostile::IN_FLIGHT,
            crate::hostile::HUGE_OUTPUT_MIB,
            crate::hostile::DEADLINE_S
        );
        out += &LOAD_HEADER.replace("{what}", "hello");
        out += &load_row("alone", &h.alone.iter().collect::<Vec<_>>());
        out += &load_row("beside the hostile set", &h.beside_hostile.iter().collect::<Vec<_>>());
        if let Some((alone, beside)) = self.hostile_medians() {
            let _ = write!(
                out,
                "\nbeside the hostile set / alone: **{:.2}×** (a drop of {:.0}%; target ≥ {}×: {})\n\n",
                beside / alone,
                (1.0 - beside / alone) * 100.0,
                targets::HOSTILE_VS_ALONE,
                targets::verdict(self.full, beside / alone >= targets::HOSTILE_VS_ALONE)
            );
            let _ = writeln!(
                out,
                "Which kind costs what: one run each, all {} lanes running only that kind.\n\n| beside | hello requests/s | / alone | p99 latency (ms) | failed (non-2xx + socket errors) |\n|---|---|---|---|---|",
                crate::hostile::IN_FLIGHT
            );
            for (kind, run) in &h.per_kind {
                let _ = writeln!(
                    out,
                    "| {kind} | {} | {:.2}× | {:.2} | {} |",
                    number(run.requests_per_sec, 0),
                    run.requests_per_sec / alone,
                    run.p99_ms,
                    run.errors + run.socket_errors
                );
            }
        }
        let statuses: Vec<String> =
            h.hostile_statuses.iter().map(|(status, n)| format!("{status}: {}", number(*n as f64, 0))).collect();
        let _ = write!(
            out,
            "\nHostile tasks over the whole section: {}, answered {} (by HTTP status; their errors are by design), {} unanswered.\n\n",
            number(h.hostile_tasks as f64, 0),
            if statuses.is_empty() { "never".to_owned() } else { statuses.join(", ") },
            h.hostile_unanswered
        );
        out
    }
}
