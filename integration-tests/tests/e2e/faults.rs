//! kill -9 on either side: nothing lost, nothing published twice.

use crate::helpers::{SiteRepo, TestApp, eventually, fresh_postgres_database, manifest_file};
use crate::processes::{
    ControllerProcess, remove_containers_of_runner, runner_work_dir, start_runner, start_runner_with,
    unique_name,
};
use std::time::{Duration, Instant};

const SLOW_BUILD: &str = "[build]\ncommand = \"echo started; sleep 4; mkdir -p public; echo done > public/index.html\"\n\
                          publish = \"public\"\nimage = \"jamstack/busybox:1\"\n";

async fn connect(app: &TestApp, name: &str, repo: &SiteRepo) {
    app.connect_site(name, repo, &format!("octo/{name}")).await;
}

async fn wait_for_log(app: &TestApp, build: i64, attempt: i64, needle: &str) {
    eventually(
        &format!("attempt {attempt} of build {build} printing {needle:?}"),
        || async move {
            let log = app.attempt_log(build, attempt).await;
            if log.contains(needle) { Ok(()) } else { Err(log) }
        },
    )
    .await;
}

#[tokio::test]
async fn a_runner_killed_mid_build_is_replaced_and_exactly_one_deploy_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let controller = ControllerProcess::start(dir.path(), None);
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    let registration = controller.printed_token("Registration:");
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", SLOW_BUILD)], "slow");
    connect(&app, "phoenix", &repo).await;

    let doomed_name = unique_name("doomed");
    let mut doomed = start_runner(dir.path(), &controller.url(), &registration, &doomed_name);
    let build = app.trigger_build("phoenix", &sha).await;
    wait_for_log(&app, build, 1, "started").await;
    doomed.kill();
    remove_containers_of_runner(&doomed_name).await;

    let _rescuer = start_runner(
        dir.path(),
        &controller.url(),
        &registration,
        &unique_name("rescuer"),
    );
    let finished = app.wait_for_success(build).await;
    assert_eq!(finished["attempts"], 2, "{finished}");

    let attempts = app.get_json(&format!("/builds/{build}/attempts")).await;
    let outcomes: Vec<_> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].clone())
        .collect();
    assert_eq!(
        outcomes,
        [serde_json::json!("lost"), serde_json::json!("succeeded")]
    );
    let first_log = app.attempt_log(build, 1).await;
    assert!(
        first_log.contains("started"),
        "the first attempt's log is kept:\n{first_log}"
    );
    assert!(
        first_log.contains("Attempt 1 lost its runner"),
        "and marked:\n{first_log}"
    );
    assert!(app.attempt_log(build, 2).await.contains("Build succeeded"));

    let deploys = app.deploys_of("phoenix").await;
    assert_eq!(deploys.len(), 1, "exactly one deploy: {deploys:?}");
    assert_eq!(deploys[0]["published"], true);
    assert_eq!(app.visit("phoenix", "/").await.body, "done\n");
}

/// `up` runs its runner as a child process: a build that kills its runner
/// (out of memory, a crash, a stack overflow) leaves the controller
/// serving, and a new runner takes the job over.
#[tokio::test]
async fn a_build_that_kills_the_runner_of_up_leaves_the_controller_serving_and_a_new_runner_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let controller = ControllerProcess::start_up(dir.path());
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", SLOW_BUILD)], "slow");
    connect(&app, "sturdy", &repo).await;

    let build = app.trigger_build("sturdy", &sha).await;
    wait_for_log(&app, build, 1, "started").await;
    let runners = controller.children();
    assert_eq!(runners.len(), 1, "`up` runs one runner process: {runners:?}");
    let killed = runners[0];
    let status = std::process::Command::new("kill")
        .args(["-9", &killed.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let health = reqwest::get(format!("{}/healthz", controller.url()))
        .await
        .expect("the controller answers after its runner died");
    assert_eq!(health.status(), 200);
    let finished = app.wait_for_success(build).await;
    assert_eq!(finished["attempts"], 2, "{finished}");
    let replacements = controller.children();
    assert_eq!(replacements.len(), 1, "{replacements:?}");
    assert_ne!(replacements[0], killed, "a new runner process took over");
    assert_eq!(app.visit("sturdy", "/").await.body, "done\n");
    let printed = controller.process.printed();
    assert!(
        printed.contains("the embedded runner was killed"),
        "the controller says what happened:\n{printed}"
    );
    assert!(
        printed.contains("waiting for jobs"),
        "the runner's own log lines are in the controller's output:\n{printed}"
    );
}

/// A runner never outlives its `up`: `kill -9` gives the controller no
/// chance to stop it, and the kernel closing the runner's input does.
#[tokio::test]
async fn the_runner_of_up_stops_when_its_controller_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut controller = ControllerProcess::start_up(dir.path());
    let up = &controller;
    let runner = eventually("`up` starting its runner process", || async move {
        match up.children()[..] {
            [runner] => Ok(runner),
            _ => Err(up.process.printed()),
        }
    })
    .await;
    controller.kill();
    eventually("the runner stopping with its killed controller", || async move {
        match std::path::Path::new(&format!("/proc/{runner}")).exists() {
            true => Err(format!("process {runner} still runs")),
            false => Ok(()),
        }
    })
    .await;
}

