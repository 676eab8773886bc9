//! Builds are bounded: processes and images; whatever ends a build, nothing
//! of it stays on the Docker engine. Memory, timeout and cancel are tested
//! on every executor, in `executors.rs`.

use crate::helpers::{SiteRepo, TestApp, spawn_app, spawn_app_with_runner};
use serde_json::json;
use std::time::Instant;

fn toml(command: &str) -> String {
    format!("[build]\ncommand = '''{command}'''\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n")
}

/// Connects a site whose build runs `command`; returns the repository.
async fn site_running(app: &TestApp, site: &str, command: &str) -> SiteRepo {
    let repo = SiteRepo::new();
    repo.commit(&[("jamstack.toml", &toml(command))], "build");
    app.connect_site(site, &repo, &format!("octo/{site}")).await;
    repo
}

#[tokio::test]
async fn a_fork_bomb_runs_into_the_process_limit_and_ends_at_the_timeout() {
    let app = spawn_app().await;
    let _repo = site_running(
        &app,
        "forkbomb",
        "echo started; bomb() { bomb | bomb & }; bomb; sleep 600",
    )
    .await;
    app.set_build_settings(
        "forkbomb",
        json!({ "pids": 64, "cpus": 0.5, "timeout_seconds": 8 }),
    )
    .await;
    let id = app.trigger_build_with("forkbomb", json!({})).await;
    let build = app.wait_for_build(id).await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(error.contains("timeout of 8.00s"), "{error}");
    let log = app.build_log(id).await;
    assert!(log.contains("64 processes"), "the limit is in the log:\n{log}");
    assert!(
        log.contains("can't fork"),
        "the bomb ran into the process limit:\n{}",
        &log[..log.len().min(4000)]
    );
    app.wait_until_nothing_left().await;
}

#[tokio::test]
async fn a_successful_build_leaves_nothing_on_the_engine_and_its_log_lines_carry_time_and_stream() {
    let app = spawn_app().await;
    let _repo = site_running(
        &app,
        "tidy",
        "mkdir -p public && echo hi > public/index.html && echo to-out && echo to-err >&2 \
         && printf '\\033[32mgreen\\033[0m\\n'",
    )
    .await;
    let id = app.trigger_build_with("tidy", json!({})).await;
    app.wait_for_success(id).await;
    let log = app.build_log(id).await;
    for line in log.lines() {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line}"
        );
        let stream = rest.split(' ').next().unwrap();
        assert!(["out", "err", "sys"].contains(&stream), "{line}");
    }
    assert!(log.lines().any(|l| l.ends_with(" out to-out")), "{log}");
    assert!(log.lines().any(|l| l.ends_with(" err to-err")), "{log}");
    assert!(log.contains("\x1b[32mgreen\x1b[0m"), "ANSI colours are kept");
    app.wait_until_nothing_left().await;
}

#[tokio::test]
async fn an_image_outside_the_runners_allow_list_fails_the_build_naming_it() {
    let app = spawn_app_with_runner(|runner| runner.allowed_images = vec!["jamstack/hugo:*".into()]).await;
    let _repo = site_running(&app, "allowlist", "true").await;
    let build = app
        .wait_for_build(app.trigger_build_with("allowlist", json!({})).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("jamstack/busybox:1")
            && error.contains("not allowed")
            && error.contains("jamstack/hugo:*"),
        "{error}"
    );
}

/// A local `:latest` tag of the busybox image, removed again when dropped.
struct LatestTag(String);

impl LatestTag {
    fn new() -> Self {
        let name = format!(
            "jamstack-test/latest-{}-{}:latest",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        );
        let status = std::process::Command::new("docker")
            .args(["tag", "jamstack/busybox:1", &name])
            .status()
            .unwrap();
        assert!(status.success(), "docker tag");
        LatestTag(name)
    }
}

impl Drop for LatestTag {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &self.0])
            .output();
    }
}

#[tokio::test]
async fn an_image_tagged_latest_is_pulled_again_and_the_local_copy_used_when_no_registry_answers() {
    let app = spawn_app().await;
    let tag = LatestTag::new();
    let repo = SiteRepo::new();
    repo.commit(
        &[(
            "jamstack.toml",
            &format!(
                "[build]\ncommand = 'mkdir -p public && echo ok > public/index.html'\npublish = \"public\"\nimage = \"{}\"\n",
                tag.0
            ),
        )],
        "latest",
    );
    app.connect_site("latest", &repo, "octo/latest").await;
    let id = app.trigger_build_with("latest", json!({})).await;
    app.wait_for_success(id).await;
    let log = app.build_log(id).await;
    assert!(
        log.contains(&format!("Could not pull a newer {}", tag.0)),
        "a :latest image is pulled every time:\n{log}"
    );
}
