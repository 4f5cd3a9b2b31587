//! The README's headline figures, written by `bench/run` between two marker lines from the same
//! report as RESULTS.md, so that the README cannot state a figure the last run did not produce.

use std::fmt::Write as _;

use std::path::Path;

use anyhow::{Context, bail};

use super::{Report, median, number};
use crate::{crawl, targets};

pub const START: &str = "<!-- headline start: written by bench/run from the run that wrote bench/RESULTS.md; edit bench/src/report/headline.rs, not this -->";
pub const END: &str = "<!-- headline end -->";

impl Report {
    /// The README's headline block (without its markers).
    pub fn headline(&self) -> String {
        if !self.full {
            return format!(
                "No full run of this version of the benchmark yet: `bench/run` on an idle machine writes the headline figures here, from the run that writes [`bench/RESULTS.md`](bench/RESULTS.md) (which holds a smoke run's layout until then, not figures), each with its target and whether the run met it. The targets: {}.\n",
                targets::summary()
            );
        }
        let mut out = format!(
            "From the run started {} on {} (`{}`), medians of its repetitions ([`bench/RESULTS.md`](bench/RESULTS.md) has their min–max and every other figure); each target is the one the benchmark was given, with whether this run met it:\n\n",
            self.started,
            Self::machine(),
            self.command
        );
        let mut items =
            vec![self.invoke_headline(), self.trigger_headline(), self.accept_headline(), self.restart_headline()];
        items.extend(self.crawl_headline().into_iter().map(Some));
        items.extend([
            self.hotswap_headline(),
            self.sleepers_headline(),
            self.outbound_headline(),
            self.chaos_headline(),
            self.hostile_headline(),
            self.guests_headline(),
        ]);
        for item in items.into_iter().flatten() {
            let _ = writeln!(out, "- {item}");
        }
        out
    }

    fn invoke_headline(&self) -> Option<String> {
        let (p50, p99) = self.invoke_medians()?;
        Some(format!(
            "instantiate + run of `hello`, a fresh store each time: p50 {p50:.1} µs, p99 {p99:.1} µs (targets: p50 ≤ {} µs, {}; p99 ≤ {} µs, {});",
            targets::INVOKE_P50_US,
            targets::verdict(self.full, p50 <= targets::INVOKE_P50_US),
            targets::INVOKE_P99_US,
            targets::verdict(self.full, p99 <= targets::INVOKE_P99_US)
        ))
    }

    fn trigger_headline(&self) -> Option<String> {
        let (ignareo, plain) = self.trigger_medians()?;
        Some(format!(
            "`POST /v1/plugins/hello/run` at {} connections: {} requests/s, **{:.2}×** a plain axum handler answering the same bytes ({} requests/s; target ≥ {}×: {});",
            crate::trigger::CONNECTIONS,
            number(ignareo, 0),
            ignareo / plain,
            number(plain, 0),
            targets::TRIGGER_VS_PLAIN,
            targets::verdict(self.full, ignareo / plain >= targets::TRIGGER_VS_PLAIN)
        ))
    }

    fn accept_headline(&self) -> Option<String> {
        let medians = self.accept_medians();
        if medians.is_empty() {
            return None;
        }
        let each: Vec<String> =
            medians.iter().map(|(label, rps)| format!("{label}: {} requests/s", number(*rps, 0))).collect();
        Some(format!(
            "`POST /v1/plugins/hello/tasks`, answered 202 once the task is committed to the store, next to `run`, which records nothing: {};",
            each.join("; ")
        ))
    }

    fn restart_headline(&self) -> Option<String> {
        let r = self.restart.as_ref()?;
        let ready = median(r.ready_secs.clone());
        Some(format!(
            "restart with {} plugins: listening {ready:.2} s after the process starts, {} compilations (target < {} s: {});",
            r.plugins,
            r.compilations.iter().sum::<u64>(),
            targets::RESTART_READY_S,
            targets::verdict(self.full, ready < targets::RESTART_READY_S)
        ))
    }

