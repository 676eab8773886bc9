//! `--log-format json`: one JSON object per line, carrying the spans (and
//! so the build id) an event happened in.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn json_logs_carry_the_build_id_on_the_span_of_the_queued_build() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = data.path().join("stdout.txt");
    let _controller = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data.path().join("data"))
            .env("JAMSTACK_LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting jamstack-controller"),
    );
    let started = Instant::now();
    let token = loop {
        let printed = std::fs::read_to_string(&output).unwrap_or_default();
        if let Some(token) = printed
            .lines()
            .find_map(|l| l.strip_prefix("Admin token:"))
            .and_then(|rest| rest.split_whitespace().next())
        {
            break token.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no admin token printed:\n{printed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let api = format!("http://127.0.0.1:{port}/api/v1");
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

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let printed = std::fs::read_to_string(&output).unwrap();
        let events: Vec<serde_json::Value> = printed
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let queued = events.iter().find(|e| e["message"] == "build queued");
        if let Some(queued) = queued {
            assert_eq!(queued["level"], "INFO");
            let span = queued["spans"]
                .as_array()
                .and_then(|spans| spans.iter().find(|s| s["name"] == "queue_build"))
                .unwrap_or_else(|| panic!("the event sits in the queue_build span: {queued}"));
            assert_eq!(span["build_id"], build_id, "{queued}");
            assert_eq!(span["site"], "logged", "{queued}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no `build queued` event was logged:\n{printed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
