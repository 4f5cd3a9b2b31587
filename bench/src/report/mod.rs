//! RESULTS.md: the figures, the machine they were measured on, and the command. Every number
//! in it comes from the run that writes it; the README's headline block is written from the
//! same report (`headline`).

use std::fmt::Write as _;

mod crawl;
#[cfg(test)]
mod fixture;
mod guests;
mod headline;
mod load;
mod smoke;
mod tasks;

use std::process::Command;

use crate::chaos::ChaosResult;
use crate::crawl::CrawlResult;
use crate::guests::GuestsResult;
use crate::hostile::HostileResult;
use crate::hotswap::HotSwapResult;
use crate::invoke::InvokeResult;
use crate::outbound::OutboundResult;
use crate::restart::RestartResult;
use crate::sleepers::SleepersResult;
use crate::targets;
use crate::trigger::TriggerResult;

pub use headline::rewrite_readme;

pub struct Report {
    command: String,
    started: String,
    /// A full run's figures are results; a smoke run's only show the layout of the report.
    pub full: bool,
    pub invoke: Vec<InvokeResult>,
    pub trigger: Vec<TriggerResult>,
    pub accept: Vec<TriggerResult>,
    pub restart: Option<RestartResult>,
    pub sleepers: Vec<SleepersResult>,
    pub outbound: Option<OutboundResult>,
    pub chaos: Option<ChaosResult>,
    pub hostile: Option<HostileResult>,
    pub crawl: Option<CrawlResult>,
    pub hotswap: Option<HotSwapResult>,
    pub guests: Option<GuestsResult>,
}

/// The value at fraction `p` of sorted `samples`.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "p is within 0..=1: the index is within the samples"
)]
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

/// "median (min–max)" with `decimals` decimals, or the one value when there is one.
fn median_range(values: &[f64], decimals: usize) -> String {
    if values.len() == 1 {
        return number(values[0], decimals);
    }
    let (min, max) = spread(values);
    format!("{} ({}–{})", number(median(values.to_vec()), decimals), number(min, decimals), number(max, decimals))
}

/// `value` with `decimals` decimals, thousands grouped with commas.
fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |rest| ("-", rest));
    let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
    if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return text;
    }
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

fn shell(command: &str) -> String {
    Command::new("sh")
        .args(["-c", command])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    pub fn new(command: &str, full: bool) -> Self {
        Self {
            command: command.to_owned(),
            started: shell("date -u '+%Y-%m-%d %H:%M UTC'"),
            full,
            invoke: Vec::new(),
            trigger: Vec::new(),
            accept: Vec::new(),
            restart: None,
            sleepers: Vec::new(),
            outbound: None,
            chaos: None,
            hostile: None,
            crawl: None,
            hotswap: None,
            guests: None,
        }
    }

    fn machine() -> String {
        format!(
            "{} cores, {}, {} RAM",
            shell("nproc"),
            shell("sed -n 's/^model name\\s*: //p' /proc/cpuinfo | head -n1"),
            shell("free -h | awk '/Mem:/ {print $2}'")
        )
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# Benchmark results\n\n");
        if !self.full {
            out += "**Not benchmark results.** A smoke run wrote this file: every count a tenth of the full run's or less, one repetition, on a machine that may have been busy with other work. It shows the layout of the report only; `bench/run` on an idle machine writes the figures.\n\n";
        }
        let _ = writeln!(out, "- Started: {}", self.started);
        let _ = writeln!(out, "- Machine: {}", Self::machine());
        let _ = writeln!(
            out,
            "- Versions: {}, wasmtime {}, {}",
            shell("rustc -V"),
            shell("awk '/^name = \"wasmtime\"$/ {getline; print $3}' Cargo.lock | tr -d '\"'"),
            shell("wrk -v 2>&1 | head -n1")
        );
        let _ = write!(out, "- Command: `{}` (release builds; everything on 127.0.0.1)\n\n", self.command);
        for section in crate::SCENARIOS {
            out += &self.section(section);
        }
        out
    }

    /// One scenario's section of the report.
    pub fn section(&self, scenario: &str) -> String {
        match scenario {
            "invoke" => self.invoke_markdown(),
            "trigger" => self.trigger_markdown(),
            "accept" => self.accept_markdown(),
            "restart" => self.restart_markdown(),
            "crawl" => self.crawl_markdown(),
            "hotswap" => self.hotswap_markdown(),
            "sleepers" => self.sleepers_markdown(),
            "outbound" => self.outbound_markdown(),
            "chaos" => self.chaos_markdown(),
            "hostile" => self.hostile_markdown(),
            "guests" => self.guests_markdown(),
            _ => String::new(),
        }
    }

    fn invoke_medians(&self) -> Option<(f64, f64)> {
        if self.invoke.is_empty() {
            return None;
        }
        Some((
            median(self.invoke.iter().map(|r| r.p50_us).collect()),
            median(self.invoke.iter().map(|r| r.p99_us).collect()),
        ))
    }

    fn invoke_markdown(&self) -> String {
        let Some((p50, p99)) = self.invoke_medians() else { return String::new() };
        let mut out = String::from("## Invocation overhead: instantiate + run of `hello`, in-process\n\n");
        let _ = write!(
            out,
            "A fresh store per invocation from the pooling allocator, one at a time, after {} warm-up runs.\n\n",
            number(crate::invoke::WARMUP as f64, 0)
        );
        out += "| repetition | p50 (µs) | p99 (µs) | mean (µs) | invocations |\n|---|---|---|---|---|\n";
        for (i, r) in self.invoke.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {} |",
                i + 1,
                r.p50_us,
                r.p99_us,
                r.mean_us,
                number(r.iterations as f64, 0)
            );
        }
        let p50s: Vec<f64> = self.invoke.iter().map(|r| r.p50_us).collect();
        let p99s: Vec<f64> = self.invoke.iter().map(|r| r.p99_us).collect();
        let _ = write!(out, "| **median** | **{}** | **{}** | | |\n\n", median_range(&p50s, 1), median_range(&p99s, 1));
        let _ = write!(
            out,
            "Targets: p50 ≤ {} µs ({}), p99 ≤ {} µs ({}).\n\n",
            targets::INVOKE_P50_US,
            targets::verdict(self.full, p50 <= targets::INVOKE_P50_US),
            targets::INVOKE_P99_US,
            targets::verdict(self.full, p99 <= targets::INVOKE_P99_US)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_group_thousands() {
        assert_eq!(number(1_234_567.0, 0), "1,234,567");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(1000.26, 1), "1,000.3");
        assert_eq!(number(-0.5, 1), "-0.5");
        assert_eq!(number(-12345.0, 0), "-12,345");
        assert_eq!(number(f64::NAN, 0), "NaN");
    }
}
