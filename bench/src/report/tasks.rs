//! The sections about hosts holding many things: tasks asleep at once, a restart with many
//! plugins, and outbound HTTP from one task.

use std::fmt::Write as _;

use super::{Report, median, median_range, number};
use crate::sleepers::SleepersResult;
use crate::targets;

impl Report {
    /// The runs of each count of sleepers, in count order.
    pub(super) fn sleepers_by_count(&self) -> Vec<(usize, Vec<&SleepersResult>)> {
        let mut counts: Vec<usize> = self.sleepers.iter().map(|s| s.count).collect();
        counts.dedup();
        counts.into_iter().map(|count| (count, self.sleepers.iter().filter(|s| s.count == count).collect())).collect()
    }

    pub(super) fn sleepers_markdown(&self) -> String {
        let (Some(first), Some(largest)) = (self.sleepers.first(), self.sleepers.iter().max_by_key(|s| s.count)) else {
            return String::new();
        };
        let runs = self.sleepers_by_count();
        let repetitions = runs.iter().map(|(_, runs)| runs.len()).min().unwrap_or(0);
        let mut out = format!("## Many tasks at once: tasks each sleeping {} s\n\n", first.sleep_ms as f64 / 1000.0);
        let _ = write!(
            out,
            "A fresh host per count and repetition ({repetitions} of each; medians, min–max in brackets), started with `--max-running-tasks N --max-queued-tasks N`; the tasks submitted with `POST /v1/plugins/sleep/tasks:batch` ({} inputs a request, {} requests at a time), each committed to the task store before its 202. One process (no workers). {}\n\n",
            number(crate::sleepers::BATCH as f64, 0),
            crate::sleepers::BATCHES_IN_FLIGHT,
            largest.map_count_note
        );
        // One cell per count: the median of `figure` over its runs, with their spread.
        let row = |name: &str, figure: &dyn Fn(&SleepersResult) -> Option<f64>, decimals: usize, unit: &str| {
            let cells: Vec<String> = runs
                .iter()
                .map(|(_, runs)| {
                    let values: Vec<f64> = runs.iter().filter_map(|s| figure(s)).collect();
                    if values.is_empty() {
                        return "not sampled".to_owned();
                    }
                    format!("{}{unit}", median_range(&values, decimals))
                })
                .collect();
            format!("| {name} | {} |\n", cells.join(" | "))
        };
        let _ = writeln!(
            out,
            "| tasks | {} |",
            runs.iter().map(|(c, _)| format!("**{}**", number(*c as f64, 0))).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---|".repeat(runs.len()));
        out += &row("RSS of the idle host (pool reserved)", &|s| Some(s.idle_rss_mib), 0, " MiB");
        out += &row("peak RSS", &|s| Some(s.peak_rss_mib), 0, " MiB");
        out += &row(
            "peak RSS per running task (above idle, over the most running at once)",
            &|s| Some(s.per_task_mib() * 1024.0),
            1,
            " KiB",
        );
        out += &row("peak page tables (beside RSS)", &|s| Some(s.peak_page_tables_mib), 0, " MiB");
        out += &row(
            "PSS once all had started (shared pages split, not counted per task)",
            &|s| s.pss_all_started_mib,
            0,
            " MiB",
        );
        out += &row(
            "PSS + peak page tables",
            &|s| s.pss_all_started_mib.map(|pss| pss + s.peak_page_tables_mib),
            0,
            " MiB",
        );
        out += &row("time to accept all", &|s| Some(s.accept_secs), 2, " s");
        out += &row("time until all had started", &|s| Some(s.all_started_secs), 2, " s");
        out += &row("most running at once (sampled every 50 ms)", &|s| Some(s.most_running as f64), 0, "");
        out += &row("time until all finished (from the first submission)", &|s| Some(s.finish_secs), 2, " s");
        let outcomes: Vec<String> = runs
            .iter()
            .map(|(_, runs)| {
                let succeeded: usize = runs.iter().map(|s| s.succeeded).sum();
                let submitted: usize = runs.iter().map(|s| s.count).sum();
                format!("{} / {}", number(succeeded as f64, 0), number((submitted - succeeded) as f64, 0))
            })
            .collect();
        let _ = write!(out, "| succeeded / not succeeded (all repetitions) | {} |\n\n", outcomes.join(" | "));
        if let Some((count, runs)) = runs.iter().find(|(count, _)| *count == targets::SLEEPERS_COUNT) {
            let peak = median(runs.iter().map(|s| s.peak_rss_mib).collect());
            let _ = write!(
                out,
                "Target: {} tasks in ≤ {} MiB peak RSS ({}).\n\n",
                number(*count as f64, 0),
                number(targets::SLEEPERS_PEAK_RSS_MIB, 0),
                targets::verdict(self.full, peak <= targets::SLEEPERS_PEAK_RSS_MIB)
            );
        }
        out
    }

    pub(super) fn restart_markdown(&self) -> String {
        let Some(r) = &self.restart else { return String::new() };
        let mut out = format!("## Restart with {} plugins\n\n", r.plugins);
        let _ = write!(
            out,
            "{} distinct components ({:.1} MiB in all, copies of {} of this repository's plugins) uploaded, the host stopped with SIGTERM, then started again on the same data directory; time from spawning the process to its listening line, every plugin live from its compiled artifact.\n\n",
            r.plugins,
            r.component_bytes as f64 / (1024.0 * 1024.0),
            crate::restart::SOURCES.len()
        );
        let ready = median(r.ready_secs.clone());
        out += "| figure | value |\n|---|---|\n";
        let _ = writeln!(out, "| ready after start, median (min–max) | **{} s** |", median_range(&r.ready_secs, 2));
        let compilations: Vec<String> = r.compilations.iter().map(u64::to_string).collect();
        let _ = write!(out, "| compilations at each start | {} |\n\n", compilations.join(", "));
        let _ = write!(
            out,
            "Target: ready in < {} s ({}); no compilation at a restart.\n\n",
            targets::RESTART_READY_S,
            targets::verdict(self.full, ready < targets::RESTART_READY_S)
        );
        out
    }

    /// (bare reqwest, policy layer) median µs per request, one at a time.
    pub(super) fn outbound_sequential(&self) -> Option<(f64, f64)> {
        let o = self.outbound.as_ref()?;
        let of = |what: &str| {
            let runs: Vec<f64> = o.sequential.iter().filter(|(w, _)| *w == what).map(|(_, v)| *v).collect();
            (!runs.is_empty()).then(|| median(runs))
        };
        Some((of("bare reqwest")?, of("policy layer")?))
    }

    /// Every parallel run's label with its request count and the median requests/s, in order.
    pub(super) fn outbound_parallel(&self) -> Vec<(&str, usize, Vec<f64>)> {
        let Some(o) = &self.outbound else { return Vec::new() };
        let mut rows: Vec<(&str, usize, Vec<f64>)> = Vec::new();
        for (label, count, rps) in &o.parallel {
            match rows.iter_mut().find(|(l, ..)| l == label) {
                Some(row) => row.2.push(*rps),
                None => rows.push((label, *count, vec![*rps])),
            }
        }
        rows
    }

    pub(super) fn outbound_markdown(&self) -> String {
        let Some(o) = &self.outbound else { return String::new() };
        let mut out = String::from("## Outbound HTTP: the policy layer and per-host caps\n\n");
        let _ = write!(
            out,
            "A page of {} bytes from an axum target in the benchmark process, answered at once. The policy layer is the host's outbound code (grant check, politeness gates, redirects followed by the host, streamed size limit) driven in-process without WebAssembly; the host rows are one `crawler` task running `fetch-all` in the release host, the caps in their labels as the host reported them (`GET /v1/config`).\n\n",
            number(o.page_bytes as f64, 0)
        );
        out += "| one request at a time | mean µs per request, median (min–max) |\n|---|---|\n";
        for what in ["bare reqwest", "policy layer"] {
            let runs: Vec<f64> = o.sequential.iter().filter(|(w, _)| *w == what).map(|(_, v)| *v).collect();
            let _ = writeln!(out, "| {what} | {} |", median_range(&runs, 1));
        }
        if let Some((bare, policy)) = self.outbound_sequential() {
            let _ = write!(
                out,
                "\nThe policy layer adds **{:.1} µs** per request ({:.2}×).\n\n",
                policy - bare,
                policy / bare
            );
        }
        let _ = writeln!(
            out,
            "| {} at a time | requests | requests/s, median (min–max) |\n|---|---|---|",
            crate::outbound::CONCURRENCY
        );
        for (label, count, runs) in self.outbound_parallel() {
            let _ = writeln!(out, "| {label} | {} | {} |", number(count as f64, 0), median_range(&runs, 0));
        }
        out + "\n"
    }
}
