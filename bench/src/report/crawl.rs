//! The crawl comparison's section: how every figure is measured (the same way for every
//! client), the tables, the ratios against the targets, and every setting that is not a
//! default.

use std::fmt::Write as _;

use super::{Report, median, median_range, number, shell};
use crate::crawl::{self, CrawlRun};
use crate::targets;

/// The medians of one client at one concurrency.
#[derive(Clone, Copy)]
pub(super) struct ClientMedians {
    pub fetches_per_sec: f64,
    pub cpu_per_1000: f64,
    pub peak_rss_mib: f64,
}

/// Ratios of one `ignareo` client to the baselines, at one concurrency.
pub(super) struct Ratios {
    pub vs_raw: f64,
    pub cpu_vs_raw: f64,
    pub rss_vs_raw: f64,
    pub vs_gevent: f64,
    pub vs_aiohttp: f64,
}

impl Report {
    fn crawl_runs(&self, client: &str, concurrency: usize) -> Vec<&CrawlRun> {
        self.crawl.iter().flat_map(|c| &c.runs).filter(|r| r.client == client && r.concurrency == concurrency).collect()
    }

    pub(super) fn crawl_medians(&self, client: &str, concurrency: usize) -> Option<ClientMedians> {
        let runs = self.crawl_runs(client, concurrency);
        if runs.is_empty() {
            return None;
        }
        Some(ClientMedians {
            fetches_per_sec: median(runs.iter().map(|r| r.fetches_per_sec()).collect()),
            cpu_per_1000: median(runs.iter().map(|r| r.cpu_s_per_1000()).collect()),
            peak_rss_mib: median(runs.iter().map(|r| r.peak_rss_mib).collect()),
        })
    }

    pub(super) fn crawl_ratios(&self, client: &str, concurrency: usize) -> Option<Ratios> {
        let ours = self.crawl_medians(client, concurrency)?;
        let raw = self.crawl_medians(crawl::RAW, concurrency)?;
        let gevent = self.crawl_medians(crawl::GEVENT, concurrency)?;
        let aiohttp = self.crawl_medians(crawl::AIOHTTP, concurrency)?;
        Some(Ratios {
            vs_raw: ours.fetches_per_sec / raw.fetches_per_sec,
            cpu_vs_raw: ours.cpu_per_1000 / raw.cpu_per_1000,
            rss_vs_raw: ours.peak_rss_mib / raw.peak_rss_mib,
            vs_gevent: ours.fetches_per_sec / gevent.fetches_per_sec,
            vs_aiohttp: ours.fetches_per_sec / aiohttp.fetches_per_sec,
        })
    }

    /// The crawl targets, each with its verdict, for fetch-all's ratios at the targets' concurrency.
    /// Each crawl target with its verdict, as one line: "target: verdict; ...".
    pub(super) fn crawl_verdict_line(&self, r: &Ratios) -> String {
        let verdicts: Vec<String> =
            self.crawl_verdicts(r).into_iter().map(|(target, verdict)| format!("{target}: {verdict}")).collect();
        verdicts.join("; ")
    }

