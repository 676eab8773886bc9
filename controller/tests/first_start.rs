//! The first start of a controller: it makes the admin token and shows it
//! once. A first start that fails must not have spent that once.

mod support;

use std::process::Command;
use support::Controller;

#[tokio::test]
async fn a_first_start_that_fails_on_a_taken_port_leaves_the_admin_token_to_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();

    let failed = Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
        .args(["serve", "--listen", &taken, "--data-dir", data])
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(!failed.status.success(), "{printed}");
    assert!(printed.contains(&format!("binding {taken}")), "{printed}");
    assert!(!printed.contains("Admin token:"), "{printed}");

    let mut controller = Controller::start(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        dir.path(),
        |_| {},
    );
    let url = controller.base_url().await;
    let token = controller.printed_value("Admin token:").await;
    assert!(token.starts_with("jsa_"), "{}", controller.printed());
    let sites = reqwest::Client::new()
        .get(format!("{url}/api/v1/sites"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        sites.status(),
        200,
        "the token printed by the second start is the admin's"
    );
}

/// `token` opens the same store as `serve`, with the same flags: an
/// operator's one environment file or set of flags serves both.
#[tokio::test]
async fn an_admin_token_made_with_the_flags_of_serve_opens_the_api_of_that_controller() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = dir.path().join("keys").join("secret.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let store = [
        "--data-dir",
        data.to_str().unwrap(),
        "--secret-key-file",
        key.to_str().unwrap(),
    ];
    let serve: Vec<&str> = ["serve", "--listen", "127.0.0.1:0"]
        .iter()
        .chain(&store)
        .copied()
        .collect();
    let mut controller = Controller::start(&serve, dir.path(), |_| {});
    let url = controller.base_url().await;
    assert!(key.exists(), "serve made its key where --secret-key-file says");

    let made = Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
        .args(["token", "admin", "--name", "operator"])
        .args(store)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let token = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    let sites = reqwest::Client::new()
        .get(format!("{url}/api/v1/sites"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(sites.status(), 200, "{}", controller.printed());
}
