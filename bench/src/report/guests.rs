//! The guests section: `hello` in Rust, Python and JavaScript in-process and over HTTP, and
//! sleeping Python and JavaScript tasks, each with the targets set for them.

use std::fmt::Write as _;

use super::{Report, median, median_range, number};
use crate::guests::{LANGUAGES, Language};
use crate::targets;

impl Report {
    /// The p50 of `language`'s in-process `hello`, and its HTTP requests/s (medians).
    fn guest_medians(&self, language: Language) -> Option<(f64, f64)> {
        let g = self.guests.as_ref()?;
        let p50: Vec<f64> = g.invoke.iter().filter(|(l, _)| *l == language).map(|(_, r)| r.p50_us).collect();
        let rps: Vec<f64> = g.trigger.iter().filter(|(l, _)| *l == language).map(|(_, r)| r.requests_per_sec).collect();
        (!p50.is_empty() && !rps.is_empty()).then(|| (median(p50), median(rps)))
    }

    pub(super) fn guests_headline(&self) -> Option<String> {
        let g = self.guests.as_ref()?;
        let each: Vec<String> = LANGUAGES
            .into_iter()
            .filter_map(|language| {
                let (p50, rps) = self.guest_medians(language)?;
                Some(format!("{} {} µs, {} requests/s", language.name(), number(p50, 0), number(rps, 0)))
            })
            .collect();
        let mut item = format!(
            "Python and JavaScript guests next to Rust: `hello` in-process p50 and over HTTP: {}",
            each.join("; ")
        );
        if let Some((python_p50, _)) = self.guest_medians(Language::Python) {
            let _ = write!(
                item,
                " (target: Python p50 ≤ {} µs, {})",
                number(targets::PYTHON_INVOKE_P50_US, 0),
                targets::verdict(self.full, python_p50 <= targets::PYTHON_INVOKE_P50_US)
            );
        }
        for (language, s) in &g.sleepers {
            if let Some(pss) = s.pss_per_task_mib() {
                let _ = write!(
                    item,
                    "; {} sleeping {} tasks: {:.2} MiB each (PSS; {:.2} MiB by RSS, which counts the shared data image once per task)",
                    number(s.count as f64, 0),
                    language.name(),
                    pss,
                    s.per_task_mib()
                );
            }
        }
        if let Some(pss) = python_sleeper(g) {
            let _ = write!(
                item,
                " (target: ≤ {} MiB a Python task, {})",
                targets::PYTHON_SLEEPER_MIB,
                targets::verdict(self.full, pss <= targets::PYTHON_SLEEPER_MIB)
            );
        }
        Some(item + ".")
    }

