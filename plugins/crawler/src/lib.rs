//! `crawler`: `{"urls": [..], "concurrency": C}` → fetches every URL with `fetch_all`, at most C
//! at a time → `{"fetched": n, "failed": m, "titles": [..]}`, titles in input order, null where
//! the fetch failed (an error, or a 4xx/5xx answer).

use ignareo_sdk::http::{self, Request};
use ignareo_sdk::{Error, html, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    urls: Vec<String>,
    concurrency: Option<u32>,
}

#[derive(Serialize)]
struct Output {
    fetched: usize,
    failed: usize,
    titles: Vec<Option<String>>,
}

fn run(input: Input) -> Result<Output, Error> {
    if input.concurrency == Some(0) {
        return Err(Error::invalid_input("concurrency must be at least 1"));
    }
    let requests = input.urls.iter().map(|u| Request::get(u)).collect();
    let results = http::fetch_all(requests, input.concurrency);
    let mut output = Output { fetched: 0, failed: 0, titles: Vec::with_capacity(results.len()) };
    for (url, result) in input.urls.iter().zip(results) {
        match result.and_then(|r| r.error_for_status()) {
            Ok(page) => {
                output.fetched += 1;
                output.titles.push(Some(html::title(&page.text()?).unwrap_or_default()));
            }
            Err(e) => {
                log::warn(format!("{url}: {e}"));
                output.failed += 1;
                output.titles.push(None);
            }
        }
    }
    ignareo_sdk::progress(output.fetched as u64, Some(input.urls.len() as u64), None);
    Ok(output)
}

ignareo_sdk::task!(run);