    /// One item per concurrency; the first says how the crawl is measured.
    fn crawl_headline(&self) -> Vec<String> {
        let mut items = Vec::new();
        for concurrency in crawl::CONCURRENCIES {
            let (Some(r), Some(ours), Some(raw)) = (
                self.crawl_ratios(crawl::FETCH_ALL, concurrency),
                self.crawl_medians(crawl::FETCH_ALL, concurrency),
                self.crawl_medians(crawl::RAW, concurrency),
            ) else {
                continue;
            };
            let mut item = format!(
                "fan-out crawl of {} pages ({} ms each) at concurrency {}",
                number(crate::scale::count(crawl::PAGES) as f64, 0),
                crawl::DELAY.as_millis(),
                number(concurrency as f64, 0)
            );
            if items.is_empty() {
                item += ", every client a process started for the run, its CPU counted from its spawn (start-up, and for ignareo the plugin's upload and compilation, included)";
            }
            let _ = write!(
                item,
                ": one `crawler` task's `fetch-all` does **{:.2}×** raw tokio + reqwest's fetches/s, **{:.2}×** its CPU per fetch, **{:.1}×** gevent + requests, **{:.1}×** asyncio + aiohttp, with {} MiB peak RSS against raw reqwest's {} MiB",
                r.vs_raw,
                r.cpu_vs_raw,
                r.vs_gevent,
                r.vs_aiohttp,
                number(ours.peak_rss_mib, 0),
                number(raw.peak_rss_mib, 0)
            );
            if concurrency == targets::CRAWL_CONCURRENCY {
                let _ = write!(item, " (targets: {})", self.crawl_verdict_line(&r));
            }
            if let Some(tasks) = self.crawl_ratios(crawl::TASK_PER_CONNECTION, concurrency) {
                let _ = write!(
                    item,
                    "; one task per connection: {:.2}× raw reqwest's fetches/s at {:.2}× its CPU per fetch",
                    tasks.vs_raw, tasks.cpu_vs_raw
                );
            }
            items.push(item + ";");
        }
        items
    }

    fn hotswap_headline(&self) -> Option<String> {
        let h = self.hotswap.as_ref()?;
        let failed: u64 = h.swapping.iter().map(|r| r.errors + r.socket_errors).sum();
        Some(format!(
            "a new version of `hello` every second under the trigger load: {failed} failed requests (target 0: {}), p99 {:.2} ms ({:.2} ms steady), {} of {} uploads failed;",
            targets::verdict(true, failed == 0),
            median(h.swapping.iter().map(|r| r.p99_ms).collect()),
            median(h.steady.iter().map(|r| r.p99_ms).collect()),
            h.failed_uploads,
            h.upload_ms.len()
        ))
    }

    fn sleepers_headline(&self) -> Option<String> {
        let by_count = self.sleepers_by_count();
        let first = by_count.first()?.1.first()?;
        let mut each = Vec::new();
        let mut verdict = String::new();
        for (count, runs) in &by_count {
            let peak = median(runs.iter().map(|s| s.peak_rss_mib).collect());
            let per_task = median(
                runs.iter()
                    .map(|s| (s.peak_rss_mib - s.idle_rss_mib) * 1024.0 / s.most_running.max(1) as f64)
                    .collect(),
            );
            each.push(format!(
                "{}: {} MiB peak RSS ({per_task:.1} KiB per running task), all started {:.2} s after the first submission, at most {} running together",
                number(*count as f64, 0),
                number(peak, 0),
                median(runs.iter().map(|s| s.all_started_secs).collect()),
                number(median(runs.iter().map(|s| s.most_running as f64).collect()), 0)
            ));
            if *count == targets::SLEEPERS_COUNT {
                verdict = format!(
                    " (target: {} in ≤ {} MiB, {})",
                    number(*count as f64, 0),
                    number(targets::SLEEPERS_PEAK_RSS_MIB, 0),
                    targets::verdict(self.full, peak <= targets::SLEEPERS_PEAK_RSS_MIB)
                );
            }
        }
        Some(format!(
            "tasks each sleeping {} s, all submitted at once to one host: {}{verdict};",
            first.sleep_ms as f64 / 1000.0,
            each.join("; ")
        ))
    }

    fn outbound_headline(&self) -> Option<String> {
        let (bare, policy) = self.outbound_sequential()?;
        let parallel: Vec<String> = self
            .outbound_parallel()
            .into_iter()
            .map(|(label, count, runs)| {
                format!("{label}: {} requests/s over {}", number(median(runs), 0), number(count as f64, 0))
            })
            .collect();
        Some(format!(
            "outbound HTTP to a local page, one request at a time: the host's policy layer (grants, politeness gates, redirects, size limit) {:+.1} µs per request next to a bare reqwest call ({:.2}×); {} at a time: {};",
            policy - bare,
            policy / bare,
            crate::outbound::CONCURRENCY,
            parallel.join(", ")
        ))
    }

