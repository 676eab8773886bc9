//! `--log-format json`: one JSON object per line, carrying the spans (and
//! so the build id) an event happened in.

mod support;

use support::{Controller, eventually};

#[tokio::test]
async fn json_logs_carry_the_build_id_on_the_span_of_the_queued_build() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut controller = Controller::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
        |command| {
            command.env("JAMSTACK_LOG_FORMAT", "json").env_remove("RUST_LOG");
        },
    );
    let url = controller.base_url().await;
    let token = controller.printed_value("Admin token:").await;
    let api = format!("{url}/api/v1");
    let http = reqwest::Client::new();
    let site = http
        .post(format!("{api}/sites"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "logged", "repo_url": "https://example.com/x.git"}))
        .send()
        .await
        .unwrap();
    assert_eq!(site.status(), 201);
    let build: serde_json::Value = http
        .post(format!("{api}/sites/logged/builds"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"commit_sha": "a".repeat(40)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let build_id = build["id"].as_i64().expect("a build id");

    let output = controller.output.clone();
    let queued = eventually(
        "a `build queued` event being logged",
        || controller.printed(),
        || {
            let printed = std::fs::read_to_string(&output).unwrap();
            let queued = printed
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
                })
                .find(|e| e["message"] == "build queued");
            std::future::ready(queued)
        },
    )
    .await;
    assert_eq!(queued["level"], "INFO");
    let span = queued["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["name"] == "queue_build"))
        .unwrap_or_else(|| panic!("the event sits in the queue_build span: {queued}"));
    assert_eq!(span["build_id"], build_id, "{queued}");
    assert_eq!(span["site"], "logged", "{queued}");
}
