//! The one command a newcomer runs: `jamstack-controller up --demo` starts
//! the controller with its runner (a child process), builds the bundled sample site in
//! Docker and serves it.

mod support;

use std::process::Command;
use support::{Controller, eventually};

#[tokio::test]
async fn up_with_demo_serves_the_built_sample_site() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut controller = Controller::start(
        &[
            "up",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
        |_| {},
    );
    let url = controller.base_url().await;
    let port = url.rsplit(':').next().unwrap().to_owned();
    let (http, url, port) = (&reqwest::Client::new(), &url, &port);
    let page = eventually(
        "the demo site being served",
        || controller.printed(),
        || async move {
            let answer = http
                .get(format!("{url}/"))
                .header("Host", format!("demo.localhost:{port}"))
                .send()
                .await
                .ok()?;
            if answer.status() != 200 {
                return None;
            }
            answer.text().await.ok()
        },
    )
    .await;
    assert!(page.contains("It works"), "{page}");
    assert!(page.contains("built inside a container"), "{page}");

    let printed = controller.printed();
    for expected in [
        "Demo image:    jamstack/busybox:1",
        "Admin token:   jsa_",
        &format!("http://demo.localhost:{port}/"),
        "Webhook:",
    ] {
        assert!(printed.contains(expected), "`up` prints {expected:?}:\n{printed}");
    }
}

/// `serve`, then `connect` from another shell, as an operator would.
#[tokio::test]
async fn a_repository_connected_from_the_command_line_is_a_site_with_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut served = Controller::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
        |_| {},
    );
    let controller = served.base_url().await;
    let admin_token = served.printed_value("Admin token:").await;

    let connect = Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
        .args([
            "connect",
            "blog",
            "--github-repo",
            "octo/blog",
            "--branch-deploys",
        ])
        .args(["--production-branch", "trunk", "--controller", &controller])
        .env("JAMSTACK_ADMIN_TOKEN", &admin_token)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&connect.stdout);
    assert!(
        connect.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&connect.stderr)
    );
    assert!(printed.contains("Connected site `blog`"), "{printed}");
    assert!(
        printed.contains("branch deploys on; deploy previews on"),
        "{printed}"
    );

    let site: serde_json::Value = reqwest::Client::new()
        .get(format!("{controller}/api/v1/sites/blog"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(site["github_repo"], "octo/blog");
    assert_eq!(site["repo_url"], "https://github.com/octo/blog.git");
    assert_eq!(site["production_branch"], "trunk");
    assert_eq!(site["branch_deploys"], true);
    assert_eq!(site["deploy_previews"], true);

    // A token is read from the variable named, and a missing one is said so.
    let missing = Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
        .args([
            "connect",
            "docs",
            "--github-repo",
            "octo/docs",
            "--github-token-env",
            "NOT_SET_ANYWHERE",
        ])
        .args(["--controller", &controller])
        .env("JAMSTACK_ADMIN_TOKEN", &admin_token)
        .env_remove("NOT_SET_ANYWHERE")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(error.contains("NOT_SET_ANYWHERE"), "{error}");
}
