//! Operations: metrics, readiness and outgoing notifications.

use crate::helpers::{COPY_SITE_TOML, HandRunner, SiteRepo, TestApp, spawn_app, spawn_controller_only_with};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl TestApp {
    async fn add_notification_hook(&self, site: &str, body: Value) -> Value {
        let (status, hook) = self
            .api_json(
                self.http
                    .post(self.api(&format!("/sites/{site}/notifications")))
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "{hook}");
        hook
    }

    async fn notification_deliveries(&self, site: &str, hook: &Value) -> Vec<Value> {
        let path = format!("/sites/{site}/notifications/{}/deliveries", hook["id"]);
        self.get_json(&path).await.as_array().unwrap().clone()
    }
}

fn value_of(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in the metrics:\n{metrics}"))
}

#[tokio::test]
async fn metrics_need_a_token_and_count_the_queue_builds_deploys_and_edge_answers() {
    let (app, token) = spawn_controller_only_with(|_| {}).await;
    let refused = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "metrics without a token are refused");
    let wrong = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "by hand")], "by hand");
    app.connect_site("gauges", &repo, "octo/gauges").await;
    let before = app.metrics().await;
    assert_eq!(value_of(&before, "jamstack_queue_depth"), 0.0);
    assert_eq!(value_of(&before, "jamstack_queue_wait_seconds_count"), 0.0);

    let build = app.trigger_build("gauges", &sha).await;
    app.wait_for_metric("jamstack_queue_depth 1").await;

    let runner = HandRunner::connect(&app, &token).await;
    let lease = runner.lease().await;
    let leased = app.wait_for_metric("jamstack_builds_running 1").await;
    assert_eq!(value_of(&leased, "jamstack_queue_depth"), 0.0);
    assert_eq!(value_of(&leased, "jamstack_runners_busy"), 1.0);
    assert!(value_of(&leased, "jamstack_runners_connected") >= 1.0, "{leased}");
    app.wait_for_metric("jamstack_queue_wait_seconds_count 1").await;

    // Two paths with the same content: one blob travels for two files.
    let files: &[(&str, &[u8])] = &[("index.html", b"same bytes"), ("copy.html", b"same bytes")];
    let answer = runner.send_manifest(&lease, files).await;
    runner.upload_missing(&answer, files).await;
    runner.finish(&lease).await;
    assert_eq!(app.wait_for_build(build).await["state"], "succeeded");

    let after = app
        .wait_for_metric("jamstack_builds_total{site=\"gauges\",outcome=\"succeeded\"} 1")
        .await;
    assert!(
        after.contains("jamstack_build_duration_seconds_count{site=\"gauges\",outcome=\"succeeded\"} 1"),
        "{after}"
    );
    assert_eq!(value_of(&after, "jamstack_builds_running"), 0.0);
    assert_eq!(value_of(&after, "jamstack_deploy_files_referenced_total"), 2.0);
    assert_eq!(value_of(&after, "jamstack_deploy_files_uploaded_total"), 1.0);
    assert_eq!(value_of(&after, "jamstack_deploy_bytes_referenced_total"), 20.0);
    assert_eq!(value_of(&after, "jamstack_deploy_bytes_uploaded_total"), 10.0);

    assert_eq!(app.visit("gauges", "/").await.status, 200);
    assert_eq!(app.visit("gauges", "/no/such/page").await.status, 404);
    assert_eq!(app.visit("gauges", "/index.html").await.status, 200);
    let served = app
        .wait_for_metric("jamstack_edge_requests_total{class=\"4xx\"} 1")
        .await;
    assert_eq!(
        value_of(&served, "jamstack_edge_requests_total{class=\"2xx\"}"),
        2.0
    );
    assert_eq!(
        value_of(
            &served,
            "jamstack_edge_request_duration_seconds_count{class=\"2xx\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn an_open_metrics_listener_serves_metrics_without_a_token_and_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let mut config = jamstack_controller::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = jamstack_controller::Application::build(config).await.unwrap();
    let metrics = format!("http://{}", app.metrics_addr().expect("a metrics listener"));
    let main = app.base_url().to_owned();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let open = http.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(open.status(), 200);
    assert!(
        open.text()
            .await
            .unwrap()
            .contains("# TYPE jamstack_queue_depth gauge")
    );
    let api = http.get(format!("{metrics}/api/v1/sites")).send().await.unwrap();
    assert_eq!(api.status(), 404, "the open listener serves only /metrics");
    let guarded = http.get(format!("{main}/metrics")).send().await.unwrap();
    assert_eq!(guarded.status(), 401, "the main listener still wants a token");
}

#[tokio::test]
async fn readiness_fails_with_the_reason_when_the_blob_store_cannot_be_written() {
    let (app, _) = spawn_controller_only_with(|_| {}).await;
    let ready = app
        .http
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The blob directory's place taken by a file: nothing can be stored.
    let blobs = app.data_dir.join("blobs");
    let _ = std::fs::remove_dir_all(&blobs);
    std::fs::write(&blobs, "not a directory").unwrap();
    let unready = app
        .http
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unready.status(), 503);
    let reason = unready.text().await.unwrap();
    assert!(reason.contains("the blob store"), "{reason}");
    assert!(reason.contains(&blobs.display().to_string()), "{reason}");

    std::fs::remove_file(&blobs).unwrap();
    let again = app
        .http
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "ready again once the store is writable");
}