/// SIGTERM to `up` (systemd stopping it) stops its runner first, while the
/// controller still answers, so the running build is handed back at once
/// instead of waiting out its lease as a lost attempt.
#[tokio::test]
async fn stopping_up_with_sigterm_hands_the_running_build_back_before_the_controller_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut controller = ControllerProcess::start_up(dir.path());
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", SLOW_BUILD)], "slow");
    connect(&app, "polite", &repo).await;
    let build = app.trigger_build("polite", &sha).await;
    wait_for_log(&app, build, 1, "started").await;
    let runner = controller.children();
    assert_eq!(runner.len(), 1, "{runner:?}");

    let pid = controller.process.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually("`up` stopping after SIGTERM", || {
        let stopped = !controller.process.is_running();
        let printed = controller.process.printed();
        async move { if stopped { Ok(()) } else { Err(printed) } }
    })
    .await;
    assert!(
        !std::path::Path::new(&format!("/proc/{}", runner[0])).exists(),
        "the runner stopped with the controller"
    );
    let printed = controller.process.printed();
    assert!(printed.contains("the embedded runner stopped"), "{printed}");

    controller.start_again();
    app.wait_for_success(build).await;
    let attempts = app.get_json(&format!("/builds/{build}/attempts")).await;
    assert_eq!(attempts[0]["outcome"], "handed-back", "{attempts}");
}

#[tokio::test]
async fn a_controller_restarted_mid_build_loses_no_log_byte_and_the_build_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut controller = ControllerProcess::start(dir.path(), None);
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    let registration = controller.printed_token("Registration:");
    let repo = SiteRepo::new();
    let command = "i=0; while [ $i -lt 40 ]; do echo \\\"line $i of the build\\\"; i=$((i+1)); sleep 0.1; done; \
                   mkdir -p public; echo survived > public/index.html";
    let toml =
        format!("[build]\ncommand = \"{command}\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n");
    let sha = repo.commit(&[("jamstack.toml", &toml)], "chatty");
    connect(&app, "steady", &repo).await;
    let _runner = start_runner(
        dir.path(),
        &controller.url(),
        &registration,
        &unique_name("steady"),
    );

    let build = app.trigger_build("steady", &sha).await;
    wait_for_log(&app, build, 1, "line 5 of the build").await;
    controller.restart();
    app.wait_for_success(build).await;

    let log = app.attempt_log(build, 1).await;
    // Each stored line is `<time> <stream> <text>`; the build's own output
    // is the text of its `out` lines.
    let printed: String = log
        .lines()
        .filter_map(|line| match line.splitn(3, ' ').collect::<Vec<_>>()[..] {
            [_time, "out", text] => Some(format!("{text}\n")),
            _ => None,
        })
        .collect();
    let expected: String = (0..40).map(|i| format!("line {i} of the build\n")).collect();
    assert_eq!(
        printed, expected,
        "every line once, in order; the whole log:\n{log}"
    );
    assert_eq!(app.visit("steady", "/").await.body, "survived\n");
}

