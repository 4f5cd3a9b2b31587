//! Schedules: tasks that start on their own at their times, as ordinary recorded tasks linked
//! to their schedule; never overlapping themselves unless told; paused, resumed, deleted;
//! kept across restarts, with a run missed while the host was down made up once.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::time::{Duration, Instant};

use ignareo_e2e::{Host, TOKEN, TempDir, now_ms};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// (status, JSON body) of a request with the admin token, or with `token`.
async fn call(host: &Host, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = host.client.request(method.parse().unwrap(), host.url(path)).bearer_auth(token.unwrap_or(TOKEN));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// The runs of a schedule, oldest first.
async fn runs(host: &Host, schedule: &str) -> Vec<Value> {
    let listed = host.get_json(&format!("/v1/tasks?schedule={schedule}&limit=1000")).await;
    let mut tasks = listed["tasks"].as_array().unwrap().clone();
    tasks.sort_by_key(|t| t["submitted_at_ms"].as_u64());
    tasks
}

/// Polls `check` every 100 ms until it holds, for at most `limit`.
async fn eventually<F: std::future::Future<Output = bool>>(limit: Duration, mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check().await
}

#[tokio::test]
async fn schedules_run_at_their_times_as_tasks_linked_to_them() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;

    let defined_at = now_ms();
    let (status, every) = call(
        &host,
        "PUT",
        "/v1/schedules/every-second",
        None,
        Some(json!({"plugin": "hello", "input": {"name": "tick"}, "interval_secs": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{every}");
    assert_eq!(every["plugin"], "hello");
    assert_eq!(every["input"], json!({"name": "tick"}));
    assert_eq!(every["interval_secs"], 1);
    assert_eq!(
        (every["overlap"].clone(), every["paused"].clone(), every["runs"].clone()),
        (json!(false), json!(false), json!(0))
    );
    let next = every["next_run_at_ms"].as_u64().unwrap();
    assert!((defined_at + 900..=defined_at + 1_200).contains(&next), "an interval counts from the definition: {every}");

    let (status, cron) = call(
        &host,
        "PUT",
        "/v1/schedules/even-seconds",
        None,
        Some(json!({"plugin": "hello", "cron": "*/2 * * * * *"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cron}");

    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let ticks = runs(&host, "every-second").await;
    assert!((3..=5).contains(&ticks.len()), "about one run a second: {ticks:?}");
    for task in &ticks {
        assert_eq!(task["schedule"], "every-second");
        let ended = host.wait(task["id"].as_str().unwrap(), 10).await;
        assert_eq!(ended["state"], "succeeded", "{ended}");
        assert_eq!(ended["output"], json!({"hello": {"name": "tick"}}), "each run gets the schedule's input: {ended}");
    }
    for pair in ticks.windows(2) {
        let gap = pair[1]["submitted_at_ms"].as_u64().unwrap() - pair[0]["submitted_at_ms"].as_u64().unwrap();
        assert!((700..=1_500).contains(&gap), "runs a second apart, not {gap} ms: {ticks:?}");
    }
    let evens = runs(&host, "even-seconds").await;
    assert!((1..=3).contains(&evens.len()), "{evens:?}");
    for task in &evens {
        let at = task["submitted_at_ms"].as_u64().unwrap();
        assert!(at % 2_000 < 700, "a run of */2 seconds starts on an even second, not at {at}");
    }

    let shown = host.get_json("/v1/schedules/every-second").await;
    assert!(shown["runs"].as_u64().unwrap() >= ticks.len() as u64, "{shown}");
    assert!(
        shown["last_run_at_ms"].as_u64().unwrap() >= ticks.last().unwrap()["submitted_at_ms"].as_u64().unwrap(),
        "{shown}"
    );
    assert!(shown["next_run_at_ms"].as_u64().unwrap() > shown["last_run_at_ms"].as_u64().unwrap(), "{shown}");
    let listed = host.get_json("/v1/schedules").await;
    let names: Vec<&str> =
        listed["schedules"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["even-seconds", "every-second"]);

    // Defined anew: counts kept, 200.
    let (status, redefined) =
        call(&host, "PUT", "/v1/schedules/every-second", None, Some(json!({"plugin": "hello", "interval_secs": 60})))
            .await;
    assert_eq!(status, StatusCode::OK, "{redefined}");
    assert_eq!(redefined["interval_secs"], 60);
    assert!(redefined["runs"].as_u64().unwrap() >= ticks.len() as u64, "{redefined}");
}

#[tokio::test]
async fn a_schedule_does_not_overlap_itself_unless_told_to() {
    let host = Host::start().await;
    host.upload("sleep", "sleep").await;
    let slow = json!({"ms": 2_500});
    let (status, _) = call(
        &host,
        "PUT",
        "/v1/schedules/alone",
        None,
        Some(json!({"plugin": "sleep", "input": slow, "interval_secs": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &host,
        "PUT",
        "/v1/schedules/crowd",
        None,
        Some(json!({"plugin": "sleep", "input": slow, "interval_secs": 1, "overlap": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(6_500)).await;

    let alone = runs(&host, "alone").await;
    assert!((2..=3).contains(&alone.len()), "a 2.5 s run every second without overlap: {alone:?}");
    for pair in alone.windows(2) {
        let first = host.wait(pair[0]["id"].as_str().unwrap(), 10).await;
        let next_started = pair[1]["started_at_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(first["finished_at_ms"].as_u64().unwrap() <= next_started, "runs overlapped: {first} and {}", pair[1]);
    }
    let shown = host.get_json("/v1/schedules/alone").await;
    assert!(shown["skipped"].as_u64().unwrap() >= 2, "runs that came due during the previous one are skipped: {shown}");

    let crowd = runs(&host, "crowd").await;
    assert!(crowd.len() >= 5, "with overlap every due run starts: {crowd:?}");
    let running_at_once = crowd.iter().filter(|t| t["state"] == "running").count();
    assert!(running_at_once >= 2, "overlapping runs: {crowd:?}");
    assert_eq!(host.get_json("/v1/schedules/crowd").await["skipped"], 0);
}

#[tokio::test]
async fn schedules_pause_resume_and_delete() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let (status, _) =
        call(&host, "PUT", "/v1/schedules/tick", None, Some(json!({"plugin": "hello", "interval_secs": 1}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(eventually(Duration::from_secs(5), || async { !runs(&host, "tick").await.is_empty() }).await);

    let (status, paused) = call(&host, "POST", "/v1/schedules/tick/pause", None, None).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!((paused["paused"].clone(), paused["next_run_at_ms"].clone()), (json!(true), Value::Null));
    let before = runs(&host, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(runs(&host, "tick").await.len(), before, "a paused schedule does not run");

    let (status, resumed) = call(&host, "POST", "/v1/schedules/tick/resume", None, None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert!(
        resumed["next_run_at_ms"].as_u64().unwrap() > now_ms() - 100,
        "no catching up on runs missed while paused: {resumed}"
    );
    assert!(
        eventually(Duration::from_secs(5), || async { runs(&host, "tick").await.len() > before }).await,
        "a resumed schedule runs again"
    );

    let (status, _) = call(&host, "DELETE", "/v1/schedules/tick", None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = call(&host, "GET", "/v1/schedules/tick", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = runs(&host, "tick").await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs(&host, "tick").await.len(), after, "a deleted schedule does not run");
    for (method, path) in
        [("DELETE", "/v1/schedules/tick"), ("POST", "/v1/schedules/tick/pause"), ("POST", "/v1/schedules/tick/resume")]
    {
        assert_eq!(call(&host, method, path, None, None).await.0, StatusCode::NOT_FOUND, "{method} {path}");
    }
}

#[tokio::test]
async fn bad_definitions_are_refused_with_the_reason() {
    let host = Host::start_with_config("[limits]\nmax_schedules = 2\n", &[]).await;
    host.upload("hello", "hello").await;
    let refused = [
        (json!({"plugin": "hello"}), StatusCode::BAD_REQUEST, "cron"),
        (json!({"plugin": "hello", "cron": "* * * * *", "interval_secs": 5}), StatusCode::BAD_REQUEST, "not both"),
        (json!({"plugin": "hello", "cron": "every minute"}), StatusCode::BAD_REQUEST, "invalid cron expression"),
        (json!({"plugin": "hello", "cron": null}), StatusCode::BAD_REQUEST, "null"),
        (json!({"plugin": "hello", "interval_secs": 0}), StatusCode::BAD_REQUEST, "interval"),
        (json!({"plugin": "hello", "interval_secs": 5, "timeout_secs": 100_000}), StatusCode::BAD_REQUEST, "limit"),
        (json!({"plugin": "hello", "interval_secs": 5, "every": 5}), StatusCode::BAD_REQUEST, "unknown field"),
        (json!({"plugin": "nope", "interval_secs": 5}), StatusCode::UNPROCESSABLE_ENTITY, "upload it"),
    ];
    for (body, status, says) in refused {
        let (got, error) = call(&host, "PUT", "/v1/schedules/bad", None, Some(body.clone())).await;
        assert_eq!(got, status, "{body} -> {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(says), "{body} -> {error}");
    }
    let (status, error) =
        call(&host, "PUT", "/v1/schedules/Bad%20Name", None, Some(json!({"plugin": "hello", "interval_secs": 5})))
            .await;
    assert_eq!((status, error["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_name")));

    for name in ["one", "two"] {
        assert_eq!(
            call(
                &host,
                "PUT",
                &format!("/v1/schedules/{name}"),
                None,
                Some(json!({"plugin": "hello", "interval_secs": 3600}))
            )
            .await
            .0,
            StatusCode::CREATED
        );
    }
    let (status, error) =
        call(&host, "PUT", "/v1/schedules/three", None, Some(json!({"plugin": "hello", "interval_secs": 3600}))).await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("too_many_schedules")),
        "{error}"
    );
    assert_eq!(
        call(&host, "PUT", "/v1/schedules/two", None, Some(json!({"plugin": "hello", "interval_secs": 60}))).await.0,
        StatusCode::OK,
        "redefining is not adding"
    );

    // A trigger token schedules the plugins it may run, and sees and changes only its own schedules.
    let (_, created) = call(
        &host,
        "POST",
        "/v1/tokens",
        None,
        Some(json!({"name": "cron", "scopes": ["trigger"], "plugins": ["hello"]})),
    )
    .await;
    let trigger = created["token"].as_str().unwrap();
    assert_eq!(
        call(
            &host,
            "PUT",
            "/v1/schedules/mine",
            Some(trigger),
            Some(json!({"plugin": "hello", "interval_secs": 3600}))
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(call(&host, "DELETE", "/v1/schedules/one", None, None).await.0, StatusCode::NO_CONTENT);
    let (status, mine) = call(
        &host,
        "PUT",
        "/v1/schedules/mine",
        Some(trigger),
        Some(json!({"plugin": "hello", "interval_secs": 3600})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let (_, listed) = call(&host, "GET", "/v1/schedules", Some(trigger), None).await;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(call(&host, "GET", "/v1/schedules/two", Some(trigger), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&host, "POST", "/v1/schedules/two/pause", Some(trigger), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&host, "PUT", "/v1/schedules/two", Some(trigger), Some(json!({"plugin": "hello", "interval_secs": 5})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&host, "POST", "/v1/schedules/mine/pause", Some(trigger), None).await.0, StatusCode::OK);
    host.upload("sleep", "sleep").await;
    let (status, error) =
        call(&host, "PUT", "/v1/schedules/mine", Some(trigger), Some(json!({"plugin": "sleep", "interval_secs": 5})))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
}

#[tokio::test]
async fn schedules_survive_a_restart_and_a_missed_run_runs_once() {
    let data_dir = TempDir::new("schedules");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    host.upload("hello", "hello").await;
    let (status, defined) =
        call(&host, "PUT", "/v1/schedules/every-4s", None, Some(json!({"plugin": "hello", "interval_secs": 4}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &host,
        "PUT",
        "/v1/schedules/held",
        None,
        Some(json!({"plugin": "hello", "interval_secs": 1, "paused": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let defined_at = defined["updated_at_ms"].as_u64().unwrap();
    host.kill().await;

    // Down past two of its times (defined_at + 4 s and + 8 s).
    let back_at = defined_at + 8_700;
    tokio::time::sleep(Duration::from_millis(back_at.saturating_sub(now_ms()))).await;
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    assert!(
        eventually(Duration::from_secs(3), || async { host.get_json("/v1/schedules/every-4s").await["runs"] == 1 })
            .await,
        "the missed runs are made up once: {}",
        host.get_json("/v1/schedules/every-4s").await
    );
    let made_up = runs(&host, "every-4s").await;
    assert_eq!(made_up.len(), 1, "{made_up:?}");
    assert_eq!(host.wait(made_up[0]["id"].as_str().unwrap(), 10).await["state"], "succeeded");
    let shown = host.get_json("/v1/schedules/every-4s").await;
    assert_eq!(shown["next_run_at_ms"].as_u64(), Some(defined_at + 12_000), "then it keeps to its times: {shown}");
    let held = host.get_json("/v1/schedules/held").await;
    assert_eq!((held["paused"].clone(), held["runs"].clone()), (json!(true), json!(0)), "{held}");

    // At its next time it runs again, once.
    tokio::time::sleep(Duration::from_millis((defined_at + 12_700).saturating_sub(now_ms()))).await;
    assert!(
        eventually(Duration::from_secs(3), || async { runs(&host, "every-4s").await.len() == 2 }).await,
        "{:?}",
        runs(&host, "every-4s").await
    );
    host.terminate().await;
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    let after = host.get_json("/v1/schedules/every-4s").await;
    assert_eq!(after["runs"], 2, "runs are counted across restarts: {after}");
    assert_eq!(runs(&host, "every-4s").await.len(), 2, "and their tasks are kept");
}

/// Creates a trigger token for `plugins`: (id, token).
async fn trigger_token(host: &Host, name: &str, plugins: &[&str]) -> (String, String) {
    let request = json!({"name": name, "scopes": ["trigger"], "plugins": plugins});
    let (status, created) = call(host, "POST", "/v1/tokens", None, Some(request)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned())
}

/// A token is revoked while its schedule runs every second: the schedule starts no more
/// runs, reads paused, and its `last_error` says the token was revoked.
#[tokio::test]
async fn a_revoked_tokens_schedules_stop_and_say_why() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let (id, token) = trigger_token(&host, "cron", &["hello"]).await;
    let definition = json!({"plugin": "hello", "interval_secs": 1});
    assert_eq!(call(&host, "PUT", "/v1/schedules/tick", Some(&token), Some(definition)).await.0, StatusCode::CREATED);
    assert!(eventually(Duration::from_secs(10), || async { !runs(&host, "tick").await.is_empty() }).await);

    assert_eq!(call(&host, "DELETE", &format!("/v1/tokens/{id}"), None, None).await.0, StatusCode::NO_CONTENT);
    let (_, stopped) = call(&host, "GET", "/v1/schedules/tick", None, None).await;
    assert_eq!((stopped["paused"].as_bool(), stopped["next_run_at_ms"].as_u64()), (Some(true), None), "{stopped}");
    let reason = stopped["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("token {id} was revoked")), "{stopped}");
    // A run accepted just before the revocation may still appear; none after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = runs(&host, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(runs(&host, "tick").await.len(), before, "a revoked token's schedule runs no more");

    // Resumed by an admin, it is still the revoked token's: its next run is refused at once.
    assert_eq!(call(&host, "POST", "/v1/schedules/tick/resume", None, None).await.0, StatusCode::OK);
    let paused_again = eventually(Duration::from_secs(5), || async {
        call(&host, "GET", "/v1/schedules/tick", None, None).await.1["paused"] == json!(true)
    })
    .await;
    assert!(paused_again, "a scheduled run checks its token when it runs");
    assert_eq!(runs(&host, "tick").await.len(), before);
}

/// Two tokens race to define the same schedule names: each name ends up defined by exactly
/// one of them, and the other is refused (the owner check and the change are one step).
#[tokio::test]
async fn two_tokens_racing_for_a_schedule_cannot_both_own_it() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let (_, first) = trigger_token(&host, "first", &["hello"]).await;
    let (_, second) = trigger_token(&host, "second", &["hello"]).await;
    let definition = json!({"plugin": "hello", "interval_secs": 3600, "paused": true});
    let put = |name: String, token: &str| {
        let (host, token, definition) = (&host, token.to_owned(), definition.clone());
        async move { call(host, "PUT", &format!("/v1/schedules/{name}"), Some(&token), Some(definition)).await.0 }
    };
    for i in 0..20 {
        let name = format!("race-{i}");
        let (a, b) = tokio::join!(put(name.clone(), &first), put(name.clone(), &second));
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::FORBIDDEN],
            "{name}: one defines it, the other is refused"
        );
    }
}
