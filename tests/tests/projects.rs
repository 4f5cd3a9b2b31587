//! `ignareo new` and `ignareo build`: a project made for each language builds into a component
//! that uploads with its manifest and runs on a real host; the Python and JavaScript examples
//! build and run the same way; and what cannot be made or built is refused with a reason a
//! person can act on. Each language's builds run one after the other in one test, so that a
//! first build installs its tools once.

#![allow(clippy::unwrap_used, reason = "a test's unwrap is its assertion that the call succeeds")]

use std::ffi::OsStr;

use ignareo_e2e::projects::{build, copy_example, granting_local, ignareo};
use ignareo_e2e::target::Target;
use ignareo_e2e::{Host, TempDir};
use serde_json::json;

/// `ignareo new --lang LANG NAME --dir DIR`, expecting it to succeed: the project's directory.
async fn new_project(lang: &str, name: &str, dir: &TempDir) -> std::path::PathBuf {
    let made = ignareo(&[os("new"), os("--lang"), os(lang), os(name), os("--dir"), dir.path().as_os_str()], &[]).await;
    assert!(made.success, "ignareo new --lang {lang} {name}:\n{}\n{}", made.stdout, made.stderr);
    let project = dir.join(name);
    for file in ["README.md", "ignareo.toml", ".gitignore"] {
        assert!(project.join(file).is_file(), "{file} in {}", project.display());
    }
    project
}

/// The project `ignareo new` made, built: uploaded with its own manifest, it may not reach the
/// local target; granted it, it answers the page's title, as the template's contract says.
async fn a_new_project_runs(host: &Host, target: &Target, lang: &str, source: &str) {
    let dir = TempDir::new("project");
    let name = format!("{lang}-task");
    let project = new_project(lang, &name, &dir).await;
    assert!(project.join(source).is_file(), "{source} in {}", project.display());
    let component = build(&project).await;
    let manifest = std::fs::read_to_string(project.join("ignareo.toml")).unwrap();
    let input = json!({"url": target.url("/page/3")});

    host.upload_component(&name, component.clone(), Some(&manifest)).await;
    let (status, body) = host.run(&name, &input).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("task_failed")), "{lang}: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("denied"), "{lang}: {body}");

    host.upload_component(&name, component, Some(&granting_local(&manifest))).await;
    assert_eq!(host.run(&name, &input).await, (200, json!({"status": 200, "title": "Page 3"})), "{lang}");
    let (status, body) = host.run(&name, &json!({"page": 3})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_input")), "{lang}: {body}");
}

#[tokio::test]
async fn a_new_rust_project_builds_into_a_plugin_that_runs() {
    let (host, target) = (Host::start().await, Target::start().await);
    a_new_project_runs(&host, &target, "rust", "src/lib.rs").await;
}

