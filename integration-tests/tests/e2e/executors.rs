//! The runner's core, end to end, on each executor: a push becomes a
//! deploy (a real Hugo site), a failing build, cancel, timeout, the build
//! cache carried to the next build, and the memory limit. Each scenario
//! runs once on Docker (`…_on_docker`) and once on Podman's API service
//! (`…_on_podman`, started by `scripts/start-podman.sh`; without it those
//! tests fail saying how to start it). Each prints how long its builds
//! took, so the two engines can be compared.
//!
//! On Podman the runner allows private networks: its firewall rules hook
//! Docker's bridges only, so a Podman runner refuses builds with network
//! otherwise (one test checks that refusal).

use crate::helpers::{SiteRepo, TestApp, spawn_app_with_runner};
use jamstack_runner::RunnerConfig;
use jamstack_runner::executor::ExecutorKind;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The socket of the Podman service the tests use.
fn podman_socket() -> PathBuf {
    std::env::var_os("JAMSTACK_TEST_PODMAN_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(jamstack_runner::executor::podman::DEFAULT_SOCKET))
}

/// Fails the test, saying how to start Podman, when its service does not
/// answer.
fn require_podman() {
    let socket = podman_socket();
    let answered = std::process::Command::new("curl")
        .args(["-fsS", "--max-time", "5", "--unix-socket"])
        .arg(&socket)
        .arg("http://podman/_ping")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        answered,
        "Podman's API service does not answer on {}: start it with ./scripts/start-podman.sh \
         (or set JAMSTACK_TEST_PODMAN_SOCKET to the socket of one)",
        socket.display()
    );
}

/// A controller and a runner using `executor`, with `configure` applied
/// to the runner last.
async fn spawn_app_on(executor: ExecutorKind, configure: impl FnOnce(&mut RunnerConfig)) -> TestApp {
    if executor == ExecutorKind::Podman {
        require_podman();
    }
    spawn_app_with_runner(|runner| {
        runner.executor = executor;
        if executor == ExecutorKind::Podman {
            runner.podman_socket = podman_socket();
            runner.allow_private_networks = true;
        }
        configure(runner);
    })
    .await
}

/// What this test's runner left on `executor`'s engine.
fn leftovers(app: &TestApp, executor: ExecutorKind) -> Vec<String> {
    match executor {
        ExecutorKind::Docker => app.runner_leftovers(),
        ExecutorKind::Podman => {
            let url = format!("unix://{}", podman_socket().display());
            let filter = format!("label=org.jamstack.runner={}", app.runner_name);
            let mut found = Vec::new();
            for (kind, args) in [
                ("container", ["ps", "-a", "--format", "{{.Names}}"].as_slice()),
                ("volume", ["volume", "ls", "--format", "{{.Name}}"].as_slice()),
                ("network", ["network", "ls", "--format", "{{.Name}}"].as_slice()),
            ] {
                let output = std::process::Command::new("podman")
                    .args(["--remote", "--url", &url])
                    .args(args)
                    .args(["--filter", &filter])
                    .output()
                    .expect("running the podman CLI");
                assert!(
                    output.status.success(),
                    "podman {args:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                for name in String::from_utf8_lossy(&output.stdout).lines() {
                    found.push(format!("{kind} {name}"));
                }
            }
            found
        }
    }
}

/// Waits until the runner's cleanup, which follows its report, is done.
async fn wait_until_nothing_left(app: &TestApp, executor: ExecutorKind) {
    let mut left = leftovers(app, executor);
    for _ in 0..100 {
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = leftovers(app, executor);
    }
    panic!("the build left objects on the engine behind: {left:?}");
}

fn busybox_toml(command: &str) -> String {
    format!("[build]\ncommand = '''{command}'''\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n")
}

/// Connects a site whose build runs `command` in busybox.
async fn site_running(app: &TestApp, site: &str, command: &str) -> SiteRepo {
    let repo = SiteRepo::new();
    repo.commit(&[("jamstack.toml", &busybox_toml(command))], "build");
    app.connect_site(site, &repo, &format!("octo/{site}")).await;
    repo
}

