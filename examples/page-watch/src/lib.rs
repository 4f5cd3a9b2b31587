//! Polls a page until its body contains some text, the way a stock or price monitor does.
//!
//! Input:  `{"url": "...", "contains": "...", "interval_ms": 1000, "max_checks": 100}`
//! Output: `{"found": true, "checks": 3, "status": 200, "url": "..."}`, or `found: false`
//!         after `max_checks` checks. Each check is reported as progress; a fetch that fails is
//!         logged and retried at the next check.

use std::time::Duration;

use ignareo_sdk::http::Session;
use ignareo_sdk::{Error, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    url: String,
    contains: String,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_max_checks")]
    max_checks: u64,
}

fn default_interval_ms() -> u64 {
    1_000
}

fn default_max_checks() -> u64 {
    100
}

#[derive(Serialize)]
struct Output {
    found: bool,
    checks: u64,
    status: Option<u16>,
    url: String,
}

fn run(input: Input) -> Result<Output, Error> {
    if input.contains.is_empty() {
        return Err(Error::invalid_input("`contains` must not be empty"));
    }
    // One session for every check: cookies the site sets (consent, region) are kept.
    let session = Session::new();
    let mut status = None;
    for check in 1..=input.max_checks {
        match session.get(&input.url).timeout(Duration::from_secs(30)).send() {
            Ok(page) => {
                status = Some(page.status());
                if page.text()?.contains(&input.contains) {
                    log::info(format!("found {:?} at check {check}", input.contains));
                    return Ok(Output { found: true, checks: check, status, url: page.url().to_owned() });
                }
            }
            Err(e) => log::warn(format!("check {check}: {e}")),
        }
        ignareo_sdk::progress(check, Some(input.max_checks), Some("not there yet"));
        ignareo_sdk::sleep(Duration::from_millis(input.interval_ms));
    }
    Ok(Output { found: false, checks: input.max_checks, status, url: input.url })
}

ignareo_sdk::task!(run);
