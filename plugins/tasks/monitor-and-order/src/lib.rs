//! `monitor-and-order`: the flash-sale bot. `{"shop": BASE_URL, "item": ID, "poll_ms": N}` →
//! opens the shop (which sets a session cookie), polls `GET {shop}/api/items/{item}` every N ms
//! until `in_stock` is true, then `POST {shop}/api/orders` with the same cookies →
//! `{"order_id": .., "polls": k}`.

use std::time::Duration;

use ignareo_sdk::http::Session;
use ignareo_sdk::{Error, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    shop: String,
    item: String,
    poll_ms: u64,
}

#[derive(Deserialize)]
struct Item {
    in_stock: bool,
}

#[derive(Deserialize)]
struct Order {
    order_id: serde_json::Value,
}

#[derive(Serialize)]
struct Output {
    order_id: serde_json::Value,
    polls: u64,
}

fn run(input: Input) -> Result<Output, Error> {
    let Input { shop, item, poll_ms } = input;
    let shop = shop.trim_end_matches('/');
    let session = Session::new();
    session.default_header("user-agent", "ignareo-monitor-and-order/0.1");
    session.get(&format!("{shop}/")).send()?.error_for_status()?;

    let item_url = format!("{shop}/api/items/{item}");
    let mut polls = 0;
    loop {
        polls += 1;
        let item: Item = session.get(&item_url).send()?.error_for_status()?.json()?;
        if item.in_stock {
            break;
        }
        ignareo_sdk::progress(polls, None, Some("waiting for stock"));
        ignareo_sdk::sleep(Duration::from_millis(poll_ms));
    }
    log::info(format!("item {item} in stock after {polls} polls; ordering"));

    let order: Order = session
        .post(&format!("{shop}/api/orders"))
        .form(&[("item", item.as_str()), ("quantity", "1")])
        .send()?
        .error_for_status()?
        .json()?;
    Ok(Output { order_id: order.order_id, polls })
}

ignareo_sdk::task!(run);
