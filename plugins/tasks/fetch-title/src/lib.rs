//! `fetch-title`: `{"url": U, "proxy": P}` → `{"status": S, "title": T}`, T being the page's
//! `<title>` (null if it has none), fetched through proxy P if given (the caller binds a proxy
//! to the task).

use ignareo_sdk::{Error, html, http};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    url: String,
    proxy: Option<String>,
}

#[derive(Serialize)]
struct Output {
    status: u16,
    title: Option<String>,
}

fn run(input: Input) -> Result<Output, Error> {
    let Input { url, proxy } = input;
    let request = http::get(&url);
    let page = match proxy {
        Some(proxy) => request.proxy(&proxy).send()?,
        None => request.send()?,
    };
    Ok(Output { status: page.status(), title: html::title(&page.text()?) })
}

ignareo_sdk::task!(run);
