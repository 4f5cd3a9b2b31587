//! Checks that Python and JavaScript plugins share: their `limits` fixtures
//! (`plugins/fixtures-python/py-limits`, `plugins/fixtures-js/js-limits`) take the same input.

use std::time::Duration;

use serde_json::json;

use crate::Host;
use crate::target::Target;

/// A guest's task ends at each limit as a Rust one does: past its memory limit, at its deadline
/// while it sleeps and while it waits for an answer, and cancelled in the middle of a request.
/// `plugin` is a `limits` fixture granted `target`.
pub async fn assert_each_limit_ends_the_task(host: &Host, target: &Target, plugin: &str) {
    // A gigabyte: past the task's memory limit (128 MiB by default).
    let (status, body) = host.run(plugin, &json!({"kind": "memory"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("memory_limit")), "{body}");
    assert_eq!(host.run(plugin, &json!({"kind": "memory", "mib": 8})).await, (200, json!({"held": 8 << 20})));

    for input in [json!({"kind": "sleep", "ms": 30_000}), json!({"kind": "fetch", "url": target.url("/slow?ms=30000")})]
    {
        let url = host.url(&format!("/v1/plugins/{plugin}/run?timeout=1"));
        let response = host.client.post(url).json(&input).send().await.expect("the host answers");
        assert_eq!(response.status(), 504, "{input}");
    }

    let id = host.submit(plugin, &json!({"kind": "fetch", "url": target.url("/slow?ms=30000")})).await;
    while host.get_json(&format!("/v1/tasks/{id}")).await["state"] != "running" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancel = host.client.delete(host.url(&format!("/v1/tasks/{id}"))).send().await.expect("the host answers");
    assert_eq!(cancel.status(), 200);
    assert_eq!(host.wait(&id, 10).await["state"], "cancelled");
}