    fn crawl_verdicts(&self, r: &Ratios) -> [(String, &'static str); 4] {
        let full = self.full;
        [
            (
                format!("≥ {}× raw reqwest's fetches/s", targets::CRAWL_VS_RAW),
                targets::verdict(full, r.vs_raw >= targets::CRAWL_VS_RAW),
            ),
            (
                format!("≤ {}× its CPU per fetch", targets::CRAWL_CPU_VS_RAW),
                targets::verdict(full, r.cpu_vs_raw <= targets::CRAWL_CPU_VS_RAW),
            ),
            (
                format!("≥ {}× gevent", targets::CRAWL_VS_GEVENT),
                targets::verdict(full, r.vs_gevent >= targets::CRAWL_VS_GEVENT),
            ),
            (
                format!("≥ {}× aiohttp", targets::CRAWL_VS_AIOHTTP),
                targets::verdict(full, r.vs_aiohttp >= targets::CRAWL_VS_AIOHTTP),
            ),
        ]
    }

    pub(super) fn crawl_markdown(&self) -> String {
        let Some(result) = &self.crawl else { return String::new() };
        let mut out = format!(
            "## Fan-out crawl: {} pages of {} bytes, each after a {} ms non-blocking delay\n\n",
            number(crate::scale::count(crawl::PAGES) as f64, 0),
            number(result.page_bytes as f64, 0),
            crawl::DELAY.as_millis()
        );
        out += "The target is an axum server in a process of its own, the same for every run. Every run of every client is a process started for that run and gone before the next one starts: for ignareo a host on a fresh data directory (the `crawler` plugin uploaded, and so compiled, after its start; no connection left from an earlier run), for the others the client's own process. Each repetition runs every client once, in the order of the tables. Every client does the same work with each page: decode it as UTF-8 and keep its title, as the `crawler` plugin does.\n\n";
        out += "Measured the same way for every client:\n\n";
        out += "- **fetches/s**: pages fetched over the crawl's own time, from its first request to its last answer (for ignareo: from sending the task, or the batch of tasks, to the last one's answer).\n";
        out += "- **CPU**: the whole process's user + system time from its spawn, start-up included. ignareo: the host process from its spawn, plugin upload and compilation included, to the end of the crawl (`/proc/PID/stat`; the host keeps running until it is stopped after the measurement). Every other client: its process from spawn to exit (`wait4`). **start-up** is the part of it spent before the crawl's first request: the host's through the upload; a baseline's up to its first request, by its own `getrusage`.\n";
        out += "- **peak RSS**: the process's high-water mark: the host's `VmHWM` at the end of the crawl; a baseline's `ru_maxrss` at its exit.\n\n";
        let _ = write!(
            out,
            "Python clients: {}, {}.\n\n",
            shell("target/bench-venv/bin/python -V"),
            shell("grep -v '^#' bench/python/requirements.txt | paste -sd ' '").replace(' ', ", ")
        );
        for concurrency in crawl::CONCURRENCIES {
            out += &self.crawl_table(concurrency);
        }
        out += "### Settings that differ from the defaults\n\n";
        out += "ignareo's hosts, as `GET /v1/config` reports them, against a host started without a configuration file (every host of the benchmark also listens on a port of its own and has a data directory of its own):\n\n";
        if result.host_settings.is_empty() {
            out += "- none\n";
        }
        for (key, value, default) in &result.host_settings {
            let _ = writeln!(out, "- `{key}` = {value} (default: {default})");
        }
        let _ = write!(
            out,
            "\nThe `crawler` plugin's manifest:\n\n```toml\n{}```\n\nEach client at each concurrency, as it states what it ran with:\n\n",
            crawl::GRANT
        );
        for concurrency in crawl::CONCURRENCIES {
            for client in crawl::CLIENTS {
                if let Some(run) = self.crawl_runs(client, concurrency).first() {
                    let _ =
                        writeln!(out, "- {client}, concurrency {}: {}", number(concurrency as f64, 0), run.settings);
                }
            }
        }
        out + "\n"
    }

    fn crawl_table(&self, concurrency: usize) -> String {
        let mut out = format!("### Concurrency {}\n\n", number(concurrency as f64, 0));
        out += "| client | fetches/s, median (min–max) | CPU-s per 1,000 fetches, median (min–max) | start-up CPU-s, median | peak RSS (MiB), median (min–max) | failed fetches |\n|---|---|---|---|---|---|\n";
        for client in crawl::CLIENTS {
            let runs = self.crawl_runs(client, concurrency);
            if runs.is_empty() {
                continue;
            }
            let rate: Vec<f64> = runs.iter().map(|r| r.fetches_per_sec()).collect();
            let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_s_per_1000()).collect();
            let rss: Vec<f64> = runs.iter().map(|r| r.peak_rss_mib).collect();
            let _ = writeln!(
                out,
                "| {client} | {} | {} | {:.3} | {} | {} |",
                median_range(&rate, 0),
                median_range(&cpu, 3),
                median(runs.iter().map(|r| r.startup_cpu_s).collect()),
                median_range(&rss, 0),
                runs.iter().map(|r| r.failed).sum::<usize>()
            );
        }
        out += "\n";
        if let Some(r) = self.crawl_ratios(crawl::FETCH_ALL, concurrency) {
            let _ = writeln!(
                out,
                "ignareo fetch-all vs raw reqwest: **{:.2}×** fetches/s, **{:.2}×** CPU per fetch, **{:.1}×** peak RSS; vs gevent **{:.1}×**, vs aiohttp **{:.1}×** fetches/s.",
                r.vs_raw, r.cpu_vs_raw, r.rss_vs_raw, r.vs_gevent, r.vs_aiohttp
            );
            if concurrency == targets::CRAWL_CONCURRENCY {
                let _ = writeln!(out, "Targets at this concurrency: {}.", self.crawl_verdict_line(&r));
            }
        }
        let rust = self.crawl_medians(crawl::FETCH_ALL, concurrency);
        for guest in [crawl::PYTHON_FETCH_ALL, crawl::JS_FETCH_ALL] {
            let (Some(r), Some(rust)) = (self.crawl_ratios(guest, concurrency), rust) else { continue };
            let Some(ours) = self.crawl_medians(guest, concurrency) else { continue };
            let vs_rust = ours.fetches_per_sec / rust.fetches_per_sec;
            let _ = write!(
                out,
                "{guest}: **{vs_rust:.2}×** the Rust crawler's fetches/s, **{:.1}×** aiohttp's, **{:.2}×** raw reqwest's CPU per fetch.",
                r.vs_aiohttp, r.cpu_vs_raw
            );
            if concurrency == targets::CRAWL_CONCURRENCY {
                let _ = write!(
                    out,
                    " Targets: ≥ {}× the Rust crawler ({}), ≥ {}× aiohttp ({}).",
                    targets::GUEST_CRAWL_VS_RUST,
                    targets::verdict(self.full, vs_rust >= targets::GUEST_CRAWL_VS_RUST),
                    targets::GUEST_CRAWL_VS_AIOHTTP,
                    targets::verdict(self.full, r.vs_aiohttp >= targets::GUEST_CRAWL_VS_AIOHTTP)
                );
            }
            out += "\n";
        }
        if let Some(r) = self.crawl_ratios(crawl::TASK_PER_CONNECTION, concurrency) {
            let _ = writeln!(
                out,
                "ignareo one task per connection vs raw reqwest: **{:.2}×** fetches/s, **{:.2}×** CPU per fetch.",
                r.vs_raw, r.cpu_vs_raw
            );
        }
        out + "\n"
    }
}