    fn chaos_headline(&self) -> Option<String> {
        let (direct, through) = self.chaos_medians()?;
        let errors: Vec<String> = self
            .chaos_speed_errors()
            .into_iter()
            .map(|(speed, error)| format!("{:+.1}% at {} B/s", error * 100.0, number(speed as f64, 0)))
            .collect();
        Some(format!(
            "chaos-proxy with no faults: {:.2}× the requests/s of going direct; its `--speed` over {} parallel downloads: {};",
            through / direct,
            crate::chaos::DOWNLOADS,
            errors.join(", ")
        ))
    }

    fn hostile_headline(&self) -> Option<String> {
        let (alone, beside) = self.hostile_medians()?;
        Some(format!(
            "healthy `hello` beside the hostile set (busy loops, memory and spawn bombs, stack overflows, huge outputs, log floods, sleepers, session hoarders; {} at a time): **{:.2}×** its throughput alone (target ≥ {}×, a drop under 20%: {});",
            crate::hostile::IN_FLIGHT,
            beside / alone,
            targets::HOSTILE_VS_ALONE,
            targets::verdict(self.full, beside / alone >= targets::HOSTILE_VS_ALONE)
        ))
    }
}

/// Replaces what lies between the README's two marker lines with `block`.
pub fn rewrite_readme(path: &Path, block: &str) -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        bail!("{} has no headline markers: put these two lines where the figures go:\n{START}\n{END}", path.display());
    };
    if end < start || readme.matches(START).count() != 1 || readme.matches(END).count() != 1 {
        bail!("{} must hold each headline marker once, the start before the end", path.display());
    }
    let rewritten = format!("{}{START}\n{block}{END}{}", &readme[..start], &readme[end + END.len()..]);
    std::fs::write(path, rewritten).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::{END, START, rewrite_readme};
    use crate::report::fixture::clean;

    /// Every number in `text`: digits with their thousands commas and decimal point.
    fn numbers(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut current = String::new();
        for c in text.chars().chain([' ']) {
            if c.is_ascii_digit() || (!current.is_empty() && (c == ',' || c == '.')) {
                current.push(c);
            } else if !current.is_empty() {
                found.push(current.trim_end_matches([',', '.']).to_owned());
                current.clear();
            }
        }
        found
    }

    #[test]
    fn a_full_run_heads_the_readme_with_every_scenario_and_its_verdicts() {
        let headline = clean(true).headline();
        for item in [
            "instantiate + run of `hello`",
            "`POST /v1/plugins/hello/run`",
            "`POST /v1/plugins/hello/tasks`",
            "restart with 50 plugins",
            "fan-out crawl",
            "a new version of `hello`",
            "tasks each sleeping",
            "outbound HTTP",
            "chaos-proxy",
            "healthy `hello`",
            "Python and JavaScript",
        ] {
            assert!(headline.contains(&format!("- {item}")), "no {item:?} in:\n{headline}");
        }
        assert!(headline.contains("at concurrency 100,") && headline.contains("at concurrency 1,000:"), "{headline}");
        assert!(headline.contains(": met") && headline.contains("**missed**"), "{headline}");
        assert!(!headline.contains("not judged"), "{headline}");
    }

    #[test]
    fn every_number_of_the_headline_is_in_the_report_of_the_same_run() {
        let report = clean(true);
        let (headline, results) = (report.headline(), report.markdown());
        for number in numbers(&headline) {
            assert!(results.contains(&number), "{number} is in the headline but not in RESULTS.md:\n{headline}");
        }
    }

    #[test]
    fn a_smoke_run_puts_no_measured_figure_in_the_readme() {
        let headline = clean(false).headline();
        let targets = numbers(&crate::targets::summary());
        for number in numbers(&headline) {
            assert!(targets.contains(&number), "{number} is not a target:\n{headline}");
        }
    }

    #[test]
    fn the_block_between_the_markers_is_replaced_and_nothing_else() {
        let path = std::env::temp_dir().join(format!("ignareo-bench-readme-{}.md", std::process::id()));
        std::fs::write(&path, format!("# Title\n\nbefore\n{START}\nold figures\n{END}\nafter\n")).unwrap();
        rewrite_readme(&path, "- new figure\n").unwrap();
        let rewritten = std::fs::read_to_string(&path).unwrap();
        assert_eq!(rewritten, format!("# Title\n\nbefore\n{START}\n- new figure\n{END}\nafter\n"));
        std::fs::write(&path, "no markers\n").unwrap();
        assert!(rewrite_readme(&path, "x\n").is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
