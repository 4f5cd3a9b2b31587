//! RESULTS.md: the figures, the machine they were measured on, and the command.

use std::process::Command;

use crate::chaos::ChaosResult;
use crate::crawl::{self, CrawlRun};
use crate::hostile::HostileResult;
use crate::hotswap::{self, HotSwapResult};
use crate::invoke::InvokeResult;
use crate::outbound::OutboundResult;
use crate::sleepers::SleepersResult;
use crate::trigger::TriggerResult;

/// What the host changes made to these figures: kept here, since RESULTS.md is rewritten by every run.
const CHANGES: &str = "## What each change bought

Measured with this bench on this machine kind, each change on top of the one before.

| change | what it bought |
|---|---|
| instance memory reset in place (`memory_keep_resident_kb`, `PAGEMAP_SCAN`) instead of handed back to the kernel | `hello` 9,200 → 32,000 requests/s; invoke p50 28.4 → 11.3 µs, p99 60.7 → 15.9 µs; trigger 0.09× → 0.29× plain axum; 10,000 sleepers 551 → 591 MiB peak |
| background lane for plugins whose tasks reach a limit (nice 19, at most 3/4 of the slots) | `hello` beside the hostile set 0.50× → 0.85× of alone; spawn bombs 0.00× → 1.0× |
| mimalloc as the host's allocator (glibc's arena locks and consolidation were ~14% of the host's time in a crawl) | trigger 28,500 → 38,900 requests/s (0.26× → 0.35× plain axum); crawl at concurrency 1,000: 0.69× → 0.78× raw reqwest's fetches/s, CPU per fetch 1.64× → 1.57× |
| memory slots sized to the task memory once 4 GiB slots for every running task would not fit the address space (beyond ~7,900 running tasks) | 100,000 running tasks: the host could not start (a 431 TiB reservation refused) → 100,000 tasks asleep at once, 5.0 GiB peak RSS, all started 10 s after the first submission |
| one `WasiCtx` per store instead of two; expired tasks forgotten without cloning their status; task ids from a thread-local CSPRNG instead of a `getrandom` call each; tasks let go of at retention dropped outside the task table's lock | host CPU per `hello` trigger (alternating runs of the two builds, medians of 5): 79 → 73 µs |
| transparent huge pages off for the host process (`PR_SET_THP_DISABLE`): mimalloc had asked for them on its heap, and every 2 MiB of heap touched anew was a huge page zeroed at once (`clear_page_erms` was 45% of all CPU while sleepers started) | 50,000 sleepers on a fresh host (two runs each): all running 9.5 → 3.7 s after the first submission, 14.3 → 6.0 CPU-s to start them; host CPU per `hello` trigger (alternating runs, medians of 4): 71 → 58 µs |
";

pub struct Report {
    command: String,
    pub invoke: Vec<InvokeResult>,
    pub trigger: Vec<TriggerResult>,
    pub accept: Vec<TriggerResult>,
    pub restart: Option<crate::restart::RestartResult>,
    pub sleepers: Vec<SleepersResult>,
    pub outbound: Option<OutboundResult>,
    pub chaos: Option<ChaosResult>,
    pub hostile: Option<HostileResult>,
    pub crawl: Vec<CrawlRun>,
    pub hotswap: Option<HotSwapResult>,
}

