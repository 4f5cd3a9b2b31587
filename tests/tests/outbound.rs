//! Plugins that make HTTP calls, against local target sites: one page, a crawl of 1,000 URLs
//! with fan-out, and the monitor-and-order bot that needs its session's cookies.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::sync::atomic::Ordering;

use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, LOCAL_MANIFEST};
use serde_json::{Value, json};

#[tokio::test]
async fn fetch_title_reads_a_page_and_follows_redirects() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload_with("fetch-title", "fetch-title", LOCAL_MANIFEST).await;
    assert_eq!(
        host.run("fetch-title", &json!({"url": target.url("/page/7")})).await,
        (200, json!({"status": 200, "title": "Page 7"}))
    );
    assert_eq!(
        host.run("fetch-title", &json!({"url": target.url("/redirect")})).await.1,
        json!({"status": 200, "title": "Page 0"})
    );
    assert_eq!(
        host.run("fetch-title", &json!({"url": target.url("/status/404")})).await.1,
        json!({"status": 404, "title": null})
    );

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (status, body) = host.run("fetch-title", &json!({"url": format!("http://127.0.0.1:{closed_port}/")})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("connection failed"), "{body}");
    let (_, body) = host.run("fetch-title", &json!({"url": "ftp://127.0.0.1/file"})).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("denied"), "{body}");
    let (_, body) = host.run("fetch-title", &json!({"url": "not a url"})).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("invalid request"), "{body}");
}

#[tokio::test]
async fn the_crawler_fetches_a_thousand_local_urls() {
    let host = Host::start().await;
    let target = Target::start().await;
    host.upload_with("crawler", "crawler", LOCAL_MANIFEST).await;
    let urls: Vec<String> = (0..1000)
        .map(|i| if i % 100 == 99 { target.url("/status/503") } else { target.url(&format!("/page/{i}")) })
        .collect();
    let (status, body) = host.run("crawler", &json!({"urls": urls, "concurrency": 100})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fetched"], 990);
    assert_eq!(body["failed"], 10);
    let titles = body["titles"].as_array().unwrap();
    assert_eq!(titles.len(), 1000);
    for (i, title) in titles.iter().enumerate() {
        if i % 100 == 99 {
            assert_eq!(title, &Value::Null, "url {i} failed");
        } else {
            assert_eq!(title, &json!(format!("Page {i}")), "titles come back in input order");
        }
    }
    assert_eq!(target.requests.load(Ordering::Relaxed), 990);

    let (status, body) = host.run("crawler", &json!({"urls": [], "concurrency": 0})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_input")));
}

#[tokio::test]
async fn monitor_and_order_polls_until_stock_then_orders_with_the_session_cookie() {
    let host = Host::start().await;
    let target = Target::start_with_stock_after(4).await;
    host.upload_with("monitor-and-order", "monitor-and-order", LOCAL_MANIFEST).await;
    let input = json!({"shop": target.base, "item": "rtx-5090", "poll_ms": 50});
    let (status, body) = host.run("monitor-and-order", &input).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_id"], "order-1");
    assert_eq!(body["polls"], 4);
    let orders = target.shop.orders.lock().unwrap().clone();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].1, "rtx-5090");

    // Two bots at once keep separate sessions: each needs its own four polls.
    let (a, b) = tokio::join!(host.run("monitor-and-order", &input), host.run("monitor-and-order", &input));
    assert_eq!((a.1["polls"].as_u64(), b.1["polls"].as_u64()), (Some(4), Some(4)));
    let orders = target.shop.orders.lock().unwrap().clone();
    assert_eq!(orders.len(), 3);
    assert_ne!(orders[1].0, orders[2].0, "cookies never leak between tasks");
}

#[tokio::test]
async fn the_page_watch_example_polls_until_the_text_appears() {
    let host = Host::start().await;
    let target = Target::start_with_stock_after(3).await;
    host.upload_with("page-watch", "page-watch", LOCAL_MANIFEST).await;
    let input = json!({"url": target.url("/changing/a"), "contains": "In stock", "interval_ms": 20});
    let (status, body) = host.run("page-watch", &input).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["found"], true);
    assert_eq!(body["checks"], 3);
    let input = json!({"url": target.url("/changing/b"), "contains": "Never", "interval_ms": 1, "max_checks": 2});
    assert_eq!(host.run("page-watch", &input).await.1["found"], false);
}

#[tokio::test]
async fn responses_over_the_size_limit_are_refused_while_streaming() {
    let host = Host::start_with_config("[outbound]\nmax_response_mb = 1\n", &[]).await;
    let target = Target::start().await;
    host.upload_with("fetch-title", "fetch-title", LOCAL_MANIFEST).await;
    assert_eq!(host.run("fetch-title", &json!({"url": target.url("/big/1000")})).await.1["title"], "big");
    let (status, body) = host.run("fetch-title", &json!({"url": target.url("/big/2048")})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("larger than 1048576 bytes"), "{body}");
}
