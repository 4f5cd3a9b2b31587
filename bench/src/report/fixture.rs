//! A report of every scenario with made-up figures, for the report's own tests. The figures are
//! all different from one another, so that a test can tell which one a text took.

use std::collections::BTreeMap;

use super::Report;
use crate::chaos::ChaosResult;
use crate::crawl::{self, CrawlResult, CrawlRun};
use crate::guests::{GuestsResult, Language};
use crate::hostile::HostileResult;
use crate::hotswap::HotSwapResult;
use crate::invoke::InvokeResult;
use crate::outbound::OutboundResult;
use crate::restart::RestartResult;
use crate::sleepers::SleepersResult;
use crate::trigger::TriggerResult;

pub fn load_at(server: &'static str, requests_per_sec: f64, errors: u64) -> TriggerResult {
    TriggerResult { server, requests_per_sec, p50_ms: 1.23, p99_ms: 4.56, errors, socket_errors: 0 }
}

pub fn sleepers(count: usize, succeeded: usize) -> SleepersResult {
    SleepersResult {
        count,
        sleep_ms: 1000,
        idle_rss_mib: 41.0,
        peak_rss_mib: 93.0,
        most_running: count,
        all_started_secs: 0.57,
        peak_page_tables_mib: 13.0,
        pss_all_started_mib: Some(76.0),
        accept_secs: 0.11,
        finish_secs: 1.43,
        succeeded,
        map_count_note: String::new(),
    }
}

/// Every client at every concurrency; raw reqwest at the first concurrency with `failed` fetches
/// failed.
pub fn crawl(failed: usize) -> CrawlResult {
    let mut runs = Vec::new();
    for (c, concurrency) in crawl::CONCURRENCIES.into_iter().enumerate() {
        for (i, client) in crawl::CLIENTS.into_iter().enumerate() {
            let failed = if client == crawl::RAW && c == 0 { failed } else { 0 };
            let spread = (i + 5 * c) as f64;
            runs.push(CrawlRun {
                client,
                concurrency,
                fetched: 2000 - failed,
                failed,
                elapsed_s: 1.0 + spread / 7.0,
                cpu_s: 0.13 + spread / 11.0,
                startup_cpu_s: 0.017,
                peak_rss_mib: 21.0 + spread * 13.0,
                settings: format!("settings of {client}"),
            });
        }
    }
    CrawlResult {
        runs,
        host_settings: vec![("limits.max_running_tasks".into(), "2000".into(), "1024".into())],
        page_bytes: 1967,
    }
}

pub fn hostile(unanswered: u64, statuses: &[(u16, u64)], healthy_errors: u64) -> HostileResult {
    HostileResult {
        alone: vec![load_at("alone", 31_790.0, 0)],
        beside_hostile: vec![load_at("beside the hostile set", 26_970.0, healthy_errors)],
        hostile_tasks: 40,
        hostile_statuses: statuses.iter().copied().collect::<BTreeMap<_, _>>(),
        hostile_unanswered: unanswered,
        per_kind: vec![("memory-bomb", load_at("beside the hostile set", 22_393.0, 0))],
    }
}

/// A report of every scenario, with nothing failed.
pub fn clean(full: bool) -> Report {
    let mut report = Report::new("test", full);
    report.invoke = vec![InvokeResult { iterations: 2000, p50_us: 14.1, p99_us: 26.4, mean_us: 14.8 }];
    report.trigger = vec![load_at("ignareo", 20_552.0, 0), load_at("plain axum", 57_896.0, 0)];
    report.accept =
        crate::accept::labels().zip([20_451.0, 6_145.0, 9_573.0]).map(|(l, rps)| load_at(l, rps, 0)).collect();
    report.restart =
        Some(RestartResult { plugins: 50, component_bytes: 1, ready_secs: vec![0.03], compilations: vec![0] });
    report.crawl = Some(crawl(0));
    report.hotswap = Some(HotSwapResult {
        steady: vec![load_at("steady", 21_324.0, 0)],
        swapping: vec![load_at("swapping", 18_704.0, 0)],
        upload_ms: vec![249.0],
        failed_uploads: 0,
    });
    report.sleepers = vec![sleepers(1000, 1000)];
    report.outbound = Some(OutboundResult {
        sequential: vec![("bare reqwest", 78.4), ("policy layer", 80.7)],
        parallel: vec![("host: crawler task fetch-all, default cap (8 per host)".into(), 2000, 18_532.0)],
        page_bytes: 1967,
    });
    report.chaos = Some(ChaosResult {
        direct: vec![load_at("direct", 49_506.0, 0)],
        through: vec![load_at("through chaos-proxy", 27_211.0, 0)],
        speed: vec![(1_000_000, 998_169.0)],
    });
    report.hostile = Some(hostile(0, &[(502, 20), (504, 20)], 0));
    report.guests = Some(guests(1000));
    report
}

/// The guests' figures, the sleeping tasks of each language all succeeded but `lost`.
pub fn guests(succeeded: usize) -> GuestsResult {
    let invoke = |p50_us| InvokeResult { iterations: 200, p50_us, p99_us: p50_us * 1.7, mean_us: p50_us * 1.1 };
    let mut python = sleepers(1000, succeeded);
    python.peak_rss_mib = 2_345.0;
    let mut javascript = sleepers(1000, 1000);
    javascript.peak_rss_mib = 3_456.0;
    GuestsResult {
        invoke: vec![
            (Language::Rust, invoke(13.7)),
            (Language::Python, invoke(1_234.0)),
            (Language::JavaScript, invoke(876.0)),
        ],
        trigger: vec![
            (Language::Rust, load_at("Rust", 21_111.0, 0)),
            (Language::Python, load_at("Python", 654.0, 0)),
            (Language::JavaScript, load_at("JavaScript", 987.0, 0)),
        ],
        sleepers: vec![(Language::Python, python), (Language::JavaScript, javascript)],
        skipped: vec!["10000 Python tasks: too many".to_owned()],
    }
}