/// The value at fraction `p` of sorted `samples`.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let index = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[index]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn shell(command: &str) -> String {
    Command::new("sh")
        .args(["-c", command])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    pub fn new(command: &str) -> Self {
        Self {
            command: command.to_owned(),
            invoke: Vec::new(),
            trigger: Vec::new(),
            accept: Vec::new(),
            restart: None,
            sleepers: Vec::new(),
            outbound: None,
            chaos: None,
            hostile: None,
            crawl: Vec::new(),
            hotswap: None,
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# Benchmark results\n\n");
        out += &format!("- Date: {}\n", shell("date -u '+%Y-%m-%d %H:%M UTC'"));
        out += &format!(
            "- Machine: {} cores, {}, {} RAM\n",
            shell("nproc"),
            shell("sed -n 's/^model name\\s*: //p' /proc/cpuinfo | head -n1"),
            shell("free -h | awk '/Mem:/ {print $2}'")
        );
        out += &format!(
            "- Versions: {}, wasmtime {}, {}\n",
            shell("rustc -V"),
            shell("awk '/^name = \"wasmtime\"$/ {getline; print $3}' Cargo.lock | tr -d '\"'"),
            shell("wrk -v 2>&1 | head -n1")
        );
        out += &format!("- Command: `{}` (release builds; everything on 127.0.0.1)\n\n", self.command);

        out += "## Invocation overhead: instantiate + run of `hello`, in-process\n\n";
        out += "A fresh store per invocation from the pooling allocator, one at a time, after 1,000 warm-up runs.\n\n";
        out += "| repetition | p50 (µs) | p99 (µs) | mean (µs) | invocations |\n|---|---|---|---|---|\n";
        for (i, r) in self.invoke.iter().enumerate() {
            out +=
                &format!("| {} | {:.1} | {:.1} | {:.1} | {} |\n", i + 1, r.p50_us, r.p99_us, r.mean_us, r.iterations);
        }
        let p50s: Vec<f64> = self.invoke.iter().map(|r| r.p50_us).collect();
        let p99s: Vec<f64> = self.invoke.iter().map(|r| r.p99_us).collect();
        let (p50_min, p50_max) = spread(&p50s);
        let (p99_min, p99_max) = spread(&p99s);
        out += &format!(
            "| **median** | **{:.1}** ({p50_min:.1}–{p50_max:.1}) | **{:.1}** ({p99_min:.1}–{p99_max:.1}) | | |\n\n",
            median(p50s.clone()),
            median(p99s.clone())
        );

        out += &self.trigger_markdown();
        out += &self.accept_markdown();
        out += &self.restart_markdown();
        out += &self.crawl_markdown();
        out += &self.hotswap_markdown();

        out += &self.sleepers_markdown();
        out += &self.outbound_markdown();
        out += &self.chaos_markdown();
        out += &self.hostile_markdown();
        out += CHANGES;
        out
    }

    /// Failures a smoke run must not have: lost tasks, failed fetches or requests. Speed is
    /// never judged here.
    pub fn smoke_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for s in &self.sleepers {
            if s.succeeded != s.count {
                problems.push(format!("{} of {} sleeping tasks succeeded", s.succeeded, s.count));
            }
        }
        for run in self.crawl.iter().filter(|run| run.failed > 0) {
            problems.push(format!("{} at concurrency {}: {} fetches failed", run.client, run.concurrency, run.failed));
        }
        let loads = self
            .trigger
            .iter()
            .chain(&self.accept)
            .chain(self.hotswap.iter().flat_map(|h| h.steady.iter().chain(&h.swapping)));
        for load in loads.filter(|load| load.errors + load.socket_errors > 0) {
            problems.push(format!(
                "{}: {} non-2xx answers, {} socket errors",
                load.server, load.errors, load.socket_errors
            ));
        }
        if let Some(h) = self.hotswap.as_ref().filter(|h| h.failed_uploads > 0) {
            problems.push(format!("{} uploads failed during the hot swap", h.failed_uploads));
        }
        problems
    }

    pub fn sleepers_markdown(&self) -> String {
        let (Some(first), Some(largest)) = (self.sleepers.first(), self.sleepers.iter().max_by_key(|s| s.count)) else {
            return String::new();
        };
        let mut counts: Vec<usize> = self.sleepers.iter().map(|s| s.count).collect();
        counts.dedup();
        let runs: Vec<Vec<&SleepersResult>> =
            counts.iter().map(|&count| self.sleepers.iter().filter(|s| s.count == count).collect()).collect();
        let repetitions = runs.iter().map(Vec::len).min().unwrap_or(0);
        let mut out = format!("## Many tasks at once: tasks each sleeping {} s\n\n", first.sleep_ms as f64 / 1000.0);
        out += &format!(
            "A fresh host per count and repetition ({repetitions} of each; medians, min–max in brackets), started with `--max-running-tasks N --max-queued-tasks N`; the tasks submitted with `POST /v1/plugins/sleep/tasks:batch` ({} inputs a request, {} requests at a time), each committed to the task store before its 202. One process (no workers). {}\n\n",
            crate::sleepers::BATCH,
            crate::sleepers::BATCHES_IN_FLIGHT,
            largest.map_count_note
        );
        // One cell per count: the median of `figure` over its runs, with their spread.
        let row = |name: &str, figure: &dyn Fn(&SleepersResult) -> Option<f64>, decimals: usize, unit: &str| {
            let cells: Vec<String> = runs
                .iter()
                .map(|runs| {
                    let values: Vec<f64> = runs.iter().filter_map(|s| figure(s)).collect();
                    if values.is_empty() {
                        return "not sampled".to_owned();
                    }
                    let (min, max) = spread(&values);
                    if values.len() == 1 {
                        format!("{min:.decimals$}{unit}")
                    } else {
                        format!("{:.decimals$} ({min:.decimals$}–{max:.decimals$}){unit}", median(values))
                    }
                })
                .collect();
            format!("| {name} | {} |\n", cells.join(" | "))
        };
        out += &format!("| tasks | {} |\n", counts.iter().map(|c| format!("**{c}**")).collect::<Vec<_>>().join(" | "));
        out += &format!("|---|{}\n", "---|".repeat(counts.len()));
        out += &row("RSS of the idle host (pool reserved)", &|s| Some(s.idle_rss_mib), 0, " MiB");
        out += &row("peak RSS", &|s| Some(s.peak_rss_mib), 0, " MiB");
        out += &row(
            "peak RSS per running task (above idle, over the most running at once)",
            &|s| Some((s.peak_rss_mib - s.idle_rss_mib) * 1024.0 / s.most_running.max(1) as f64),
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
            .map(|runs| {
                let succeeded: usize = runs.iter().map(|s| s.succeeded).sum();
                let submitted: usize = runs.iter().map(|s| s.count).sum();
                format!("{succeeded} / {}", submitted - succeeded)
            })
            .collect();
        out += &format!("| succeeded / not succeeded (all repetitions) | {} |\n\n", outcomes.join(" | "));
        out
    }

    pub fn restart_markdown(&self) -> String {
        let Some(r) = &self.restart else { return String::new() };
        let mut out = format!("## Restart with {} plugins\n\n", r.plugins);
        out += &format!(
            "{} distinct components ({:.1} MiB in all, copies of six of this repository's plugins) uploaded, the host stopped with SIGTERM, then started again on the same data directory; time from spawning the process to its listening line, every plugin live from its compiled artifact.\n\n",
            r.plugins,
            r.component_bytes as f64 / (1024.0 * 1024.0)
        );
        let (min, max) = spread(&r.ready_secs);
        out += "| figure | value |\n|---|---|\n";
        out += &format!(
            "| ready after start, median (min–max) | **{:.2} s** ({min:.2}–{max:.2}) |\n",
            median(r.ready_secs.clone())
        );
        out += &format!("| compilations at each start | {:?} |\n\n", r.compilations);
        out
    }

    pub fn accept_markdown(&self) -> String {
        if self.accept.is_empty() {
            return String::new();
        }
        let mut out =
            String::from("## Durable submission: `POST /v1/plugins/hello/tasks`, 64 keep-alive connections\n\n");
        out += "`wrk -t2 -c64 -d10s --latency`: each 202 is sent once the task is committed to the task store (SQLite, WAL; one writer commits whatever has queued up in one transaction), after which the task runs; `run` answers with the output and records nothing. A fresh host per row.\n\n";
        out += "| route | requests/s median (min–max) | p50 latency (ms) | p99 latency (ms) | non-2xx |\n|---|---|---|---|---|\n";
        for label in crate::accept::labels() {
            let runs: Vec<&TriggerResult> = self.accept.iter().filter(|r| r.server == label).collect();
            let rps: Vec<f64> = runs.iter().map(|r| r.requests_per_sec).collect();
            let (min, max) = spread(&rps);
            out += &format!(
                "| {label} | {:.0} ({min:.0}–{max:.0}) | {:.2} | {:.2} | {} |\n",
                median(rps.clone()),
                median(runs.iter().map(|r| r.p50_ms).collect()),
                median(runs.iter().map(|r| r.p99_ms).collect()),
                runs.iter().map(|r| r.errors).sum::<u64>()
            );
        }
        out + "\n"
    }

    pub fn hotswap_markdown(&self) -> String {
        let Some(h) = &self.hotswap else {
            return String::new();
        };
        let mut out = String::from("## Hot swap under load: a new version of `hello` every second\n\n");
        out += &format!(
            "`wrk -t2 -c64 -d10s --latency` on `POST /v1/plugins/hello/run`, once steady and once while {} uploads (`PUT /v1/plugins/hello`, one a second) make a new version live; each upload is a new version (two components alternating, each time with another manifest; their compiled artifacts are reused).\n\n",
            hotswap::UPLOADS
        );
        out += "| load | requests/s median (min–max) | p50 (ms) | p99 (ms) | failed requests (non-2xx + socket errors) |\n|---|---|---|---|---|\n";
        for (label, runs) in [("steady", &h.steady), ("new version every second", &h.swapping)] {
            let rps: Vec<f64> = runs.iter().map(|r| r.requests_per_sec).collect();
            let (min, max) = spread(&rps);
            out += &format!(
                "| {label} | {:.0} ({min:.0}–{max:.0}) | {:.2} | {:.2} | {} |\n",
                median(rps.clone()),
                median(runs.iter().map(|r| r.p50_ms).collect()),
                median(runs.iter().map(|r| r.p99_ms).collect()),
                runs.iter().map(|r| r.errors + r.socket_errors).sum::<u64>()
            );
        }
        let mut uploads = h.upload_ms.clone();
        uploads.sort_by(f64::total_cmp);
        out += &format!(
            "\nUploads: {} ({} failed), answered in {:.0} ms median, {:.0} ms at most.\n\n",
            uploads.len(),
            h.failed_uploads,
            percentile(&uploads, 0.5),
            uploads.last().copied().unwrap_or(f64::NAN)
        );
        out
    }

    pub fn trigger_markdown(&self) -> String {
        if self.trigger.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        out += "## Trigger throughput: `POST /v1/plugins/hello/run`, 64 keep-alive connections\n\n";
        out += "`wrk -t2 -c64 -d10s --latency` with a small JSON body, against the host (a fresh instance per request) and against a plain axum handler that answers the same bytes. Load generator and server share the 2 cores.\n\n";
        out += "| server | requests/s median (min–max) | p50 latency (ms) | p99 latency (ms) | non-2xx |\n|---|---|---|---|---|\n";
        let mut medians = Vec::new();
        for server in ["ignareo", "plain axum"] {
            let runs: Vec<&TriggerResult> = self.trigger.iter().filter(|r| r.server == server).collect();
            let rps: Vec<f64> = runs.iter().map(|r| r.requests_per_sec).collect();
            let (min, max) = spread(&rps);
            let med = median(rps.clone());
            medians.push(med);
            out += &format!(
                "| {server} | {med:.0} ({min:.0}–{max:.0}) | {:.2} | {:.2} | {} |\n",
                median(runs.iter().map(|r| r.p50_ms).collect()),
                median(runs.iter().map(|r| r.p99_ms).collect()),
                runs.iter().map(|r| r.errors).sum::<u64>()
            );
        }
        if let [ignareo, plain] = medians[..] {
            out += &format!("\nignareo / plain axum: **{:.2}×**\n\n", ignareo / plain);
        }

        out
    }

    pub fn crawl_markdown(&self) -> String {
        if self.crawl.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "## Fan-out crawl: {} pages, each ~2 KB after a {} ms non-blocking delay\n\n",
            crawl::PAGES,
            crawl::DELAY.as_millis()
        );
        out += "The target is an axum server in a process of its own. Each client runs in its own process too; CPU is that process's user + system time during the crawl (for ignareo: the host's, API included), peak RSS its high-water mark (for ignareo: the host's since it started, plugin loaded). ignareo rows: one `crawler` task calling `fetch-all` with the concurrency, and one `crawler` task per connection (submitted in one `tasks:batch`) fetching its share sequentially. Python: gevent + requests (`monkey.patch_all()`, a pool of greenlets, spawn + joinall), asyncio + aiohttp (one session, a semaphore). Every client does the same work with each page: decode it as UTF-8 and keep its title, as the `crawler` plugin does.\n\n";
        out += &format!(
            "Python clients: {}, {}.\n\n",
            shell("target/bench-venv/bin/python -V"),
            shell("grep -v '^#' bench/python/requirements.txt | paste -sd ' '").replace(' ', ", ")
        );
        for concurrency in crawl::CONCURRENCIES {
            out += &format!("### Concurrency {concurrency}\n\n");
            out += "| client | fetches/s median (min–max) | CPU-s per 1,000 fetches | peak RSS (MiB) | failed |\n|---|---|---|---|---|\n";
            let mut rates = Vec::new();
            for client in crawl::CLIENTS {
                let runs: Vec<&CrawlRun> =
                    self.crawl.iter().filter(|r| r.client == client && r.concurrency == concurrency).collect();
                if runs.is_empty() {
                    continue;
                }
                let rate: Vec<f64> = runs.iter().map(|r| r.fetches_per_sec()).collect();
                let (min, max) = spread(&rate);
                let med = median(rate.clone());
                let cpu = median(runs.iter().map(|r| r.cpu_s_per_1000()).collect());
                rates.push((client, med, cpu));
                out += &format!(
                    "| {client} | {med:.0} ({min:.0}–{max:.0}) | {cpu:.3} | {:.0} | {} |\n",
                    runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
                    runs.iter().map(|r| r.failed).sum::<usize>()
                );
            }
            let find =
                |name: &str| rates.iter().find(|(client, ..)| *client == name).map(|&(_, rate, cpu)| (rate, cpu));
            if let (Some((ours, our_cpu)), Some((raw, raw_cpu)), Some((gevent, _)), Some((aiohttp, _))) =
                (find(crawl::CLIENTS[0]), find(crawl::CLIENTS[2]), find(crawl::CLIENTS[3]), find(crawl::CLIENTS[4]))
            {
                out += &format!(
                    "\nignareo fetch-all vs raw reqwest: **{:.2}×** fetches/s (target ≥ 0.85× at 1,000), **{:.2}×** CPU per fetch (target ≤ 1.3×); vs gevent **{:.1}×** (target ≥ 10×); vs aiohttp **{:.1}×** (target ≥ 3×).\n",
                    ours / raw,
                    our_cpu / raw_cpu,
                    ours / gevent,
                    ours / aiohttp
                );
            }
            if let (Some((tasks, tasks_cpu)), Some((raw, raw_cpu))) = (find(crawl::CLIENTS[1]), find(crawl::CLIENTS[2]))
            {
                out += &format!(
                    "ignareo one task per connection vs raw reqwest: **{:.2}×** fetches/s, **{:.2}×** CPU per fetch.\n",
                    tasks / raw,
                    tasks_cpu / raw_cpu
                );
            }
            out += "\n";
        }
        out
    }

    pub fn hostile_markdown(&self) -> String {
        let Some(h) = &self.hostile else { return String::new() };
        let mut out = String::from("## Healthy throughput beside hostile plugins\n\n");
        out += &format!(
            "`wrk -t2 -c64 -d10s` on `POST /v1/plugins/hello/run`, alone, then while 8 lanes keep running the `hostile` plugin's kinds one after another (busy loops calling the host, memory bombs, stack overflows, 20 MiB outputs, log floods, spawn bombs, sleepers, session hoarders; 3 s deadline each; {} hostile tasks in all).\n\n",
            h.hostile_tasks
        );
        out += "| hello | requests/s median (min–max) | p50 latency (ms) | p99 latency (ms) |\n|---|---|---|---|\n";
        let mut medians = Vec::new();
        for runs in [&h.alone, &h.beside_hostile] {
            let rps: Vec<f64> = runs.iter().map(|r| r.requests_per_sec).collect();
            let (min, max) = spread(&rps);
            let med = median(rps);
            medians.push(med);
            out += &format!(
                "| {} | {med:.0} ({min:.0}–{max:.0}) | {:.2} | {:.2} |\n",
                runs.first().map_or("", |r| r.server),
                median(runs.iter().map(|r| r.p50_ms).collect()),
                median(runs.iter().map(|r| r.p99_ms).collect())
            );
        }
        if let [alone, beside] = medians[..] {
            out += &format!(
                "\nbeside the hostile set / alone: **{:.2}×** (a drop of {:.0}%)\n\n",
                beside / alone,
                (1.0 - beside / alone) * 100.0
            );
            out += "Which kind costs what: one run each, all 8 lanes running only that kind.\n\n| beside | hello requests/s | / alone | p99 latency (ms) | non-2xx |\n|---|---|---|---|---|\n";
            for (kind, run) in &h.per_kind {
                out += &format!(
                    "| {kind} | {:.0} | {:.2}× | {:.2} | {} |\n",
                    run.requests_per_sec,
                    run.requests_per_sec / alone,
                    run.p99_ms,
                    run.errors
                );
            }
            out += "\n";
        }
        out
    }

    pub fn chaos_markdown(&self) -> String {
        let Some(c) = &self.chaos else { return String::new() };
        let mut out = String::from("## chaos-proxy: its own overhead and the accuracy of `--speed`\n\n");
        out += "`wrk -t2 -c64 -d10s` POSTing to the plain axum server directly and through `ignareo chaos-proxy --upstream ... --latency 0` (no speed limit, no faults). Client, proxy and server share the 2 cores.\n\n";
        out += "| path | requests/s median (min–max) | p50 latency (ms) | p99 latency (ms) |\n|---|---|---|---|\n";
        let mut medians = Vec::new();
        for runs in [&c.direct, &c.through] {
            let rps: Vec<f64> = runs.iter().map(|r| r.requests_per_sec).collect();
            let (min, max) = spread(&rps);
            let med = median(rps);
            medians.push(med);
            out += &format!(
                "| {} | {med:.0} ({min:.0}–{max:.0}) | {:.2} | {:.2} |\n",
                runs.first().map_or("", |r| r.server),
                median(runs.iter().map(|r| r.p50_ms).collect()),
                median(runs.iter().map(|r| r.p99_ms).collect())
            );
        }
        if let [direct, through] = medians[..] {
            out += &format!("\nthrough the proxy / direct: **{:.2}×**\n\n", through / direct);
        }
        out += "Four parallel 2 MiB downloads through the proxy at `--speed` (one budget shared by all links):\n\n";
        out += "| --speed (B/s) | measured B/s, median (min–max) | error of the median |\n|---|---|---|\n";
        let mut speeds: Vec<u64> = c.speed.iter().map(|(s, _)| *s).collect();
        speeds.dedup();
        for speed in speeds {
            let runs: Vec<f64> = c.speed.iter().filter(|(s, _)| *s == speed).map(|(_, m)| *m).collect();
            let (min, max) = spread(&runs);
            let med = median(runs);
            out +=
                &format!("| {speed} | {med:.0} ({min:.0}–{max:.0}) | {:+.1}% |\n", (med / speed as f64 - 1.0) * 100.0);
        }
        out += "\n";
        out
    }

    pub fn outbound_markdown(&self) -> String {
        let Some(o) = &self.outbound else { return String::new() };
        let mut out = String::from("## Outbound HTTP: the policy layer and per-host caps\n\n");
        out += "A ~2 KB page from an axum target in the benchmark process, answered at once. The policy layer is the host's outbound code (grant check, politeness gates, redirects followed by the host, streamed size limit) driven in-process without WebAssembly; the host rows are one `crawler` task running `fetch-all` in the release host.\n\n";
        out += "| one request at a time | mean µs per request, median (min–max) |\n|---|---|\n";
        let mut means = Vec::new();
        for what in ["bare reqwest", "policy layer"] {
            let runs: Vec<f64> = o.sequential.iter().filter(|(w, _)| *w == what).map(|(_, v)| *v).collect();
            let (min, max) = spread(&runs);
            let med = median(runs);
            means.push(med);
            out += &format!("| {what} | {med:.1} ({min:.1}–{max:.1}) |\n");
        }
        if let [bare, policy] = means[..] {
            out += &format!(
                "\nThe policy layer adds **{:.1} µs** per request ({:.2}×).\n\n",
                policy - bare,
                policy / bare
            );
        }
        out += "| 64 at a time | requests | requests/s, median (min–max) |\n|---|---|---|\n";
        let mut labels: Vec<&str> = Vec::new();
        for (label, _) in &o.parallel {
            if !labels.contains(label) {
                labels.push(label);
            }
        }
        for label in labels {
            let runs: Vec<f64> = o.parallel.iter().filter(|(l, _)| *l == label).map(|(_, v)| *v).collect();
            let (min, max) = spread(&runs);
            let count = if label.contains("requests/s cap") { "1000" } else { "20000" };
            out += &format!("| {label} | {count} | {:.0} ({min:.0}–{max:.0}) |\n", median(runs));
        }
        out += "\n";
        out
    }
}
