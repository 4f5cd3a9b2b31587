//! {{name}}: an ignareo task. Input `{"url": "https://..."}`; output the page's status and
//! `<title>`, `{"status": 200, "title": "..."}`. Its manifest (`ignareo.toml`) must grant the
//! page's host.

use ignareo_sdk::http::Session;
use ignareo_sdk::{Error, html, log};
use serde::{Deserialize, Serialize};

/// The task's input: a request body that does not parse as this ends the task as invalid input.
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
    // A session keeps the cookies a site sets from one request to the next.
    let session = Session::new();
    let page = session.get(&input.url).send()?.error_for_status()?;
    let text = page.text()?;
    log::info(format!("{} answered {} bytes", page.url(), text.len()));
    Ok(Output { status: page.status(), title: html::title(&text) })
}

ignareo_sdk::task!(run);