/// What a receiver was sent.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A notification receiver on a random port that records every request and
/// answers 500 to the first `failures` of them, 200 after.
pub(crate) async fn start_receiver(failures: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::<Received>::new()));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = received.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                let mut all = received.lock().unwrap();
                all.push(Received { headers, body });
                if all.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

pub(crate) async fn wait_for_requests(received: &Arc<Mutex<Vec<Received>>>, count: usize) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + crate::processes::PATIENCE;
    loop {
        let now = received.lock().unwrap().clone();
        if now.len() >= count {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the receiver got {} requests, not {count}: {now:?}",
            now.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks `X-Jamstack-Signature: t=<seconds>,v1=<hex>` as a receiver would.
fn signature_is_valid(secret: &str, request: &Received) -> bool {
    let header = request.headers["x-jamstack-signature"].to_str().unwrap();
    let Some((timestamp, signature)) = header.strip_prefix("t=").and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let fresh = timestamp.parse::<i64>().is_ok_and(|t| (now - t).abs() < 300);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    fresh
        && mac
            .verify_slice(&hex::decode(signature).unwrap_or_default())
            .is_ok()
}

/// A hook is a site admin's URL: by default it may not reach the
/// controller's own machine or network.
#[tokio::test]
async fn a_hook_may_not_call_a_private_or_local_address_unless_the_controller_allows_it() {
    let (app, _) =
        spawn_controller_only_with(|config| config.notifications.allow_private_targets = false).await;
    app.connect_site("guarded", &SiteRepo::new(), "octo/guarded")
        .await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
        "http://localhost:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
    ] {
        let (status, refused) = app
            .api_json(
                app.http
                    .post(app.api("/sites/guarded/notifications"))
                    .json(&json!({ "url": url })),
            )
            .await;
        assert_eq!(status, 400, "{url}: {refused}");
        let error = refused["error"].as_str().unwrap();
        assert!(
            error.contains("private or local address") && error.contains("--allow-private-hook-targets"),
            "{url}: {error}"
        );
    }
    assert_eq!(app.get_json("/sites/guarded/notifications").await, json!([]));
    // A public receiver is taken (it is not called until something happens).
    app.add_notification_hook("guarded", json!({ "url": "https://hooks.example.com/deploys" }))
        .await;
}

#[tokio::test]
async fn a_receiver_gets_signed_notifications_of_a_builds_start_success_and_publish() {
    let app = spawn_app().await;
    let (url, received) = start_receiver(0).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "notified")],
        "first",
    );
    app.connect_site("notified", &repo, "octo/notified").await;

    let (status, refused) = app
        .api_json(
            app.http
                .post(app.api("/sites/notified/notifications"))
                .json(&json!({"url": url, "events": ["build.exploded"]})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        refused["error"].as_str().unwrap().contains("build.exploded"),
        "{refused}"
    );

    let hook = app
        .add_notification_hook(
            "notified",
            json!({"url": url, "events": ["build.started", "build.succeeded", "deploy.published"]}),
        )
        .await;
    let secret = hook["secret"]
        .as_str()
        .expect("a secret made and shown once")
        .to_owned();
    let listed = app.get_json("/sites/notified/notifications").await;
    assert_eq!(listed[0]["url"], url.as_str());
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is never shown again: {listed}"
    );
    assert!(listed[0].get("secret_sealed").is_none(), "{listed}");

    let build = app.trigger_build("notified", &sha).await;
    let built = app.wait_for_success(build).await;
    let requests = wait_for_requests(&received, 3).await;

    let mut events = Vec::new();
    let mut delivery_ids = std::collections::HashSet::new();
    for request in &requests {
        assert!(
            signature_is_valid(&secret, request),
            "a valid signature: {request:?}"
        );
        assert!(!signature_is_valid("another secret", request));
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let event = request.headers["x-jamstack-event"].to_str().unwrap().to_owned();
        assert_eq!(body["event"], event.as_str());
        assert_eq!(body["data"]["site"]["name"], "notified");
        delivery_ids.insert(
            request.headers["x-jamstack-delivery"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        if event.starts_with("build.") {
            assert_eq!(body["data"]["build"]["id"], build);
            assert_eq!(body["data"]["build"]["commit_sha"], sha.as_str());
        } else {
            assert_eq!(body["data"]["deploy"]["id"], built["deploy_id"]);
        }
        events.push(event);
    }
    events.sort();
    assert_eq!(events, ["build.started", "build.succeeded", "deploy.published"]);
    assert_eq!(delivery_ids.len(), 3, "each delivery has its own id");

    let log = app.notification_deliveries("notified", &hook).await;
    assert_eq!(log.len(), 3, "{log:?}");
    for delivery in &log {
        assert_eq!(delivery["state"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status"], 200);
    }
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_the_same_delivery_id_until_it_answers() {
    let (app, _) = spawn_controller_only_with(|config| {
        config.notifications.retry.first_delay = Duration::from_millis(100);
        config.notifications.retry.max_delay = Duration::from_millis(400);
    })
    .await;
    let (url, received) = start_receiver(2).await;
    let repo = SiteRepo::new();
    app.connect_site("flaky", &repo, "octo/flaky").await;
    let hook = app
        .add_notification_hook(
            "flaky",
            json!({"url": url, "events": ["deploy.locked"], "secret": "a shared secret of ours"}),
        )
        .await;
    assert!(
        hook.get("secret").is_none(),
        "a secret given is not echoed: {hook}"
    );

    app.lock_publishing("flaky").await;
    // An event the hook did not ask for is not sent.
    app.unlock_publishing("flaky").await;
    let requests = wait_for_requests(&received, 3).await;
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| r.headers["x-jamstack-delivery"].to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one delivery, three attempts: {ids:?}"
    );
    for request in &requests {
        assert_eq!(request.headers["x-jamstack-event"], "deploy.locked");
        assert!(signature_is_valid("a shared secret of ours", request));
    }

    let deadline = tokio::time::Instant::now() + crate::processes::PATIENCE;
    let log = loop {
        let log = app.notification_deliveries("flaky", &hook).await;
        if log.first().is_some_and(|d| d["state"] == "delivered") || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["state"], "delivered", "{log:?}");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status"], 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received.lock().unwrap().len(), 3, "nothing is sent after success");

    let (status, _) = app
        .api_json(
            app.http
                .delete(app.api(&format!("/sites/flaky/notifications/{}", hook["id"]))),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .api_json(
            app.http
                .get(app.api(&format!("/sites/flaky/notifications/{}/deliveries", hook["id"]))),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn publishing_an_older_deploy_notifies_a_rollback_and_a_newer_one_a_publish() {
    let (app, token) = spawn_controller_only_with(|_| {}).await;
    let (url, received) = start_receiver(0).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "by hand")], "by hand");
    app.connect_site("rolled", &repo, "octo/rolled").await;
    let runner = HandRunner::connect(&app, &token).await;
    let first = runner
        .deploy(&app, "rolled", &sha, &[("index.html", b"one")])
        .await;
    let second = runner
        .deploy(&app, "rolled", &sha, &[("index.html", b"two")])
        .await;
    let hook = app
        .add_notification_hook(
            "rolled",
            json!({"url": url, "events": ["deploy.published", "deploy.rolled_back"]}),
        )
        .await;

    let (status, _) = app.publish("rolled", &first.deploy_id).await;
    assert_eq!(status, 200);
    let (status, _) = app.publish("rolled", &second.deploy_id).await;
    assert_eq!(status, 200);
    let requests = wait_for_requests(&received, 2).await;
    let mut seen: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["event"].as_str().unwrap().to_owned(),
                body["data"]["deploy"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        ("deploy.rolled_back".to_owned(), first.deploy_id.clone()),
        ("deploy.published".to_owned(), second.deploy_id.clone()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let log = app.notification_deliveries("rolled", &hook).await;
    assert_eq!(log.len(), 2, "{log:?}");
}

/// A delivery waiting for its receiver survives a restart of the
/// controller: the new process sends it from the outbox.
#[tokio::test]
async fn a_pending_notification_is_sent_by_the_controller_that_starts_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut config = jamstack_controller::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.notifications.retry.attempts = 100;
    config.notifications.retry.first_delay = Duration::from_millis(100);
    config.notifications.retry.max_delay = Duration::from_millis(200);
    config.notifications.timeout = Duration::from_secs(1);
    config.notifications.allow_private_targets = true;
    config.allow_local_repositories = true;
    // The receiver's port is held, bound but not listening, so calls to it
    // are refused until it listens, and no other process can take it.
    let receiver_socket = tokio::net::TcpSocket::new_v4().unwrap();
    receiver_socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = receiver_socket.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");

    let first = jamstack_controller::Application::build(config.clone())
        .await
        .unwrap();
    let app = TestApp::of(first.base_url(), first.new_admin_token.as_deref().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async {
        let _ = stopped.await;
    }));
    app.connect_site("restarted", &SiteRepo::new(), "octo/restarted")
        .await;
    let hook = app
        .add_notification_hook("restarted", json!({"url": url, "events": ["deploy.locked"]}))
        .await;
    app.lock_publishing("restarted").await;
    let deadline = tokio::time::Instant::now() + crate::processes::PATIENCE;
    loop {
        let log = app.notification_deliveries("restarted", &hook).await;
        if log.first().is_some_and(|d| d["attempts"].as_i64() >= Some(2)) {
            assert_eq!(log[0]["state"], "pending", "{log:?}");
            assert!(
                log[0]["last_error"].as_str().unwrap().contains("calling"),
                "{log:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempts: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // The receiver comes up; a new controller on the same data starts.
    let received = Arc::new(Mutex::new(Vec::<Received>::new()));
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = received.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                received.lock().unwrap().push(Received { headers, body });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = receiver_socket.listen(64).unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let second = jamstack_controller::Application::build(config).await.unwrap();
    let app = TestApp::of(second.base_url(), &app.admin_token);
    tokio::spawn(second.run_until_stopped());

    let requests = wait_for_requests(&received, 1).await;
    assert_eq!(requests[0].headers["x-jamstack-event"], "deploy.locked");
    let deadline = tokio::time::Instant::now() + crate::processes::PATIENCE;
    loop {
        let log = app.notification_deliveries("restarted", &hook).await;
        if log[0]["state"] == "delivered" {
            assert_eq!(log.len(), 1, "one delivery, not a new one: {log:?}");
            assert_eq!(
                requests[0].headers["x-jamstack-delivery"],
                log[0]["delivery_id"].as_str().unwrap()
            );
            assert_eq!(log[0]["last_status"], 204);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
