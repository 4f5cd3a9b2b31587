//! `fetch-title`: `{"url": U}` → `{"status": S, "title": T}`, T being the page's `<title>`
//! (null if it has none).

use ignareo_sdk::{Error, html, http};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    url: String,
}

#[derive(Serialize)]
struct Output {
    status: u16,
    title: Option<String>,
}

fn run(input: Input) -> Result<Output, Error> {
    let page = http::get(&input.url).send()?;
    Ok(Output { status: page.status(), title: html::title(&page.text()?) })
}

ignareo_sdk::task!(run);
