//! The one command a newcomer runs: `jamstack-controller up --demo` starts
//! the controller with its runner (a child process), builds the bundled sample site in
//! Docker and serves it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn up_with_demo_serves_the_built_sample_site_within_a_minute() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let output = data.path().join("stdout.txt");
    let started = Instant::now();
    let _controller = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
            .args([
                "up",
                "--demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data.path().join("data"))
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting jamstack-controller"),
    );
    let http = reqwest::Client::new();
    let page = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo site was not served within a minute; the command printed:\n{}",
            std::fs::read_to_string(&output).unwrap_or_default()
        );
        let answer = http
            .get(format!("http://127.0.0.1:{port}/"))
            .header("Host", format!("demo.localhost:{port}"))
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status() == 200
        {
            break answer.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(page.contains("It works"), "{page}");
    assert!(page.contains("built inside a container"), "{page}");

    let printed = std::fs::read_to_string(&output).unwrap();
    for expected in [
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
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let output = data.path().join("stdout.txt");
    let _controller = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data.path().join("data"))
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting jamstack-controller"),
    );
    let started = Instant::now();
    let admin_token = loop {
        let printed = std::fs::read_to_string(&output).unwrap_or_default();
        if let Some(token) = printed
            .lines()
            .find_map(|line| line.strip_prefix("Admin token:"))
            .and_then(|rest| rest.split_whitespace().next())
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            break token.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve printed:\n{printed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let controller = format!("http://127.0.0.1:{port}");
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