/// The blob store syncs once per deploy, before it goes ready, so a power
/// loss can take bytes of blobs uploaded since. Such a blob, cut short
/// while the controller is down as a power loss would leave it, is found by
/// its hash at the next start: the deploy asks for it again rather than
/// ever serving a torn file, and the blobs that are whole stay.
#[tokio::test]
async fn a_blob_torn_by_a_power_loss_before_its_deploy_went_ready_is_asked_for_again() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let mut controller = ControllerProcess::start(dir.path(), None);
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    app.connect_site_with("torn", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let page = "<h1>whole</h1>\n".repeat(100);
    let files: [(&str, &[u8]); 2] = [
        ("index.html", page.as_bytes()),
        ("site.css", b"body { color: teal }"),
    ];
    let manifest: Vec<_> = files
        .iter()
        .map(|(path, content)| manifest_file(path, content))
        .collect();
    let started = app
        .start_direct_deploy("torn", json!({ "files": manifest }))
        .await;
    let deploy_id = started["deploy_id"].as_str().unwrap().to_owned();
    let upload = |content: &[u8]| {
        let hash = manifest_file("any", content).sha256;
        app.api_json(
            app.http
                .put(app.api(&format!("/blobs/{hash}")))
                .body(content.to_vec()),
        )
    };
    for (_, content) in &files {
        let (status, body) = upload(content).await;
        assert_eq!(status, 201, "{body}");
    }
    let finalize = || {
        app.api_json(
            app.http
                .post(app.api(&format!("/sites/torn/deploys/{deploy_id}/finalize")))
                .json(&json!({ "publish": true })),
        )
    };

    controller.kill();
    let torn_hash = &manifest[0].sha256;
    let shard = dir.path().join("data/blobs").join(&torn_hash[..2]);
    let torn = std::fs::read_dir(&shard)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(torn_hash.as_str())
        })
        .expect("the page's blob is in the local store");
    std::fs::write(&torn, &page.as_bytes()[..100]).unwrap();
    controller.start_again();

    let (status, body) = finalize().await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["missing"], json!([torn_hash]), "only the torn blob: {body}");
    assert!(!torn.exists(), "the torn bytes are deleted");
    let (status, body) = upload(files[1].1).await;
    assert_eq!(status, 200, "the whole blob is kept: {body}");
    let (status, body) = upload(files[0].1).await;
    assert_eq!(status, 201, "{body}");
    let (status, done) = finalize().await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["published"], true, "{done}");
    assert_eq!(app.visit("torn", "/").await.body, page);
    assert_eq!(app.visit("torn", "/site.css").await.body, "body { color: teal }");
}

/// The build's own output in a stored log: the text of its `out` lines
/// (each stored line is `<time> <stream> <text>`).
fn build_output(log: &str) -> String {
    log.lines()
        .filter_map(|line| match line.splitn(3, ' ').collect::<Vec<_>>()[..] {
            [_time, "out", text] => Some(format!("{text}\n")),
            _ => None,
        })
        .collect()
}

