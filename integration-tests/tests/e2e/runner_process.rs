//! The runner as its own process (`target/<profile>/jamstack-runner`): a
//! crash leaves debris only until it starts again, and its memory stays
//! bounded whatever a build prints.

use crate::helpers::{
    RunnerProcess, SiteRepo, TestApp, docker_objects_labelled, remove_docker_objects_labelled,
    spawn_controller_only,
};
use serde_json::json;
use std::time::{Duration, Instant};

fn site_toml(command: &str) -> String {
    format!("[build]\ncommand = '''{command}'''\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n")
}

async fn connect(app: &TestApp, site: &str, command: &str) -> SiteRepo {
    let repo = SiteRepo::new();
    repo.commit(&[("jamstack.toml", &site_toml(command))], "build");
    app.connect_site(site, &repo, &format!("octo/{site}")).await;
    repo
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    )
}

fn docker(args: &[&str]) -> String {
    let output = std::process::Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_runner_killed_mid_build_removes_what_it_left_when_it_starts_again_and_nothing_else() {
    let (app, token) = spawn_controller_only().await;
    let _repo = connect(&app, "crashy", "echo started; sleep 300").await;
    let name = unique("crashy-runner");
    let work = tempfile::tempdir().unwrap();

    let mut first = RunnerProcess::start(&app, &token, &name, work.path(), &[]);
    let id = app.trigger_build_with("crashy", json!({})).await;
    app.wait_for_log(id, "started").await;
    let left = docker_objects_labelled("org.jamstack.runner", &name);
    assert!(
        left.iter().any(|o| o.starts_with("container "))
            && left.iter().any(|o| o.starts_with("volume "))
            && left.iter().any(|o| o.starts_with("network ")),
        "a running build has a container, a volume and a network: {left:?}"
    );
    first.kill_9();
    assert_eq!(
        docker_objects_labelled("org.jamstack.runner", &name),
        left,
        "a crash leaves its objects behind"
    );

    // Another runner's container, which the restart must not touch.
    let bystander = docker(&[
        "create",
        "--label",
        "org.jamstack.runner.instance=someone-else",
        "--label",
        &format!("org.jamstack.runner={name}"),
        "jamstack/busybox:1",
        "true",
    ]);

    let second = RunnerProcess::start(&app, &token, &name, work.path(), &[]);
    let deadline = Instant::now() + crate::processes::PATIENCE;
    loop {
        let now: Vec<String> = docker_objects_labelled("org.jamstack.runner", &name);
        let remaining: Vec<&String> = left.iter().filter(|o| now.contains(o)).collect();
        if remaining.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted runner did not remove {remaining:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let still_there = docker(&[
        "ps",
        "-a",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("id={bystander}"),
    ]);
    assert_eq!(still_there, bystander, "another runner's container was removed");

    drop(second);
    let _ = docker(&["rm", "-f", &bystander]);
    remove_docker_objects_labelled("org.jamstack.runner", &name);
}

#[tokio::test]
async fn a_runner_stopped_with_sigterm_mid_build_removes_the_build_hands_it_back_and_exits() {
    let (app, token) = spawn_controller_only().await;
    let _repo = connect(&app, "stopping", "echo started; sleep 300").await;
    let name = unique("stopping-runner");
    let work = tempfile::tempdir().unwrap();
    let mut runner = RunnerProcess::start(&app, &token, &name, work.path(), &[]);
    let id = app.trigger_build_with("stopping", json!({})).await;
    app.wait_for_log(id, "started").await;
    assert!(!docker_objects_labelled("org.jamstack.runner", &name).is_empty());

    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", runner.pid())])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + crate::processes::PATIENCE;
    let exit = loop {
        if let Some(exit) = runner.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the runner did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let left = docker_objects_labelled("org.jamstack.runner", &name);
    assert!(left.is_empty(), "{left:?}");
    assert!(
        app.build_log(id)
            .await
            .contains("the build goes back to the queue"),
        "the log says what happened"
    );
    // Handed back at once, not when the minute-long lease runs out.
    let build = app.build(id).await;
    assert_eq!(build["state"], "queued", "{build}");
    let attempts = app.get_json(&format!("/builds/{id}/attempts")).await;
    assert_eq!(attempts[0]["outcome"], "handed-back", "{attempts}");
    assert!(
        app.build_log(id).await.contains("handed the build back"),
        "the attempt's log says it was handed back"
    );
}

#[tokio::test]
async fn the_runner_stays_under_64_mib_of_memory_while_a_build_prints_100_mb() {
    let (app, token) = spawn_controller_only().await;
    let _repo = connect(
        &app,
        "chatty",
        "mkdir -p public && echo ok > public/index.html && \
         yes 'a line of build output, printed over and over until a hundred megabytes went by' \
         | head -c 100000000; echo finished",
    )
    .await;
    let name = unique("chatty-runner");
    let work = tempfile::tempdir().unwrap();
    let runner = RunnerProcess::start(&app, &token, &name, work.path(), &[]);
    let id = app.trigger_build_with("chatty", json!({})).await;
    let build = app.wait_for_build(id).await;
    assert_eq!(build["state"], "succeeded", "{build}");
    let peak = runner.peak_rss();
    println!("runner peak resident memory: {:.1} MiB", peak as f64 / 1048576.0);
    assert!(
        peak < 64 * 1024 * 1024,
        "the runner's resident memory peaked at {:.1} MiB",
        peak as f64 / 1048576.0
    );
    let log = app.build_log(id).await;
    assert!(log.contains("passed the log limit of 16 MiB"), "{}", &log[..2000]);
    assert!(
        log.contains("lines were not stored"),
        "the count of dropped output is shown"
    );
    assert!(
        log.len() < 17 * 1024 * 1024,
        "the stored log is capped: {}",
        log.len()
    );
    drop(runner);
    remove_docker_objects_labelled("org.jamstack.runner", &name);
}