#[tokio::test]
async fn a_new_python_project_and_the_page_monitor_example_build_and_run() {
    let (host, target) = (Host::start().await, Target::start_with_stock_after(3).await);
    a_new_project_runs(&host, &target, "python", "app.py").await;

    let dir = TempDir::new("example");
    let example = copy_example("page-monitor-python", dir.path());
    let manifest = std::fs::read_to_string(example.join("ignareo.toml")).unwrap();
    host.upload_component("page-monitor", build(&example).await, Some(&granting_local(&manifest))).await;

    // "Sold out" for two checks, then "In stock": the change is reported at the third.
    let input = json!({"url": target.url("/changing/a"), "pattern": "<p>(.*?)</p>", "interval_secs": 0.02});
    let id = host.submit("page-monitor", &input).await;
    let task = host.wait(&id, 60).await;
    let changed = json!({"changed": true, "before": "Sold out", "after": "In stock", "checks": 3});
    assert_eq!(task["output"], changed, "{task}");
    let events = host.events(&id).await;
    assert!(events.iter().any(|(name, data)| name == "progress" && data["done"] == 2), "{events:?}");
    let custom: Vec<_> = events.iter().filter(|(name, _)| name == "custom").map(|(_, data)| data).collect();
    assert_eq!(custom.len(), 1, "{events:?}");
    assert_eq!((&custom[0]["name"], &custom[0]["data"]["after"]), (&json!("changed"), &json!("In stock")));

    // Without a pattern the value is the title, which does not change; a failed fetch is a
    // warning, not the end.
    let input = json!({"url": target.url("/page/1"), "interval_secs": 0, "max_checks": 2});
    assert_eq!(host.run("page-monitor", &input).await.1, json!({"changed": false, "value": "Page 1", "checks": 2}));
    let input = json!({"url": target.url("/status/404"), "interval_secs": 0, "max_checks": 2});
    assert_eq!(host.run("page-monitor", &input).await.1, json!({"changed": false, "value": null, "checks": 2}));
    let (status, body) = host.run("page-monitor", &json!({"url": target.url("/"), "pattern": "("})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_input")), "{body}");
}

#[tokio::test]
async fn a_new_javascript_project_and_the_crawler_example_build_and_run() {
    let (host, target) = (Host::start().await, Target::start().await);
    a_new_project_runs(&host, &target, "js", "app.js").await;

    let dir = TempDir::new("example");
    let example = copy_example("crawler-js", dir.path());
    let manifest = std::fs::read_to_string(example.join("ignareo.toml")).unwrap();
    host.upload_component("crawler-js", build(&example).await, Some(&granting_local(&manifest))).await;

    let mut urls: Vec<String> = (0..30).map(|i| target.url(&format!("/page/{i}"))).collect();
    urls.push(target.url("/status/503"));
    urls.push("http://example.com/".to_owned());
    let id = host.submit("crawler-js", &json!({"urls": urls, "concurrency": 8})).await;
    let task = host.wait(&id, 60).await;
    let output = &task["output"];
    assert_eq!((&output["fetched"], &output["failed"]), (&json!(30), &json!(2)), "{task}");
    let pages = output["pages"].as_array().unwrap();
    for (i, page) in pages[..30].iter().enumerate() {
        assert_eq!(page, &json!({"url": urls[i], "status": 200, "title": format!("Page {i}")}));
    }
    assert!(pages[30]["error"].as_str().unwrap().starts_with("503 server error"), "{}", pages[30]);
    assert!(pages[31]["error"].as_str().unwrap().starts_with("destination denied"), "{}", pages[31]);
    let events = host.events(&id).await;
    let crawled = events.iter().find(|(name, data)| name == "custom" && data["name"] == "crawled");
    assert_eq!(crawled.unwrap().1["data"], json!({"fetched": 30, "failed": 2}), "{events:?}");

    let (status, body) = host.run("crawler-js", &json!({"urls": "https://example.com/"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_input")), "{body}");
}

/// Runs `ignareo ARGS` expecting it to fail with `expected` in its error.
async fn refused(args: &[&OsStr], envs: &[(&str, &OsStr)], expected: &str) {
    let outcome = ignareo(args, envs).await;
    assert!(!outcome.success, "{args:?} must fail:\n{}", outcome.stdout);
    assert!(outcome.stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{}", outcome.stderr);
}

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

#[tokio::test]
async fn what_cannot_be_made_or_built_is_refused_with_the_reason() {
    let dir = TempDir::new("refusals");
    let new = |lang: &'static str, name: &'static str| {
        [os("new"), os("--lang"), os(lang), os(name), os("--dir"), dir.path().as_os_str()]
    };
    refused(&new("cobol", "x"), &[], "invalid value 'cobol' for '--lang <LANG>'").await;
    refused(&new("python", "Not-A-Name"), &[], "invalid plugin name \"Not-A-Name\": use 1-64 characters").await;
    refused(&new("rust", "9lives"), &[], "cannot start with a digit").await;
    let taken = dir.join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    refused(&new("js", "taken"), &[], "taken already exists and is not empty").await;
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1, "nothing is written into it");

    refused(&[os("build"), taken.as_os_str()], &[], "nothing to build in").await;
    refused(&[os("build"), dir.join("absent").as_os_str()], &[], "is not a directory").await;
    std::fs::write(taken.join("app.py"), "").unwrap();
    std::fs::write(taken.join("app.js"), "").unwrap();
    refused(&[os("build"), taken.as_os_str()], &[], "say which to build with --lang").await;
    refused(&[os("build"), os("--lang"), os("rust"), taken.as_os_str()], &[], "has no Cargo.toml").await;

    // A missing toolchain is named with what installs it, and nothing is installed.
    let tools = dir.join("tools");
    let no_path = [("PATH", os("")), ("IGNAREO_TOOLS_DIR", tools.as_os_str())];
    for (lang, expected) in [
        ("rust", "`rustc` was not found: install Rust with rustup"),
        ("python", "`python3` was not found: install Python 3"),
        ("js", "`node` was not found: install Node.js and npm"),
    ] {
        let made = ignareo(&new(lang, lang), &[]).await;
        assert!(made.success, "{}", made.stderr);
        refused(&[os("build"), dir.join(lang).as_os_str()], &no_path, expected).await;
    }
    assert!(!tools.join("guest-venv").exists() && !tools.join("js-tools").exists());
}