/// Runs each scenario once per executor.
macro_rules! on_each_executor {
    ($($scenario:ident),* $(,)?) => {
        mod on_docker {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(jamstack_runner::executor::ExecutorKind::Docker).await;
                }
            )*
        }
        mod on_podman {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(jamstack_runner::executor::ExecutorKind::Podman).await;
                }
            )*
        }
    };
}

on_each_executor!(
    a_push_of_a_hugo_site_becomes_a_live_deploy,
    a_failing_build_fails_with_its_exit_code_and_log,
    a_cancelled_build_is_stopped_and_ends_cancelled,
    a_build_past_its_timeout_is_stopped_and_fails_saying_so,
    the_cache_carries_files_to_the_next_build,
    a_build_that_eats_memory_is_killed_out_of_memory,
);

async fn a_push_of_a_hugo_site_becomes_a_live_deploy(executor: ExecutorKind) {
    let app = spawn_app_on(executor, |_| {}).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            (
                "jamstack.toml",
                "[build]\ncommand = \"hugo --minify\"\npublish = \"public\"\nimage = \"jamstack/hugo:1\"\n",
            ),
            ("hugo.toml", "baseURL = '/'\ntitle = 'On each engine'\n"),
            (
                "layouts/index.html",
                "<h1>{{ .Site.Title }}</h1>{{ range .Site.RegularPages }}<p>{{ .Title }}</p>{{ end }}",
            ),
            (
                "layouts/_default/single.html",
                "<h2>{{ .Title }}</h2>{{ .Content }}",
            ),
            ("content/post.md", "---\ntitle: First post\n---\nHello."),
        ],
        "a hugo site",
    );
    app.connect_site("hugo", &repo, "octo/hugo").await;
    let started = Instant::now();
    let build = app.push("octo/hugo", &repo, &sha).await;
    let build = app.wait_for_success(build).await;
    println!(
        "{executor:?}: a hugo site from push to live deploy in {:?}",
        started.elapsed()
    );
    assert_eq!(build["commit_sha"], sha.as_str());
    let home = app.visit("hugo", "/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("<h1>On each engine</h1>") && home.body.contains("First post"),
        "{}",
        home.body
    );
    assert!(app.visit("hugo", "/post/").await.body.contains("Hello."));
    wait_until_nothing_left(&app, executor).await;
}

