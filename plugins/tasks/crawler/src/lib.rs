//! `crawler`: `{"urls": [..], "concurrency": C, "retries": R}` → fetches every URL with
//! `fetch_all`, at most C at a time, each tried up to R times (default 1: no retry) →
//! `{"fetched": n, "failed": m, "titles": [..]}`, titles in input order, null where the fetch
//! failed (an error, or a 4xx/5xx answer).

use ignareo_sdk::http::{self, Retry};
use ignareo_sdk::{Error, html, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    urls: Vec<String>,
    concurrency: Option<u32>,
    retries: Option<u32>,
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
    let retry = input.retries.filter(|&n| n > 1).map(Retry::attempts);
    let requests = input
        .urls
        .iter()
        .map(|url| match &retry {
            Some(policy) => http::get(url).retry(policy.clone()).build(),
            None => http::get(url).build(),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = http::fetch_all(requests, input.concurrency);
    let total = input.urls.len() as u64;
    let mut output = Output { fetched: 0, failed: 0, titles: Vec::with_capacity(results.len()) };
    for (url, result) in input.urls.into_iter().zip(results) {
        match result.and_then(http::Response::error_for_status) {
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
    ignareo_sdk::progress(output.fetched as u64, Some(total), None);
    Ok(output)
}

ignareo_sdk::task!(run);