    pub(super) fn guests_markdown(&self) -> String {
        let Some(g) = &self.guests else { return String::new() };
        let mut out = String::from("## Guests: Python and JavaScript next to Rust\n\n");
        out += "The same `hello` (JSON in, `{\"hello\": input}` out) built from Rust (`plugins/tasks/hello`), Python (`plugins/tasks-python/hello`, componentize-py) and JavaScript (`plugins/tasks-js/hello`, componentize-js), medians over the repetitions with min–max in brackets.\n\n";
        let _ = write!(
            out,
            "### In-process: instantiate + run, one at a time\n\nA fresh store per invocation from the pooling allocator, after {} warm-up runs.\n\n",
            number(crate::guests::WARMUP as f64, 0)
        );
        out += "| language | p50 (µs) | p99 (µs) | mean (µs) | invocations per repetition |\n|---|---|---|---|---|\n";
        for language in LANGUAGES {
            let runs: Vec<_> = g.invoke.iter().filter(|(l, _)| *l == language).map(|(_, r)| r).collect();
            let Some(first) = runs.first() else { continue };
            let figure = |f: fn(&crate::invoke::InvokeResult) -> f64| runs.iter().map(|r| f(r)).collect::<Vec<_>>();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                language.name(),
                median_range(&figure(|r| r.p50_us), 0),
                median_range(&figure(|r| r.p99_us), 0),
                median_range(&figure(|r| r.mean_us), 0),
                number(first.iterations as f64, 0)
            );
        }
        let python_p50 =
            median(g.invoke.iter().filter(|(l, _)| *l == Language::Python).map(|(_, r)| r.p50_us).collect());
        let _ = write!(
            out,
            "\nTarget: Python p50 ≤ {} µs ({}).\n\n",
            number(targets::PYTHON_INVOKE_P50_US, 0),
            targets::verdict(self.full, python_p50 <= targets::PYTHON_INVOKE_P50_US)
        );
        let _ = write!(
            out,
            "### Over HTTP: `POST /v1/plugins/{{hello}}/run`\n\nOne host with the three plugins, `{}`, the languages interleaved.\n\n",
            crate::trigger::wrk_command()
        );
        out += "| language | requests/s | p50 (ms) | p99 (ms) | failed requests |\n|---|---|---|---|---|\n";
        for language in LANGUAGES {
            let runs: Vec<_> = g.trigger.iter().filter(|(l, _)| *l == language).map(|(_, r)| r).collect();
            if runs.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                language.name(),
                median_range(&runs.iter().map(|r| r.requests_per_sec).collect::<Vec<_>>(), 0),
                median_range(&runs.iter().map(|r| r.p50_ms).collect::<Vec<_>>(), 2),
                median_range(&runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>(), 2),
                runs.iter().map(|r| r.errors + r.socket_errors).sum::<u64>()
            );
        }
        out + "\n" + &self.guest_sleepers_markdown()
    }

    fn guest_sleepers_markdown(&self) -> String {
        let Some(g) = &self.guests else { return String::new() };
        let mut out = String::from("### Sleeping tasks: memory\n\n");
        out += "`sleep` tasks (each sleeping 10 s) submitted at once to a fresh host per count, as in the many-tasks section; one run each.\n\n";
        out += "| language | tasks | idle host RSS (MiB) | peak RSS (MiB) | peak RSS per running task (MiB) | PSS once all had started (MiB) | PSS per task above the idle host (MiB) | time until all had started (s) | succeeded |\n|---|---|---|---|---|---|---|---|---|\n";
        for (language, s) in &g.sleepers {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {:.2} | {} |",
                language.name(),
                number(s.count as f64, 0),
                s.idle_rss_mib,
                s.peak_rss_mib,
                s.per_task_mib(),
                s.pss_all_started_mib.map_or_else(|| "not sampled".to_owned(), |p| format!("{p:.0}")),
                s.pss_per_task_mib().map_or_else(|| "not sampled".to_owned(), |p| format!("{p:.2}")),
                s.all_started_secs,
                number(s.succeeded as f64, 0)
            );
        }
        out += "\nRSS counts every page an instance maps, so the plugin's data image (CPython's or SpiderMonkey's heap as the build left it, mapped copy-on-write from the compiled artifact into every instance) counts once per task; PSS splits each shared page among the instances that map it, which is what the tasks cost the machine. The target is judged on PSS.\n";
        for skipped in &g.skipped {
            let _ = writeln!(out, "\nNot run: {skipped}.");
        }
        if let Some(pss) = python_sleeper(g) {
            let _ = write!(
                out,
                "\nTarget: ≤ {} MiB a sleeping Python task ({}: {:.2} MiB at the largest count run).\n\n",
                targets::PYTHON_SLEEPER_MIB,
                targets::verdict(self.full, pss <= targets::PYTHON_SLEEPER_MIB),
                pss
            );
        }
        out
    }
}

/// PSS per task of the largest count of sleeping Python tasks run.
fn python_sleeper(g: &crate::guests::GuestsResult) -> Option<f64> {
    g.sleepers.iter().rev().find(|(l, _)| *l == Language::Python).and_then(|(_, s)| s.pss_per_task_mib())
}