async fn a_failing_build_fails_with_its_exit_code_and_log(executor: ExecutorKind) {
    let app = spawn_app_on(executor, |_| {}).await;
    let _repo = site_running(&app, "broken", "echo compiling; echo 'error: no' >&2; exit 3").await;
    let build = app
        .wait_for_build(app.trigger_build_with("broken", json!({})).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    assert_eq!(build["exit_code"], 3);
    let log = app.build_log(build["id"].as_i64().unwrap()).await;
    assert!(log.contains("compiling") && log.contains("error: no"), "{log}");
    wait_until_nothing_left(&app, executor).await;
}

async fn a_cancelled_build_is_stopped_and_ends_cancelled(executor: ExecutorKind) {
    let app = spawn_app_on(executor, |_| {}).await;
    let _repo = site_running(&app, "cancelme", "echo started; sleep 300").await;
    let id = app.trigger_build_with("cancelme", json!({})).await;
    app.wait_for_log(id, "started").await;
    let asked = Instant::now();
    app.cancel_build(id).await;
    let build = app.wait_for_build(id).await;
    println!("{executor:?}: cancel to cancelled in {:?}", asked.elapsed());
    assert_eq!(build["state"], "cancelled", "{build}");
    assert!(build["error"].is_null(), "a cancel is not a failure: {build}");
    assert!(app.build_log(id).await.contains("Build cancelled"));
    wait_until_nothing_left(&app, executor).await;
}

async fn a_build_past_its_timeout_is_stopped_and_fails_saying_so(executor: ExecutorKind) {
    let app = spawn_app_on(executor, |_| {}).await;
    let _repo = site_running(&app, "slow", "echo started; sleep 300").await;
    app.set_build_settings("slow", json!({ "timeout_seconds": 3 }))
        .await;
    // The build would sleep 300 s, longer than `wait_for_build` waits: its
    // ending at all, failed by the timeout, shows the timeout stopped it.
    let build = app
        .wait_for_build(app.trigger_build_with("slow", json!({})).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("timeout of 3.00s") && error.contains("raise the site's timeout"),
        "{error}"
    );
    wait_until_nothing_left(&app, executor).await;
}

async fn the_cache_carries_files_to_the_next_build(executor: ExecutorKind) {
    let app = spawn_app_on(executor, |_| {}).await;
    let repo = SiteRepo::new();
    let first = repo.commit(
        &[(
            "jamstack.toml",
            &busybox_toml(
                "mkdir -p public && (cat \"$JAMSTACK_CACHE_DIR/marker\" 2>/dev/null || echo none) \
                 > public/index.html && echo \"$COMMIT_REF\" > \"$JAMSTACK_CACHE_DIR/marker\"",
            ),
        )],
        "cache",
    );
    app.connect_site("cached", &repo, "octo/cached").await;
    let started = Instant::now();
    app.wait_for_success(app.trigger_build_with("cached", json!({})).await)
        .await;
    assert_eq!(app.visit("cached", "/").await.body.trim(), "none");
    let id = app.trigger_build_with("cached", json!({})).await;
    app.wait_for_success(id).await;
    println!("{executor:?}: two cached builds in {:?}", started.elapsed());
    assert_eq!(
        app.visit("cached", "/").await.body.trim(),
        first,
        "the second build found what the first left"
    );
    assert!(app.build_log(id).await.contains("Restored the build cache"));
    // The cache volume is the site's and outlives the builds: clear it.
    let key = app.set_build_settings("cached", json!({})).await["cache"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    remove_cache_volumes(executor, &key);
    wait_until_nothing_left(&app, executor).await;
}

fn remove_cache_volumes(executor: ExecutorKind, key: &str) {
    let (cli, url) = match executor {
        ExecutorKind::Docker => ("docker", None),
        ExecutorKind::Podman => ("podman", Some(format!("unix://{}", podman_socket().display()))),
    };
    let mut list = std::process::Command::new(cli);
    if let Some(url) = &url {
        list.args(["--remote", "--url", url]);
    }
    let listed = list
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=org.jamstack.cache.key={key}"))
        .output()
        .expect("listing cache volumes");
    for name in String::from_utf8_lossy(&listed.stdout).lines() {
        let mut remove = std::process::Command::new(cli);
        if let Some(url) = &url {
            remove.args(["--remote", "--url", url]);
        }
        let _ = remove.args(["volume", "rm", "-f", name]).output();
    }
}

async fn a_build_that_eats_memory_is_killed_out_of_memory(executor: ExecutorKind) {
    let app = spawn_app_on(executor, |_| {}).await;
    let _repo = site_running(
        &app,
        "memhog",
        "echo eating; head -c 400000000 /dev/zero | sort > /dev/null",
    )
    .await;
    app.set_build_settings("memhog", json!({ "memory_mib": 64 }))
        .await;
    let build = app
        .wait_for_build(app.trigger_build_with("memhog", json!({})).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("ran out of memory") && error.contains("64 MiB"),
        "{error}"
    );
    wait_until_nothing_left(&app, executor).await;
}

#[tokio::test]
async fn a_podman_runner_refuses_builds_with_network_unless_private_networks_are_allowed() {
    require_podman();
    let app = spawn_app_with_runner(|runner| {
        runner.executor = ExecutorKind::Podman;
        runner.podman_socket = podman_socket();
    })
    .await;
    let _repo = site_running(&app, "public", "mkdir -p public && echo hi > public/index.html").await;
    let build = app
        .wait_for_build(app.trigger_build_with("public", json!({})).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("cannot keep Podman builds off its host and private networks")
            && error.contains("--allow-private-networks"),
        "{error}"
    );
    wait_until_nothing_left(&app, ExecutorKind::Podman).await;
}
