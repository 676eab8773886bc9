//! A controller serves runners one protocol version behind its own, so a
//! fleet is upgraded controller first, then runner by runner, without a
//! stop. These tests play an older runner by hand, over raw HTTP, with the
//! paths and JSON it sent: written out here on purpose, not taken from
//! `jamstack_proto`, since a released runner does not change when the
//! protocol does.

use crate::helpers::{SiteRepo, manifest_file, spawn_controller_for_registration};
use jamstack_proto::{OLDEST_SERVED_PROTOCOL_VERSION, PROTOCOL_HEADER, PROTOCOL_VERSION};
use serde_json::{Value, json};

/// A runner of an earlier release: every call carries its protocol
/// version, its token once it has one, and the lease for calls about a job.
struct OldRunner {
    http: reqwest::Client,
    base_url: String,
    version: u32,
    token: String,
}

impl OldRunner {
    fn new(base_url: &str, version: u32) -> Self {
        OldRunner {
            http: reqwest::Client::new(),
            base_url: base_url.to_owned(),
            version,
            token: String::new(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str, lease: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(PROTOCOL_HEADER, self.version.to_string())
            .bearer_auth(&self.token);
        if let Some(lease) = lease {
            request = request.header("x-jamstack-lease", lease);
        }
        request
    }

    /// Sends `body` as JSON (no body for `null`) and returns the status
    /// and the JSON answer (`null` for none).
    async fn post(&self, path: &str, lease: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.request(reqwest::Method::POST, path, lease);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_runner_one_protocol_version_behind_builds_and_deploys_on_the_current_controller() {
    assert_eq!(
        OLDEST_SERVED_PROTOCOL_VERSION, 12,
        "update this test's runner to the new oldest version"
    );
    let (app, registration) = spawn_controller_for_registration().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "built by an old runner")], "old runner");
    app.connect_site("rolling", &repo, "octo/rolling").await;
    let build_id = app.trigger_build("rolling", &sha).await;

    let mut old = OldRunner::new(&app.base_url, 12);
    let (status, registered) = old
        .post(
            "/runner/v1/register",
            None,
            json!({"registration_token": registration, "name": "old", "labels": [], "slots": 1}),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    old.token = registered["token"].as_str().unwrap().to_owned();

    let (status, connected) = old
        .post(
            "/runner/v1/connect",
            None,
            json!({"protocol_version": 12, "runner_name": "old"}),
        )
        .await;
    assert_eq!(status, 200, "{connected}");
    assert_eq!(connected["protocol_version"], PROTOCOL_VERSION);

    let (status, lease) = old
        .post(
            "/runner/v1/jobs/lease",
            None,
            json!({"runner_name": "old", "wait_seconds": 5}),
        )
        .await;
    assert_eq!(status, 200, "{lease}");
    assert_eq!(lease["build_id"], build_id);
    assert_eq!(lease["commit_sha"], sha.as_str());
    let job = lease["job_id"].as_i64().unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap();
    let lease_id = Some(lease_id);

    let (status, heartbeat) = old
        .post(&format!("/runner/v1/jobs/{job}/heartbeat"), lease_id, json!(null))
        .await;
    assert_eq!((status, heartbeat), (200, json!({"cancel": false})));
    let (status, _) = old
        .post(
            &format!("/runner/v1/jobs/{job}/commit"),
            lease_id,
            json!({"sha": sha, "message": "old runner", "author": "octo", "reachable": null}),
        )
        .await;
    assert_eq!(status, 204);

    let line = "2026-12-06T10:00:00.000Z sys built by protocol 12\n";
    let response = old
        .request(
            reqwest::Method::POST,
            &format!("/runner/v1/jobs/{job}/log?offset=0"),
            lease_id,
        )
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let appended: Value = response.json().await.unwrap();
    assert_eq!(appended["stored_length"], line.len());

    let page = b"<h1>served from an old runner</h1>";
    let file = manifest_file("index.html", page);
    let (status, manifest) = old
        .post(
            &format!("/runner/v1/jobs/{job}/deploy"),
            lease_id,
            json!({"files": [{"path": file.path, "sha256": file.sha256, "size": file.size, "mode": file.mode}]}),
        )
        .await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(manifest["missing"], json!([file.sha256]));
    // Protocol 12 sends each blob on its own; bundles came with 13.
    let uploaded = old
        .request(
            reqwest::Method::PUT,
            &format!("/runner/v1/blobs/{}", file.sha256),
            None,
        )
        .body(page.as_slice())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status().as_u16(), 204);
    let (status, finalized) = old
        .post(
            &format!("/runner/v1/jobs/{job}/deploy/finalize"),
            lease_id,
            json!(null),
        )
        .await;
    assert_eq!(status, 200, "{finalized}");
    assert_eq!(finalized["published"], true);

    // Protocol 12 sends the outcome with the steps' timings.
    let (status, completed) = old
        .post(
            &format!("/runner/v1/jobs/{job}/complete"),
            lease_id,
            json!({
                "result": "succeeded", "deploy_id": manifest["deploy_id"],
                "step_timings": [{"name": "build", "millis": 1200}],
            }),
        )
        .await;
    assert_eq!(status, 204, "{completed}");

    let build = app.wait_for_success(build_id).await;
    assert_eq!(build["deploy_id"], manifest["deploy_id"]);
    assert_eq!(build["step_timings"][0]["name"], "build", "{build}");
    assert_eq!(build["step_timings"][0]["millis"], 1200, "{build}");
    assert_eq!(
        app.visit("rolling", "/").await.body,
        String::from_utf8_lossy(page)
    );
    assert!(app.build_log(build_id).await.contains("built by protocol 12"));
}

#[tokio::test]
async fn runners_two_versions_behind_or_newer_than_the_controller_are_told_what_to_upgrade() {
    let (app, registration) = spawn_controller_for_registration().await;
    let too_old = OLDEST_SERVED_PROTOCOL_VERSION - 1;
    let newer = PROTOCOL_VERSION + 1;
    for (version, advice) in [
        (too_old, "install the runner release that matches the controller"),
        (newer, "newer than the controller: upgrade the controller first"),
    ] {
        let runner = OldRunner::new(&app.base_url, version);
        for (path, body) in [
            (
                "/runner/v1/register",
                json!({"registration_token": registration, "name": "r", "labels": [], "slots": 1}),
            ),
            (
                "/runner/v1/connect",
                json!({"protocol_version": version, "runner_name": "r"}),
            ),
        ] {
            let (status, refused) = runner.post(path, None, body).await;
            assert_eq!(status, 426, "{path} at {version}: {refused}");
            assert_eq!(refused["controller_version"], PROTOCOL_VERSION);
            assert_eq!(refused["runner_version"], version);
            let message = refused["message"].as_str().unwrap();
            assert!(message.contains(&format!("sent {version}")), "{message}");
            assert!(message.contains(advice), "{message}");
        }
    }
}
