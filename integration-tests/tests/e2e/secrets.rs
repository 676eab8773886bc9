//! Secrets: site variables marked secret and the job's git token never
//! reach the stored log, however the build prints them; the token never
//! reaches the build at all.

use crate::helpers::{PrivateGitServer, SiteRepo, spawn_app, spawn_controller_only};
use jamstack_proto::Secret;
use jamstack_runner::{Runner, RunnerConfig};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "tok-3f9a8b7c6d5e";
const KEY: &str =
    "-----BEGIN TEST KEY-----\nline-one-abcdef0123\nline-two-ghijkl4567\n-----END TEST KEY-----";

#[tokio::test]
async fn a_secret_printed_plainly_split_across_writes_or_over_several_lines_never_reaches_the_stored_log() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let command = [
        "mkdir -p public && echo ok > public/index.html",
        "echo \"plain: $API_TOKEN\"",
        "echo \"to stderr: $API_TOKEN\" >&2",
        // The line waits (so its start is stored early) with half the secret
        // written; the other half comes in a later write.
        "printf 'split: %s%s' \"$(printf '%040d' 0)\" \"${API_TOKEN%????????}\"",
        "sleep 2",
        "printf '%s and on\\n' \"${API_TOKEN#????????}\"",
        "echo \"$SIGNING_KEY\"",
        "echo \"$SIGNING_KEY\" >&2",
        "echo \"theme is $THEME\"",
        // What the build got, without printing it: the value it was given,
        // not what the controller stores.
        "echo \"token digest: $(printf %s \"$API_TOKEN\" | sha256sum | cut -c1-16)\"",
    ]
    .join(" && ");
    repo.commit(
        &[(
            "jamstack.toml",
            &format!(
                "[build]\ncommand = '''{command}'''\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n"
            ),
        )],
        "leaky build",
    );
    app.connect_site("secrets", &repo, "octo/secrets").await;
    app.set_env("secrets", "API_TOKEN", TOKEN, true).await;
    app.set_env("secrets", "SIGNING_KEY", KEY, true).await;
    let public = app.set_env("secrets", "THEME", "midnight", false).await;
    assert_eq!(public["value"], "midnight");

    // Sealed at rest: no file of the controller's data holds a secret in
    // clear (the variables are stored sealed with the controller's key).
    for entry in std::fs::read_dir(app.data_dir().join("controller")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for secret in [TOKEN, "line-one-abcdef0123"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds a secret variable in clear",
                    path.display()
                );
            }
        }
    }

    let listed = app
        .http
        .get(app.api("/sites/secrets/env"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains(TOKEN) && !listed.contains("line-one"),
        "the API never shows a secret again: {listed}"
    );

    let id = app.trigger_build_with("secrets", json!({})).await;
    app.wait_for_success(id).await;
    let log = app.build_log(id).await;
    for leak in [
        TOKEN,
        "tok-3f9a",
        "8b7c6d5e",
        "line-one-abcdef0123",
        "line-two-ghijkl4567",
    ] {
        assert!(!log.contains(leak), "`{leak}` reached the log:\n{log}");
    }
    assert!(log.contains("plain: ***"), "{log}");
    assert!(log.contains("to stderr: ***"), "{log}");
    assert!(log.contains(&format!("split: {}", "0".repeat(20))), "{log}");
    assert!(log.contains("*** and on"), "{log}");
    assert!(
        log.contains("theme is midnight"),
        "plain variables are not masked"
    );
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    assert!(
        log.contains(&format!("token digest: {}", &digest[..16])),
        "the build got the secret's value: {log}"
    );
}

#[tokio::test]
async fn a_private_repository_is_fetched_with_the_jobs_token_which_reaches_neither_log_nor_build() {
    let (app, runner_token) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    repo.commit(
        &[
            (
                "jamstack.toml",
                "[build]\ncommand = 'mkdir -p public && cp index.html public/ && env > public/env.txt'\n\
                 publish = \"public\"\nimage = \"jamstack/busybox:1\"\n",
            ),
            ("index.html", "private page"),
        ],
        "private",
    );
    let git = PrivateGitServer::start(&repo, "site", TOKEN).await;
    let response = app
        .http
        .post(app.api("/sites"))
        .bearer_auth(&app.admin_token)
        .json(&json!({
            "name": "private",
            "repo_url": format!("{}/site.git", git.base_url),
            "production_branch": "main",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);

    let work = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(&app.base_url, &runner_token);
    config.name = format!("private-runner-{}", std::process::id());
    config.work_dir = work.path().to_path_buf();
    let runner = Runner::start(config).await.expect("starting a runner");
    let shutdown = CancellationToken::new();

    // Without a token the server refuses, and the build says what is missing.
    let denied = app.trigger_build_with("private", json!({})).await;
    let lease = runner
        .client()
        .lease("private-runner", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a job");
    assert!(lease.git_token.is_none());
    runner.run_job(lease, &shutdown).await;
    let build = app.wait_for_build(denied).await;
    assert_eq!(build["state"], "failed");
    assert!(
        build["error"].as_str().unwrap().contains("wants credentials"),
        "{build}"
    );

    // With the token the controller hands out (the GitHub App's, later), it builds.
    let id = app.trigger_build_with("private", json!({})).await;
    let mut lease = runner
        .client()
        .lease("private-runner", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a job");
    lease.git_token = Some(Secret::new(TOKEN));
    runner.run_job(lease, &shutdown).await;
    app.wait_for_success(id).await;
    assert_eq!(app.visit("private", "/").await.body, "private page");
    let env = app.visit("private", "/env.txt").await.body;
    assert!(env.contains("CONTEXT=production"), "{env}");
    assert!(
        !env.contains(TOKEN),
        "the token reached the build's environment:\n{env}"
    );
    let log = app.build_log(id).await;
    assert!(!log.contains(TOKEN), "{log}");
    assert!(
        git.seen_auth
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.starts_with("Basic ")),
        "the token was sent as Basic credentials"
    );
}