/// The runner's log spool files in its work directory, with their contents.
fn spool_files(work_dir: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_dir(work_dir)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("jamstack-log-"))
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(entry.path()).unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_build_keeps_running_while_its_controller_is_down_and_the_whole_log_arrives_once_it_is_back() {
    const SECRET: &str = "spool-secret-5b1f0c";
    let dir = tempfile::tempdir().unwrap();
    let mut controller = ControllerProcess::start(dir.path(), None);
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    let registration = controller.printed_token("Registration:");
    let repo = SiteRepo::new();
    let command = "echo \\\"token $DEPLOY_KEY\\\"; i=0; while [ $i -lt 50 ]; do echo \\\"line $i of the build\\\"; \
                   i=$((i+1)); sleep 0.1; done; mkdir -p public; echo outlasted > public/index.html";
    let toml =
        format!("[build]\ncommand = \"{command}\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n");
    let sha = repo.commit(&[("jamstack.toml", &toml)], "patient");
    connect(&app, "patient", &repo).await;
    app.set_env("patient", "DEPLOY_KEY", SECRET, true).await;
    let name = unique_name("patient");
    // The runner gives up on a call after one second: the outage below is
    // far longer than any retry of a single batch would cover.
    let _runner = start_runner_with(
        dir.path(),
        &controller.url(),
        &registration,
        &name,
        &["--controller-retry-seconds", "1"],
    );

    let build = app.trigger_build("patient", &sha).await;
    wait_for_log(&app, build, 1, "line 5 of the build").await;
    controller.kill();
    let down = Instant::now();

    // The build goes on without its controller: its output reaches the
    // spool on disk, masked.
    let work_dir = &runner_work_dir(dir.path(), &name);
    let spools = eventually(
        "the build going on printing into the spool while the controller is down",
        || async move {
            let spools = spool_files(work_dir);
            match spools
                .iter()
                .any(|(_, text)| text.contains("line 49 of the build"))
            {
                true => Ok(spools),
                false => Err(format!("{spools:?}")),
            }
        },
    )
    .await;
    assert!(
        spools.iter().all(|(_, text)| !text.contains(SECRET)),
        "the spool holds the secret: {spools:?}"
    );
    // Down for longer than the lease (6 s) and many times the runner's
    // retry window.
    if let Some(rest) = Duration::from_secs(9).checked_sub(down.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    controller.start_again();
    let finished = app.wait_for_success(build).await;
    assert_eq!(finished["attempts"], 1, "the runner kept its job: {finished}");

    let log = app.attempt_log(build, 1).await;
    let expected: String = std::iter::once("token ***\n".to_owned())
        .chain((0..50).map(|i| format!("line {i} of the build\n")))
        .collect();
    assert_eq!(
        build_output(&log),
        expected,
        "every line once, in order; the whole log:\n{log}"
    );
    assert!(log.contains("Build succeeded"), "{log}");
    assert_eq!(app.visit("patient", "/").await.body, "outlasted\n");
    assert_eq!(
        spool_files(work_dir),
        Vec::<(String, String)>::new(),
        "the spool is removed once the controller has the log"
    );
}

#[tokio::test]
async fn two_controllers_on_postgres_with_four_runners_build_200_jobs_each_published_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_postgres_database().await;
    let first = ControllerProcess::start(dir.path(), Some(&database));
    let second = ControllerProcess::start(dir.path(), Some(&database));
    let admin = first.printed_token("Admin token:");
    let registration = first.printed_token("Registration:");
    let apps = [
        TestApp::of(&first.url(), &admin),
        TestApp::of(&second.url(), &admin),
    ];
    let _runners: Vec<_> = (0..4)
        .map(|i| {
            let controller = if i % 2 == 0 { &first } else { &second };
            start_runner(
                dir.path(),
                &controller.url(),
                &registration,
                &unique_name(&format!("pool-{i}")),
            )
        })
        .collect();

    let toml = "[build]\ncommand = \"mkdir -p public && echo $BRANCH > public/index.html\"\n\
                publish = \"public\"\nimage = \"jamstack/busybox:1\"\n";
    let mut builds = Vec::new();
    let mut repos = Vec::new();
    for s in 0..20 {
        let repo = SiteRepo::new();
        let sha = repo.commit(&[("jamstack.toml", toml)], "site");
        let site = format!("fleet-{s}");
        connect(&apps[s % 2], &site, &repo).await;
        for b in 0..10 {
            let app = &apps[(s + b) % 2];
            builds.push((
                site.clone(),
                format!("branch-{b}"),
                app.trigger_build_of(&site, Some(&format!("branch-{b}")), &sha)
                    .await,
            ));
        }
        repos.push(repo);
    }
    assert_eq!(builds.len(), 200);

    for (site, branch, build) in &builds {
        let finished = apps[0].wait_for_success(*build).await;
        assert_eq!(
            finished["attempts"], 1,
            "{site} {branch}: leased once: {finished}"
        );
    }
    for s in 0..20 {
        let site = format!("fleet-{s}");
        let deploys = apps[s % 2].deploys_of(&site).await;
        assert_eq!(deploys.len(), 10, "{site}: one deploy per build");
        for b in 0..10 {
            let page = apps[b % 2].visit(&format!("branch-{b}--{site}"), "/").await;
            assert_eq!(
                page.body,
                format!("branch-{b}\n"),
                "{site} branch-{b} served by either controller"
            );
        }
    }
    let queue = apps[1].get_json("/queue").await;
    assert_eq!(
        queue["queued"].as_array().unwrap().len() + queue["running"].as_array().unwrap().len(),
        0
    );
}

#[tokio::test]
async fn a_revoked_runner_is_refused_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let controller = ControllerProcess::start(dir.path(), None);
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    let registration = controller.printed_token("Registration:");
    let name = unique_name("revocable");
    let mut runner = start_runner(dir.path(), &controller.url(), &registration, &name);

    let (api, name, runner_ref) = (&app, &name, &runner);
    let registered = eventually("the runner registering", || async move {
        let runners = api.get_json("/runners").await;
        runners
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name.as_str())
            .cloned()
            .ok_or_else(|| format!("{runners}\n{}", runner_ref.printed()))
    })
    .await;
    assert_eq!(registered["labels"], serde_json::json!([]));
    let id = registered["id"].as_i64().unwrap();
    let token_file = dir.path().join(format!("runner-{name}/runner-token"));
    let token = std::fs::read_to_string(&token_file).expect("the runner keeps its token");
    assert!(token.starts_with("jsr_"));
    assert!(!runner.printed().contains(&token), "the token is never logged");

    let response = app
        .http
        .delete(app.api(&format!("/runners/{id}")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    eventually("the revoked runner stopping", || {
        let stopped = !runner.is_running();
        let printed = runner.printed();
        async move { if stopped { Ok(()) } else { Err(printed) } }
    })
    .await;
    assert!(
        runner.printed().contains("revoked"),
        "it says why:\n{}",
        runner.printed()
    );
}
