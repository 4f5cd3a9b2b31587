//! The access model: every API route but `/healthz` and `/v1/openapi.json` needs a bearer
//! token; `admin`, `read` and `trigger` (per plugin) scopes allow what they name and get a 403
//! naming the missing scope otherwise; tokens are stored hashed and revoked at once, through
//! the API and the CLI.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use ignareo_e2e::{Host, TOKEN, TempDir, binary};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Creates a token through the API: (id, token).
async fn create_token(host: &Host, request: Value) -> (String, String) {
    let response = host.client.post(host.url("/v1/tokens")).json(&request).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "token request {request}");
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), body["token"].as_str().unwrap().to_owned())
}

/// (status, JSON body) of a request made with `token` (none if empty).
async fn call(host: &Host, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method.parse().unwrap(), host.url(path));
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))
        },
    )
}

#[tokio::test]
async fn every_route_but_health_needs_a_valid_token() {
    let host = Host::start().await;
    let routes = [
        ("GET", "/v1/plugins"),
        ("PUT", "/v1/plugins/hello"),
        ("GET", "/v1/plugins/hello"),
        ("DELETE", "/v1/plugins/hello"),
        ("POST", "/v1/plugins/hello/rollback"),
        ("POST", "/v1/plugins/hello/run"),
        ("POST", "/v1/plugins/hello/tasks"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/6f1c1a52-4a5e-4c43-9d0e-0c1c7a4f0a11"),
        ("DELETE", "/v1/tasks/6f1c1a52-4a5e-4c43-9d0e-0c1c7a4f0a11"),
        ("GET", "/v1/tasks/6f1c1a52-4a5e-4c43-9d0e-0c1c7a4f0a11/events"),
        ("GET", "/v1/schedules"),
        ("PUT", "/v1/schedules/nightly"),
        ("GET", "/v1/schedules/nightly"),
        ("DELETE", "/v1/schedules/nightly"),
        ("POST", "/v1/schedules/nightly/pause"),
        ("POST", "/v1/schedules/nightly/resume"),
        ("GET", "/v1/tokens"),
        ("POST", "/v1/tokens"),
        ("DELETE", "/v1/tokens/0123456789abcdef"),
        ("GET", "/v1/config"),
    ];
    for (method, path) in routes {
        for token in ["", "not-a-token", "ign_0123456789abcdef_00"] {
            let (status, body) = call(&host, method, path, token, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}");
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
            assert!(body["error"]["message"].as_str().unwrap().contains("token"), "{body}");
        }
    }
    let basic =
        reqwest::Client::new().get(host.url("/v1/plugins")).basic_auth("admin", Some(TOKEN)).send().await.unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(basic.headers()["www-authenticate"], "Bearer");
    let (status, _) = call(&host, "GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, config) = call(&host, "GET", "/v1/config", TOKEN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(config["limits"]["max_running_tasks"].is_u64() && config.get("token").is_none(), "{config}");
}

#[tokio::test]
async fn scopes_allow_what_they_name_and_refuse_the_rest_with_403() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    host.upload("sleep", "sleep").await;
    let (_, reader) = create_token(&host, json!({"name": "dashboard", "scopes": ["read"]})).await;
    let (_, trigger) =
        create_token(&host, json!({"name": "bot", "scopes": ["trigger"], "plugins": ["hello", "sleep"]})).await;
    let (_, other_trigger) =
        create_token(&host, json!({"name": "other bot", "scopes": ["trigger"], "plugins": ["*"]})).await;
    let (_, second_admin) = create_token(&host, json!({"name": "ops", "scopes": ["admin"]})).await;

    // read: lists and shows, nothing else.
    assert_eq!(call(&host, "GET", "/v1/plugins", &reader, None).await.0, StatusCode::OK);
    assert_eq!(call(&host, "GET", "/v1/plugins/hello", &reader, None).await.0, StatusCode::OK);
    assert_eq!(call(&host, "GET", "/v1/tasks", &reader, None).await.0, StatusCode::OK);
    let (status, body) = call(&host, "POST", "/v1/plugins/hello/run", &reader, Some(json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert!(body["error"]["message"].as_str().unwrap().contains("trigger scope"), "{body}");
    for (method, path) in [
        ("DELETE", "/v1/plugins/hello"),
        ("POST", "/v1/plugins/hello/rollback"),
        ("GET", "/v1/tokens"),
        ("GET", "/v1/config"),
    ] {
        let (status, body) = call(&host, method, path, &reader, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(body["error"]["message"].as_str().unwrap().contains("admin scope"), "{body}");
    }
    let upload = reqwest::Client::new()
        .put(host.url("/v1/plugins/x"))
        .bearer_auth(&reader)
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::FORBIDDEN);

    // trigger: runs its plugins, not others; reads and cancels only its own tasks.
    let (status, output) = call(&host, "POST", "/v1/plugins/hello/run", &trigger, Some(json!({"n": 1}))).await;
    assert_eq!((status, output), (StatusCode::OK, json!({"hello": {"n": 1}})));
    host.upload("chatter", "chatter").await;
    let (status, body) = call(&host, "POST", "/v1/plugins/chatter/run", &trigger, Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"].as_str().unwrap().contains("\"chatter\""), "{body}");
    assert_eq!(call(&host, "GET", "/v1/plugins", &trigger, None).await.0, StatusCode::FORBIDDEN);

    let (status, mine) = call(&host, "POST", "/v1/plugins/sleep/tasks", &trigger, Some(json!({"ms": 30000}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mine = mine["id"].as_str().unwrap().to_owned();
    let admins = host.submit("hello", &json!({})).await;
    let (_, theirs) = call(&host, "POST", "/v1/plugins/hello/tasks", &other_trigger, Some(json!({}))).await;
    let theirs = theirs["id"].as_str().unwrap().to_owned();

    assert_eq!(call(&host, "GET", &format!("/v1/tasks/{mine}"), &trigger, None).await.0, StatusCode::OK);
    for id in [&admins, &theirs] {
        let (status, body) = call(&host, "GET", &format!("/v1/tasks/{id}"), &trigger, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "another caller's task is invisible"
        );
        assert_eq!(
            call(&host, "GET", &format!("/v1/tasks/{id}/events"), &trigger, None).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(call(&host, "DELETE", &format!("/v1/tasks/{id}"), &trigger, None).await.0, StatusCode::NOT_FOUND);
    }
    let (_, listed) = call(&host, "GET", "/v1/tasks?limit=1000", &trigger, None).await;
    let listed: Vec<&str> = listed["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(
        listed.contains(&mine.as_str()) && !listed.contains(&admins.as_str()) && !listed.contains(&theirs.as_str()),
        "{listed:?}"
    );
    let (_, all) = call(&host, "GET", "/v1/tasks?limit=1000", &reader, None).await;
    assert!(all["tasks"].as_array().unwrap().len() >= 4, "read sees every task");

    // read may look at the task, not cancel it; its submitter may.
    assert_eq!(call(&host, "GET", &format!("/v1/tasks/{mine}"), &reader, None).await.0, StatusCode::OK);
    assert_eq!(call(&host, "DELETE", &format!("/v1/tasks/{mine}"), &reader, None).await.0, StatusCode::FORBIDDEN);
    let (status, cancelled) = call(&host, "DELETE", &format!("/v1/tasks/{mine}"), &trigger, None).await;
    assert_eq!((status, cancelled["state"].as_str()), (StatusCode::OK, Some("cancelled")));

    // A created admin token manages plugins and tokens.
    let upload = reqwest::Client::new()
        .put(host.url("/v1/plugins/hello2"))
        .bearer_auth(&second_admin)
        .body(ignareo_e2e::plugin_bytes("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    assert_eq!(call(&host, "GET", "/v1/tokens", &second_admin, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn tokens_are_stored_hashed_survive_restarts_and_die_when_revoked() {
    let data_dir = TempDir::new("tokens");
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    host.upload("hello", "hello").await;
    let (kept_id, kept) =
        create_token(&host, json!({"name": "kept", "scopes": ["read", "trigger"], "plugins": ["hello"]})).await;
    let (gone_id, gone) = create_token(&host, json!({"name": "gone", "scopes": ["read"]})).await;
    assert!(kept.starts_with(&format!("ign_{kept_id}_")) && kept.len() > 80, "{kept}");

    // The store and its write-ahead log, as on disk now.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(&host.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("ignareo.db") {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    let written = |text: &str| stored.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(written(&kept_id) && written(&gone_id), "the token records are in the store");
    for token in [&kept, &gone] {
        assert!(!written(token.rsplit('_').next().unwrap()), "a secret was written to disk");
    }
    let (_, listed) = call(&host, "GET", "/v1/tokens", TOKEN, None).await;
    let listed = listed["tokens"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|t| t.get("token").is_none() && t.get("sha256").is_some()), "{listed:?}");
    let kept_view = listed.iter().find(|t| t["id"] == kept_id.as_str()).unwrap();
    assert_eq!(
        (&kept_view["name"], &kept_view["scopes"], &kept_view["plugins"]),
        (&json!("kept"), &json!(["read", "trigger"]), &json!(["hello"]))
    );

    assert_eq!(call(&host, "GET", "/v1/plugins", &gone, None).await.0, StatusCode::OK);
    assert_eq!(call(&host, "DELETE", &format!("/v1/tokens/{gone_id}"), TOKEN, None).await.0, StatusCode::NO_CONTENT);
    let (status, body) = call(&host, "GET", "/v1/plugins", &gone, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked at once: {body}");
    let (status, body) = call(&host, "DELETE", &format!("/v1/tokens/{gone_id}"), TOKEN, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    host.terminate().await;
    let host = Host::start_in(data_dir.path(), &[]).await.unwrap();
    let (status, body) = call(&host, "POST", "/v1/plugins/hello/run", &kept, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(call(&host, "GET", "/v1/plugins", &gone, None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_token_requests_are_refused_naming_the_problem() {
    let host = Host::start_with_config("[limits]\nmax_tokens = 2\n", &[]).await;
    let cases = [
        (json!({"name": "x", "scopes": []}), "at least one"),
        (json!({"name": "x", "scopes": ["root"]}), "unknown variant"),
        (json!({"name": "x", "scopes": ["trigger"]}), "needs \\\"plugins\\\""),
        (json!({"name": "x", "scopes": ["read"], "plugins": ["hello"]}), "trigger scope only"),
        (json!({"name": "x", "scopes": ["trigger"], "plugins": ["../../etc"]}), "not a plugin name"),
        (json!({"name": "", "scopes": ["read"]}), "name must be"),
        (json!({"name": "x", "scopes": ["read"], "admin": true}), "unknown field"),
        (json!("read"), "invalid token request"),
    ];
    for (request, expected) in cases {
        let (status, body) = call(&host, "POST", "/v1/tokens", TOKEN, Some(request.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert!(body.to_string().contains(expected), "{request}: expected {expected:?} in {body}");
    }
    create_token(&host, json!({"name": "a", "scopes": ["read"]})).await;
    create_token(&host, json!({"name": "b", "scopes": ["read"]})).await;
    let (status, body) = call(&host, "POST", "/v1/tokens", TOKEN, Some(json!({"name": "c", "scopes": ["read"]}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("too_many_tokens")));
    assert!(body["error"]["message"].as_str().unwrap().contains("limits.max_tokens"));
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let tokens = |args: &[&str]| {
        let output = std::process::Command::new(binary())
            .arg("tokens")
            .args(args)
            .args(["--url", &host.base, "--token", TOKEN])
            .env_remove("IGNAREO_TOKEN")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = tokens(&["create", "--name", "ci", "--scope", "trigger", "--plugin", "hello"]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let (id, token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    assert_eq!(call(&host, "POST", "/v1/plugins/hello/run", token, Some(json!({}))).await.0, StatusCode::OK);

    let (ok, out, _) = tokens(&["list"]);
    assert!(ok && out.contains(id) && out.contains("trigger") && !out.contains(token), "{out}");

    let (ok, _, err) = tokens(&["create", "--name", "bad", "--scope", "trigger"]);
    assert!(!ok && err.contains("400") && err.contains("plugins"), "{err}");

    let (ok, out, err) = tokens(&["revoke", id]);
    assert!(ok && out.contains(id), "{err}");
    assert_eq!(call(&host, "POST", "/v1/plugins/hello/run", token, Some(json!({}))).await.0, StatusCode::UNAUTHORIZED);
    let (ok, _, err) = tokens(&["revoke", id]);
    assert!(!ok && err.contains("404"), "{err}");
}

#[tokio::test]
async fn task_ids_are_random_uuids() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let id = host.submit("hello", &json!({})).await;
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 4, "{id}");
        assert!(seen.insert(id));
    }
}

#[tokio::test]
async fn the_openapi_document_is_public_and_describes_every_route() {
    let host = Host::start().await;
    let (status, doc) = call(&host, "GET", "/v1/openapi.json", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    for expected in [
        "GET /healthz",
        "GET /v1/openapi.json",
        "GET /v1/config",
        "GET /v1/plugins",
        "PUT /v1/plugins/{name}",
        "GET /v1/plugins/{name}",
        "DELETE /v1/plugins/{name}",
        "POST /v1/plugins/{name}/rollback",
        "POST /v1/plugins/{name}/run",
        "POST /v1/plugins/{name}/tasks",
        "POST /v1/plugins/{name}/tasks:batch",
        "GET /v1/tasks",
        "GET /v1/tasks/{id}",
        "DELETE /v1/tasks/{id}",
        "GET /v1/tasks/{id}/events",
        "GET /v1/schedules",
        "PUT /v1/schedules/{name}",
        "GET /v1/schedules/{name}",
        "DELETE /v1/schedules/{name}",
        "POST /v1/schedules/{name}/pause",
        "POST /v1/schedules/{name}/resume",
        "POST /v1/tokens",
        "GET /v1/tokens",
        "DELETE /v1/tokens/{id}",
    ] {
        assert!(operations.contains(&expected.to_owned()), "{expected} is not in the document: {operations:?}");
    }
    // An HTTP plugin takes every method.
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"] {
        let expected = format!("{method} /v1/plugins/{{name}}/http/{{path}}");
        assert!(operations.contains(&expected), "{expected} is not in the document: {operations:?}");
    }
    assert_eq!(operations.len(), 32, "{operations:?}");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The document carries this host's limits.
    let run = &doc["paths"]["/v1/plugins/{name}/run"]["post"]["parameters"];
    let timeout = run.as_array().unwrap().iter().find(|p| p["name"] == "timeout").unwrap();
    assert_eq!(timeout["schema"]["maximum"], 300);
    assert_eq!(doc["components"]["schemas"]["Batch"]["properties"]["inputs"]["maxItems"], 10_000);
}

/// A scoped token reaches past its scope through a task: it may trigger `spawner`, whose
/// manifest lets it spawn `chatter`, which the token may not trigger. The spawn is refused
/// with a typed error naming the token's scope, and `chatter` never runs; a plugin whose
/// manifest has no `spawn` list spawns nothing, whoever triggers it.
#[tokio::test]
async fn a_task_spawns_only_what_its_manifest_and_its_token_allow() {
    let host = Host::start().await;
    host.upload("hello", "hello").await;
    host.upload("chatter", "chatter").await;
    host.upload_with("spawner", "spawner", "spawn = [\"hello\", \"chatter\"]\n").await;
    host.upload("bare", "spawner").await;
    let (_, token) =
        create_token(&host, json!({"name": "bot", "scopes": ["trigger"], "plugins": ["spawner", "bare", "hello"]}))
            .await;
    let run = |plugin: &'static str, child: &'static str, token: String| {
        let host = &host;
        async move {
            let input = json!({"plugin": child, "inputs": [{"steps": 1, "ms": 0}]});
            call(host, "POST", &format!("/v1/plugins/{plugin}/run"), &token, Some(input)).await
        }
    };

    let (status, body) = run("spawner", "hello", token.clone()).await;
    assert_eq!(
        (status, body["outputs"].clone()),
        (StatusCode::OK, json!([{"hello": {"steps": 1, "ms": 0}}])),
        "{body}"
    );

    let (status, body) = run("spawner", "chatter", token.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("task_failed")));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("spawn rejected") && message.contains("may not trigger plugin \"chatter\""), "{body}");
    let chatter = host.get_json("/v1/tasks?plugin=chatter").await;
    assert_eq!(chatter["tasks"], json!([]), "the refused child never ran");

    for token in [token, TOKEN.to_owned()] {
        let (status, body) = run("bare", "hello", token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("plugin \"bare\" may not spawn \"hello\"") && message.contains("spawn = [..]"),
            "{body}"
        );
    }

    // The admin token may trigger every plugin, so its spawner reaches what its manifest lists.
    let (status, body) = run("spawner", "chatter", TOKEN.to_owned()).await;
    assert_eq!((status, body["outputs"].clone()), (StatusCode::OK, json!([{"steps": 1}])), "{body}");
    assert_eq!(host.get_json("/v1/tasks?plugin=chatter").await["tasks"].as_array().unwrap().len(), 1);
}
