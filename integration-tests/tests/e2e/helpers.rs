//! `spawn_app()` and the actions a user takes, named as a user would.

// Named by path so the benches, which include this file by path, find it too.
#[path = "helpers/github_api.rs"]
pub mod github_api;

#[path = "helpers/mmdb.rs"]
pub mod mmdb;

pub use github_api::FakeGitHub;
use hmac::{Hmac, Mac};
use jamstack_controller::config::{GitHubApp, RetryPolicy, S3Config};
use jamstack_controller::{Application, Config};
use jamstack_proto::{FinalizeResponse, JobLease, JobOutcome, ManifestFile, ManifestResponse};
use jamstack_runner::client::ControllerClient;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// How long a start, a build or a recovery may take before a test gives up
/// waiting: generous, since parallel Docker builds on two cores are slow,
/// and a deadline only turns a hang into a failure; it measures nothing.
pub const PATIENCE: Duration = Duration::from_secs(180);

/// Polls `check` every 100 ms until it gives `Ok`; past [`PATIENCE`], fails
/// saying `what` never happened and the last thing `check` said (`Err`:
/// how things stood). The one way the tests wait for something.
pub async fn eventually<T, F>(what: &str, mut check: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen within {PATIENCE:?}:\n{state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct TestApp {
    pub base_url: String,
    pub port: u16,
    pub admin_token: String,
    pub http: reqwest::Client,
    data: Option<TempDir>,
    /// The controller's data directory (database, blobs, staging).
    pub data_dir: PathBuf,
    /// The in-process runner's name, unique per test: the label that tells
    /// this test's containers from everyone else's on the shared engine.
    pub runner_name: String,
    /// The controller's state, when it runs in this process: for tests
    /// that watch what it holds (e.g. sign-ins waiting their turn) or age
    /// its records.
    pub state: Option<jamstack_controller::state::AppState>,
    /// The port of the HTTPS listener, when `--https-listen` was given.
    pub https_port: Option<u16>,
}

/// A controller with a runner inside, as `jamstack-controller up` runs them.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`], acting as a GitHub App against the stand-in GitHub API,
/// with quick retries.
pub async fn spawn_app_with_github(github: &FakeGitHub) -> TestApp {
    spawn_app_with(|config| use_github(config, github)).await
}

/// [`spawn_controller_only`], against the stand-in GitHub API.
pub async fn spawn_controller_with_github(github: &FakeGitHub) -> (TestApp, String) {
    spawn_controller_with_github_and(github, |_| {}).await
}

/// [`spawn_controller_with_github`], with the controller's settings
/// changed by `configure` as well.
pub async fn spawn_controller_with_github_and(
    github: &FakeGitHub,
    configure: impl FnOnce(&mut Config),
) -> (TestApp, String) {
    let (app, data) = build_app(|config| {
        use_github(config, github);
        configure(config);
    })
    .await;
    let token = app.embedded_runner_token().await.expect("minting a runner token");
    (serve(app, data), token)
}

fn use_github(config: &mut Config, github: &FakeGitHub) {
    config.github_api_url = github.url.clone();
    config.github_app = Some(GitHubApp {
        app_id: github_api::APP_ID,
        private_key_file: github.app_key_file(),
    });
    config.github_retry = RetryPolicy {
        attempts: 6,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
    };
}

/// `spawn_app` with the controller's settings changed by `configure`
/// (blob store, limits, retention, GitHub).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_both(configure, |_| {}).await
}

/// `spawn_app`, with the runner's settings changed by `configure` first.
pub async fn spawn_app_with_runner(configure: impl FnOnce(&mut jamstack_runner::RunnerConfig)) -> TestApp {
    spawn_app_with_both(|_| {}, configure).await
}

async fn spawn_app_with_both(
    controller: impl FnOnce(&mut Config),
    configure: impl FnOnce(&mut jamstack_runner::RunnerConfig),
) -> TestApp {
    let (app, data) = build_app(controller).await;
    let token = app.embedded_runner_token().await.expect("minting a runner token");
    let mut runner = jamstack_runner::RunnerConfig::new(app.base_url(), &token);
    runner.name = format!("test-runner-{}", rand_suffix());
    runner.work_dir = data.path().join("runner");
    runner.lease_wait = Duration::from_secs(5);
    configure(&mut runner);
    let mut test_app = serve(app, data);
    test_app.runner_name = runner.name.clone();
    tokio::spawn(async move {
        if let Err(e) = jamstack_runner::run(runner).await {
            panic!("the runner stopped: {e:#}");
        }
    });
    test_app
}

/// A controller with no runner; the runner token is returned so a test can
/// play the runner's part of the protocol by hand.
pub async fn spawn_controller_only() -> (TestApp, String) {
    spawn_controller_only_with(|_| {}).await
}

pub async fn spawn_controller_only_with(configure: impl FnOnce(&mut Config)) -> (TestApp, String) {
    let (app, data) = build_app(configure).await;
    let token = app.embedded_runner_token().await.expect("minting a runner token");
    (serve(app, data), token)
}

/// A controller without a runner, and the registration token its first
/// start made, for tests that register runners of their own.
pub async fn spawn_controller_for_registration() -> (TestApp, String) {
    let (app, data) = build_app(|_| {}).await;
    let registration = app
        .new_registration_token
        .clone()
        .expect("a fresh data directory makes a registration token");
    (serve(app, data), registration)
}

async fn build_app(configure: impl FnOnce(&mut Config)) -> (Application, TempDir) {
    require_docker().await;
    let data = tempfile::tempdir().expect("a temporary data directory");
    let mut config = Config::new(data.path().join("controller"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    config.heartbeat_interval = Duration::from_secs(1);
    config.lease_duration = Duration::from_secs(15);
    // The tests' hook receivers listen on loopback.
    config.notifications.allow_private_targets = true;
    // The tests' repositories are folders and http:// servers.
    config.allow_local_repositories = true;
    configure(&mut config);
    let app = Application::build(config).await.expect("starting the controller");
    (app, data)
}

/// Another controller without a runner on the PostgreSQL database
/// `database_url`, which an earlier controller made: that one's admin token
/// is `admin_token` (a start on a database with tokens makes none).
pub async fn spawn_another_controller_on(database_url: &str, admin_token: &str) -> TestApp {
    spawn_another_controller_on_with(database_url, admin_token, |_| {}).await
}

/// [`spawn_another_controller_on`], with its settings changed by
/// `configure` as well (an HTTPS listener, the first one's secret key).
pub async fn spawn_another_controller_on_with(
    database_url: &str,
    admin_token: &str,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let (app, data) = build_app(|config| {
        config.database_url = Some(database_url.to_owned());
        configure(config);
    })
    .await;
    serve_with_token(app, data, admin_token.to_owned())
}

/// [`spawn_another_controller_on`], sharing `first`'s data folder (its
/// local blob store and secret key), as controllers behind one load
/// balancer share a bucket and a key: either serves what the other stored.
pub async fn spawn_controller_beside(first: &TestApp, database_url: &str) -> TestApp {
    spawn_controller_beside_with(first, database_url, |_| {}).await
}

/// [`spawn_controller_beside`], with its settings changed by `configure`
/// as well (an HTTPS listener, ACME).
pub async fn spawn_controller_beside_with(
    first: &TestApp,
    database_url: &str,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let data_dir = first.data_dir.clone();
    let (app, data) = build_app(|config| {
        config.database_url = Some(database_url.to_owned());
        config.data_dir = data_dir;
        configure(config);
    })
    .await;
    serve_with_token(app, data, first.admin_token.clone())
}

fn serve(app: Application, data: TempDir) -> TestApp {
    let admin_token = app
        .new_admin_token
        .clone()
        .expect("a fresh data directory makes an admin token");
    serve_with_token(app, data, admin_token)
}

fn serve_with_token(app: Application, data: TempDir, admin_token: String) -> TestApp {
    let test_app = TestApp {
        base_url: app.base_url().to_owned(),
        port: app.port(),
        admin_token,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        data_dir: app.state().config.data_dir.clone(),
        data: Some(data),
        runner_name: String::new(),
        state: Some(app.state().clone()),
        https_port: app.https_addr().map(|addr| addr.port()),
    };
    tokio::spawn(async move { app.run_until_stopped().await.expect("the controller stopped") });
    test_app
}

impl TestApp {
    /// The API of a controller running elsewhere (another process).
    pub fn of(base_url: &str, admin_token: &str) -> Self {
        let port = base_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a URL with a port");
        TestApp {
            base_url: base_url.to_owned(),
            port,
            admin_token: admin_token.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            data: None,
            data_dir: PathBuf::new(),
            runner_name: String::new(),
            state: None,
            https_port: None,
        }
    }

    /// The log of one attempt of a build.
    pub async fn attempt_log(&self, id: i64, attempt: i64) -> String {
        let path = format!("/builds/{id}/log?attempt={attempt}");
        self.send(self.http.get(self.api(&path)))
            .await
            .text()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.api_json(self.http.get(self.api(path))).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// A fresh, empty PostgreSQL database; `./scripts/start-postgres.sh` starts
/// the server.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url = std::env::var("JAMSTACK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://jamstack:jamstack@127.0.0.1:5432/postgres".to_owned());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin_url} is unreachable ({e}); start it with ./scripts/start-postgres.sh")
    });
    let name = format!("jamstack_test_{}", rand_suffix().replace('-', "_"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').expect("the URL ends in /<database>");
    format!("{base}/{name}")
}

async fn require_docker() {
    if let Err(e) = jamstack_runner::executor::docker::engine::Engine::connect().await {
        panic!("these tests need a running Docker engine: {e}");
    }
}

/// The `jamstack-runner` binary beside this test binary (`target/<profile>`).
/// `scripts/test.sh` builds it before the tests run.
pub fn runner_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps");
    let binary = dir.join("jamstack-runner");
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build -p jamstack-runner --bin jamstack-runner` \
         (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// A `jamstack-runner` process of its own, killed when dropped.
pub struct RunnerProcess {
    pub child: std::process::Child,
}

impl RunnerProcess {
    /// Starts the runner binary against `app` with `token`, `name` and
    /// `work_dir`, plus `extra` arguments.
    pub fn start(app: &TestApp, token: &str, name: &str, work_dir: &Path, extra: &[&str]) -> Self {
        let child = std::process::Command::new(runner_binary())
            .args(["--controller", &app.base_url, "--name", name])
            .arg("--work-dir")
            .arg(work_dir)
            .args(extra)
            .env("JAMSTACK_RUNNER_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("starting the runner binary");
        RunnerProcess { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The peak resident memory of the process so far, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading the runner's /proc status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/<pid>/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("a number of kB");
        kib * 1024
    }

    /// Ends the process as a crash would: SIGKILL, no cleanup.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("killing the runner");
        self.child.wait().expect("reaping the runner");
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Docker objects carrying `label=value`: containers (running or not),
/// volumes and networks, as `kind name` lines, asked of the docker CLI.
pub fn docker_objects_labelled(label: &str, value: &str) -> Vec<String> {
    let filter = format!("label={label}={value}");
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a", "--format", "{{.Names}}"]),
        ("volume", vec!["volume", "ls", "--format", "{{.Name}}"]),
        ("network", vec!["network", "ls", "--format", "{{.Name}}"]),
    ] {
        let output = std::process::Command::new("docker")
            .args(&args)
            .args(["--filter", &filter])
            .output()
            .expect("running the docker CLI");
        assert!(
            output.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for name in String::from_utf8_lossy(&output.stdout).lines() {
            found.push(format!("{kind} {name}"));
        }
    }
    found
}

/// Removes the containers, volumes and networks carrying `label=value`.
/// Tests use it for what their own runners made and nothing else.
pub fn remove_docker_objects_labelled(label: &str, value: &str) {
    for object in docker_objects_labelled(label, value) {
        let (kind, name) = object.split_once(' ').unwrap();
        let args: &[&str] = match kind {
            "container" => &["rm", "-f", "-v", name],
            "volume" => &["volume", "rm", "-f", name],
            _ => &["network", "rm", name],
        };
        let _ = std::process::Command::new("docker").args(args).output();
    }
}

impl Drop for TestApp {
    /// A test's runtime stops its in-process runner wherever it is, maybe
    /// between reporting a build and removing its objects (which a runner
    /// that starts again would clear; this one never starts again). So the
    /// test removes what its runner left, by the runner's unique name.
    fn drop(&mut self) {
        if !self.runner_name.is_empty() {
            remove_docker_objects_labelled("org.jamstack.runner", &self.runner_name);
        }
    }
}

/// What a site served for one request.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    /// The body as text (lossy for binary or compressed bodies).
    pub body: String,
    pub bytes: Vec<u8>,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap_or(""))
    }
}

impl TestApp {
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base_url)
    }

    /// Sends an API request with the admin token. Tests that restart the
    /// controller meet a closed connection or two: those are retried.
    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = request.bearer_auth(&self.admin_token);
        let mut tries = 0;
        loop {
            match request.try_clone().expect("a plain request").send().await {
                Ok(response) => return response,
                Err(e) if tries < 100 && (e.is_connect() || e.is_request()) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("calling the API: {e}"),
            }
        }
    }

    pub async fn api_json(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = self.send(request).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Connects a repository as a site; `github_repo` is `owner/name`.
    pub async fn connect_site(&self, name: &str, repo: &SiteRepo, github_repo: &str) -> Value {
        let (status, body) = self
            .api_json(self.http.post(self.api("/sites")).json(&json!({
                "name": name,
                "repo_url": repo.url(),
                "github_repo": github_repo,
                "production_branch": "main",
            })))
            .await;
        assert_eq!(status, 201, "connecting site {name}: {body}");
        body
    }

    /// Registers a runner with `labels` in the controller running in this
    /// process, as `/runner/v1/register` would, and starts it here; returns
    /// its name as registered.
    pub async fn start_runner_with_labels(&self, name: &str, labels: &[&str]) -> String {
        use jamstack_controller::auth::{hash_token, new_token};
        let state = self.state.as_ref().expect("the controller runs in this process");
        let token = new_token(jamstack_controller::db::TokenKind::Runner);
        let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        state
            .db
            .register_runner(name, &labels, 1, &hash_token(&token))
            .await
            .expect("registering a runner");
        let mut runner = jamstack_runner::RunnerConfig::new(&self.base_url, &token);
        // The engine is shared: a name of its own tells this runner's containers apart.
        runner.name = format!("test-runner-{}", rand_suffix());
        runner.work_dir = self.data_dir.join(format!("runner-{name}"));
        runner.lease_wait = Duration::from_secs(5);
        tokio::spawn(async move {
            if let Err(e) = jamstack_runner::run(runner).await {
                panic!("the runner stopped: {e:#}");
            }
        });
        name.to_owned()
    }

    /// Connects a site with any settings the API takes (`name` is added).
    pub async fn connect_site_with(&self, name: &str, settings: Value) -> Value {
        let mut body = settings;
        body["name"] = json!(name);
        let (status, answer) = self
            .api_json(self.http.post(self.api("/sites")).json(&body))
            .await;
        assert_eq!(status, 201, "connecting site {name}: {answer}");
        answer
    }

    /// Changes a site's settings.
    pub async fn change_site_settings(&self, name: &str, changes: Value) -> Value {
        let (status, answer) = self
            .api_json(
                self.http
                    .patch(self.api(&format!("/sites/{name}")))
                    .json(&changes),
            )
            .await;
        assert_eq!(status, 200, "changing site {name}: {answer}");
        answer
    }

    /// Recorded webhook deliveries, newest first.
    pub async fn webhook_deliveries(&self) -> Vec<Value> {
        let (status, body) = self
            .api_json(self.http.get(self.api("/webhook-deliveries")))
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Delivers a webhook signed with the controller's secret.
    pub async fn deliver_github_event(&self, event: &str, payload: &Value) -> (u16, Value) {
        let id = format!("delivery-{}", rand_suffix());
        self.deliver_github_event_with_id(event, payload, &id).await
    }

    /// Delivers a webhook under a given `X-GitHub-Delivery` id, as GitHub
    /// does again when someone presses "Redeliver".
    pub async fn deliver_github_event_with_id(&self, event: &str, payload: &Value, id: &str) -> (u16, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        self.deliver_webhook(event, body.clone(), Some(sign(WEBHOOK_SECRET, &body)), Some(id))
            .await
    }

    pub async fn deliver_raw_webhook(
        &self,
        event: &str,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> (u16, Value) {
        let id = format!("delivery-{}", rand_suffix());
        self.deliver_webhook(event, body, signature, Some(&id)).await
    }

    /// Delivers a body already signed, under `delivery_id`.
    pub async fn deliver_signed_webhook(
        &self,
        event: &str,
        body: Vec<u8>,
        signature: String,
        delivery_id: &str,
    ) -> (u16, Value) {
        self.deliver_webhook(event, body, Some(signature), Some(delivery_id))
            .await
    }

    async fn deliver_webhook(
        &self,
        event: &str,
        body: Vec<u8>,
        signature: Option<String>,
        delivery_id: Option<&str>,
    ) -> (u16, Value) {
        self.deliver_webhook_as(event, "application/json", body, signature, delivery_id)
            .await
    }

    /// Delivers a body as sent under a webhook's chosen content type
    /// (`application/json` or `application/x-www-form-urlencoded`).
    pub async fn deliver_webhook_as(
        &self,
        event: &str,
        content_type: &str,
        body: Vec<u8>,
        signature: Option<String>,
        delivery_id: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/webhooks/github", self.base_url))
            .header("X-GitHub-Event", event)
            .header("content-type", content_type)
            .body(body);
        if let Some(id) = delivery_id {
            request = request.header("X-GitHub-Delivery", id);
        }
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        let response = request.send().await.expect("delivering a webhook");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Pushes `sha` to `main` of `github_repo`, as GitHub would tell us.
    pub async fn push(&self, github_repo: &str, repo: &SiteRepo, sha: &str) -> i64 {
        self.push_to_branch(github_repo, repo, "main", sha).await
    }

    /// Pushes `sha` to `branch`; the push must queue a build.
    pub async fn push_to_branch(&self, github_repo: &str, repo: &SiteRepo, branch: &str, sha: &str) -> i64 {
        let payload = push_payload(github_repo, repo, branch, sha);
        let (status, body) = self.deliver_github_event("push", &payload).await;
        assert_eq!(status, 202, "push webhook: {body}");
        body["builds"][0].as_i64().expect("the push queued a build")
    }

    /// Deletes `branch` on GitHub, as the push webhook tells it.
    pub async fn delete_branch(&self, github_repo: &str, repo: &SiteRepo, branch: &str) -> Value {
        let mut payload = push_payload(github_repo, repo, branch, &"0".repeat(40));
        payload["deleted"] = json!(true);
        payload["head_commit"] = Value::Null;
        payload["commits"] = json!([]);
        let (status, body) = self.deliver_github_event("push", &payload).await;
        assert_eq!(status, 200, "branch deletion webhook: {body}");
        body
    }

    /// Opens pull request `number` from `branch` at `sha`; returns the
    /// preview build it queued.
    pub async fn open_pull_request(&self, github_repo: &str, number: i64, branch: &str, sha: &str) -> i64 {
        self.pull_request_event("opened", github_repo, number, branch, sha)
            .await
    }

    /// Pushes `sha` to an open pull request's branch.
    pub async fn push_to_pull_request(&self, github_repo: &str, number: i64, branch: &str, sha: &str) -> i64 {
        self.pull_request_event("synchronize", github_repo, number, branch, sha)
            .await
    }

    async fn pull_request_event(
        &self,
        action: &str,
        github_repo: &str,
        number: i64,
        branch: &str,
        sha: &str,
    ) -> i64 {
        let payload = pull_request_payload(action, github_repo, number, branch, sha);
        let (status, body) = self.deliver_github_event("pull_request", &payload).await;
        assert_eq!(status, 202, "pull_request {action} webhook: {body}");
        body["builds"][0]
            .as_i64()
            .expect("the pull request queued a build")
    }

    pub async fn close_pull_request(&self, github_repo: &str, number: i64, branch: &str, sha: &str) -> Value {
        let payload = pull_request_payload("closed", github_repo, number, branch, sha);
        let (status, body) = self.deliver_github_event("pull_request", &payload).await;
        assert_eq!(status, 200, "pull_request closed webhook: {body}");
        body
    }

    /// The controller's data directory (database, secret key).
    pub fn data_dir(&self) -> &Path {
        self.data.as_ref().expect("a controller this test started").path()
    }

    pub async fn build(&self, id: i64) -> Value {
        let (status, body) = self
            .api_json(self.http.get(self.api(&format!("/builds/{id}"))))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The site's latest builds, up to the API's largest page (100).
    pub async fn builds_of(&self, site: &str) -> Vec<Value> {
        let (status, body) = self
            .api_json(
                self.http
                    .get(self.api(&format!("/sites/{site}/builds?per_page=100"))),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Sets the site's limits and timeout (`PUT build-settings`).
    pub async fn set_build_settings(&self, site: &str, settings: Value) -> Value {
        let (status, body) = self
            .api_json(
                self.http
                    .put(self.api(&format!("/sites/{site}/build-settings")))
                    .json(&settings),
            )
            .await;
        assert_eq!(status, 200, "setting build settings of {site}: {body}");
        body
    }

    /// Sets one of the site's environment variables.
    pub async fn set_env(&self, site: &str, name: &str, value: &str, secret: bool) -> Value {
        let (status, body) = self
            .api_json(
                self.http
                    .put(self.api(&format!("/sites/{site}/env/{name}")))
                    .json(&json!({ "value": value, "secret": secret })),
            )
            .await;
        assert_eq!(status, 200, "setting {name} on {site}: {body}");
        body
    }

    /// Starts a build of the site's production branch head from the API.
    pub async fn trigger_build_with(&self, site: &str, body: Value) -> i64 {
        let (status, body) = self
            .api_json(
                self.http
                    .post(self.api(&format!("/sites/{site}/builds")))
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "triggering a build of {site}: {body}");
        body["id"].as_i64().expect("a build id")
    }

    /// Cancels a build; returns it as the API answered.
    pub async fn cancel_build(&self, id: i64) -> Value {
        let (status, body) = self
            .api_json(self.http.post(self.api(&format!("/builds/{id}/cancel"))))
            .await;
        assert_eq!(status, 200, "cancelling build {id}: {body}");
        body
    }

    /// Waits until the build's log contains `needle`; returns the log.
    pub async fn wait_for_log(&self, id: i64, needle: &str) -> String {
        eventually(&format!("build {id}'s log showing `{needle}`"), || async move {
            let log = self.build_log(id).await;
            if log.contains(needle) { Ok(log) } else { Err(log) }
        })
        .await
    }

    /// What this test's in-process runner has on the Docker engine.
    pub fn runner_leftovers(&self) -> Vec<String> {
        docker_objects_labelled("org.jamstack.runner", &self.runner_name)
    }

    /// Waits (a few seconds at most: the runner cleans up right after it
    /// reports a build) until the runner has nothing left on the engine.
    pub async fn wait_until_nothing_left(&self) {
        eventually(
            "the runner removing what the build left on Docker",
            || async move {
                match self.runner_leftovers() {
                    left if left.is_empty() => Ok(()),
                    left => Err(format!("{left:?}")),
                }
            },
        )
        .await
    }

    pub async fn build_log(&self, id: i64) -> String {
        let response = self
            .send(self.http.get(self.api(&format!("/builds/{id}/log"))))
            .await;
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    }

    /// Waits for a build to end and returns it.
    pub async fn wait_for_build(&self, id: i64) -> Value {
        eventually(&format!("build {id} ending"), || async move {
            let build = self.build(id).await;
            let state = build["state"].as_str().unwrap_or("");
            if matches!(state, "succeeded" | "failed" | "cancelled" | "skipped") {
                Ok(build)
            } else {
                Err(format!("it is {state}: {build}"))
            }
        })
        .await
    }

    /// Waits for a build and insists it succeeded, showing the log if not.
    pub async fn wait_for_success(&self, id: i64) -> Value {
        let build = self.wait_for_build(id).await;
        assert_eq!(
            build["state"],
            "succeeded",
            "build {id} did not succeed: {build}\nLog:\n{}",
            self.build_log(id).await
        );
        build
    }

    pub async fn deploys_of(&self, site: &str) -> Vec<Value> {
        let (status, body) = self
            .api_json(
                self.http
                    .get(self.api(&format!("/sites/{site}/deploys?per_page=100"))),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Publishes a deploy (a rollback when it is an older one).
    pub async fn publish(&self, site: &str, deploy_id: &str) -> (u16, Value) {
        self.api_json(
            self.http
                .post(self.api(&format!("/sites/{site}/deploys/{deploy_id}/publish"))),
        )
        .await
    }

    /// Visits `path` on a hostname label such as `blog` or `<id>--blog`.
    pub async fn visit(&self, label: &str, path: &str) -> Page {
        self.visit_with(label, path, &[]).await
    }

    pub async fn visit_with(&self, label: &str, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .header("Host", format!("{label}.localhost:{}", self.port));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("visiting a site");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    /// The metrics text, scraped with the admin token.
    pub async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.base_url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Waits until the metrics hold `line` (a name with labels and a value).
    pub async fn wait_for_metric(&self, line: &str) -> String {
        eventually(&format!("the metrics showing `{line}`"), || async move {
            let text = self.metrics().await;
            if text.lines().any(|l| l == line) {
                Ok(text)
            } else {
                Err(text)
            }
        })
        .await
    }

    /// Visits `path` accepting only `encoding` until the edge answers in it:
    /// compressed variants are made just after a deploy goes live, which
    /// serves its files as they are until then. Fails after 30 seconds.
    pub async fn wait_for_encoding(&self, label: &str, path: &str, encoding: &str) -> Page {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let page = self
                .visit_with(label, path, &[("Accept-Encoding", encoding)])
                .await;
            if page.header("content-encoding") == encoding {
                return page;
            }
            assert_eq!(
                page.status, 200,
                "{label}{path} while waiting for {encoding}: {}",
                page.body
            );
            assert_eq!(page.header("content-encoding"), "", "served as it is meanwhile");
            assert!(
                std::time::Instant::now() < deadline,
                "{label}{path} was never served as {encoding}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `HEAD path` to a hostname label.
    pub async fn head(&self, label: &str, path: &str) -> Page {
        let response = self
            .http
            .head(format!("http://127.0.0.1:{}{path}", self.port))
            .header("Host", format!("{label}.localhost:{}", self.port))
            .send()
            .await
            .expect("visiting a site");
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: String::new(),
            bytes: Vec::new(),
        }
    }

    /// Queues a build of `site` at `sha` through the API; returns its id.
    pub async fn trigger_build(&self, site: &str, sha: &str) -> i64 {
        self.trigger_build_of(site, None, sha).await
    }

    /// Queues a build of `branch` (a branch deploy unless it is the
    /// production branch).
    pub async fn trigger_build_of(&self, site: &str, branch: Option<&str>, sha: &str) -> i64 {
        let mut body = json!({ "commit_sha": sha });
        if let Some(branch) = branch {
            body["branch"] = json!(branch);
        }
        let (status, build) = self
            .api_json(
                self.http
                    .post(self.api(&format!("/sites/{site}/builds")))
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "{build}");
        build["id"].as_i64().unwrap()
    }

    /// Stops production builds of `site` from going live by themselves.
    pub async fn lock_publishing(&self, site: &str) -> Value {
        let (status, body) = self
            .api_json(self.http.post(self.api(&format!("/sites/{site}/lock"))))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn unlock_publishing(&self, site: &str) -> Value {
        let (status, body) = self
            .api_json(self.http.post(self.api(&format!("/sites/{site}/unlock"))))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Takes a preview or branch hostname down, as closing a pull request
    /// or deleting a branch does.
    pub async fn take_alias_down(&self, site: &str, alias: &str) -> u16 {
        let (status, _) = self
            .api_json(
                self.http
                    .delete(self.api(&format!("/sites/{site}/aliases/{alias}"))),
            )
            .await;
        status
    }

    /// Runs retention and garbage collection now.
    pub async fn collect_garbage(&self) -> Value {
        let (status, body) = self.api_json(self.http.post(self.api("/gc"))).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Starts a direct deploy (the manifest step of `jamstack deploy`):
    /// `body` holds its `files` and, if wanted, a `title`. Returns the
    /// answer: the deploy's id and the hashes it asks for.
    pub async fn start_direct_deploy(&self, site: &str, body: Value) -> Value {
        let (status, started) = self
            .api_json(
                self.http
                    .post(self.api(&format!("/sites/{site}/deploys")))
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "{started}");
        started
    }

    /// Files in the local blob store.
    pub fn stored_blob_files(&self) -> usize {
        let root = self.data_dir.join("blobs");
        let Ok(dirs) = std::fs::read_dir(&root) else {
            return 0;
        };
        dirs.flatten()
            .filter_map(|dir| std::fs::read_dir(dir.path()).ok())
            .map(|files| {
                files
                    .flatten()
                    .filter(|f| !f.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .sum()
    }
}

impl TestApp {
    /// Sends `GET <raw_path>` byte for byte, so no client library tidies the
    /// path first; returns the status code.
    pub async fn visit_raw_path(&self, label: &str, raw_path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let request = format!(
            "GET {raw_path} HTTP/1.1\r\nHost: {label}.localhost:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
    }
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// The shared folder of real GitHub payloads beside the repository.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/github-webhooks")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; ../shared must sit beside the repository",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The default branch of the repositories the tests' payloads name.
pub const DEFAULT_BRANCH: &str = "main";

/// GitHub's real push payload, rewritten to name our repository (whose
/// default branch is [`DEFAULT_BRANCH`]), branch and commit, and to point
/// its clone URL at the local repository.
pub fn push_payload(github_repo: &str, repo: &SiteRepo, branch: &str, sha: &str) -> Value {
    let mut payload = fixture("push.with-new-branch.json");
    payload["repository"]["default_branch"] = json!(DEFAULT_BRANCH);
    payload["ref"] = json!(format!("refs/heads/{branch}"));
    payload["after"] = json!(sha);
    payload["created"] = json!(false);
    payload["head_commit"]["id"] = json!(sha);
    payload["head_commit"]["message"] = json!(format!("Commit {}", &sha[..7]));
    payload["commits"][0]["id"] = json!(sha);
    payload["repository"]["full_name"] = json!(github_repo);
    payload["repository"]["name"] = json!(github_repo.split('/').nth(1).unwrap_or(github_repo));
    payload["repository"]["clone_url"] = json!(format!("file://{}", repo.url()));
    payload
}

/// GitHub's real pull_request payload for `action` (`opened`,
/// `synchronize`, `closed`), rewritten to name our repository, pull
/// request, head branch and commit.
pub fn pull_request_payload(action: &str, github_repo: &str, number: i64, branch: &str, sha: &str) -> Value {
    let mut payload = fixture(&format!("pull_request.{action}.json"));
    payload["repository"]["default_branch"] = json!(DEFAULT_BRANCH);
    payload["number"] = json!(number);
    payload["pull_request"]["number"] = json!(number);
    payload["pull_request"]["head"]["ref"] = json!(branch);
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(github_repo);
    payload["pull_request"]["base"]["repo"]["full_name"] = json!(github_repo);
    payload["repository"]["full_name"] = json!(github_repo);
    payload["repository"]["name"] = json!(github_repo.split('/').nth(1).unwrap_or(github_repo));
    payload
}

/// A real git repository in a temporary folder.
pub struct SiteRepo {
    dir: TempDir,
}

impl SiteRepo {
    pub fn new() -> Self {
        SiteRepo {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// Commits `files` on `main`; returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        self.commit_on("main", files, message)
    }

    /// Commits `files` and the symlinks `links` (path, target) on `main`,
    /// as a repository (a fork's pull request, say) may hold them.
    pub fn commit_with_links(&self, files: &[(&str, &str)], links: &[(&str, &str)], message: &str) -> String {
        for (path, target) in links {
            let full = self.dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &full).expect("making a symlink");
        }
        self.commit(files, message)
    }

    /// Commits `files` on `branch` (made from nothing if it is new).
    pub fn commit_on(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        jamstack_runner::git::commit_files(self.dir.path(), branch, &files, message).expect("committing")
    }
}

/// A jamstack.toml whose build copies `src/` to `public/` in busybox.
pub const COPY_SITE_TOML: &str = r#"
[build]
command = "mkdir -p public && cp -R src/. public/ && echo built $COMMIT_REF"
publish = "public"
image = "jamstack/busybox:1"
"#;

/// Where the S3-compatible test server (moto) listens.
pub fn s3_endpoint() -> String {
    std::env::var("JAMSTACK_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9555".to_owned())
}

/// A new, empty bucket of its own on the S3-compatible test server. Fails,
/// saying how to start the server, when it is not running.
pub async fn a_fresh_s3_bucket() -> S3Config {
    let endpoint = s3_endpoint();
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let bucket = format!("jamstack-test-{millis}-{}", rand_suffix());
    let answer = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the S3 tests need an S3-compatible server at {endpoint} (set JAMSTACK_TEST_S3_ENDPOINT to use \
                 another): {e}. ./scripts/test.sh starts moto's; by hand: \
                 pip install 'moto[server]' && moto_server -H 127.0.0.1 -p 9555 &"
            )
        });
    assert!(
        answer.status().is_success(),
        "creating bucket {bucket} at {endpoint}: {}",
        answer.status()
    );
    let mut s3 = S3Config::new(bucket);
    s3.endpoint = Some(endpoint);
    s3.access_key_id = Some("test".to_owned());
    s3.secret_access_key = Some("test".to_owned());
    s3
}

/// The keys of every object in a test bucket.
pub async fn objects_in_bucket(s3: &S3Config) -> Vec<String> {
    let endpoint = s3.endpoint.clone().unwrap_or_else(s3_endpoint);
    let listing = reqwest::get(format!("{endpoint}/{}?list-type=2&max-keys=100000", s3.bucket))
        .await
        .expect("listing a bucket")
        .text()
        .await
        .unwrap();
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_owned()))
        .collect()
}

/// A file of a deploy uploaded by hand.
pub fn manifest_file(path: &str, content: &[u8]) -> ManifestFile {
    ManifestFile {
        path: path.into(),
        sha256: hex::encode(Sha256::digest(content)),
        size: content.len() as u64,
        mode: 0o644,
    }
}

/// A runner played by hand over the real protocol, for tests that stop
/// between the steps of an upload or need many deploys fast.
pub struct HandRunner {
    pub client: ControllerClient,
}

impl HandRunner {
    pub async fn connect(app: &TestApp, token: &str) -> Self {
        let client = ControllerClient::new(&app.base_url, token);
        client.connect("hand").await.expect("connecting");
        HandRunner { client }
    }

    /// Leases the job of a build queued with `trigger_build`.
    pub async fn lease(&self) -> JobLease {
        self.client
            .lease("hand", Duration::from_secs(5))
            .await
            .expect("leasing")
            .expect("a queued job")
    }

    pub async fn send_manifest(&self, lease: &JobLease, files: &[(&str, &[u8])]) -> ManifestResponse {
        let manifest = files
            .iter()
            .map(|(path, content)| manifest_file(path, content))
            .collect();
        self.client
            .send_manifest(lease, manifest)
            .await
            .expect("sending the manifest")
    }

    /// Uploads the files whose content the controller asked for.
    pub async fn upload_missing(&self, answer: &ManifestResponse, files: &[(&str, &[u8])]) {
        for hash in &answer.missing {
            let (_, content) = files
                .iter()
                .find(|(path, content)| manifest_file(path, content).sha256 == *hash)
                .expect("the controller asked for a blob of this deploy");
            self.client
                .put_blob(hash, bytes::Bytes::copy_from_slice(content))
                .await
                .expect("uploading a blob");
        }
    }

    /// Finalizes and reports success.
    pub async fn finish(&self, lease: &JobLease) -> FinalizeResponse {
        let finalized = self.client.finalize(lease).await.expect("finalizing");
        let outcome = JobOutcome::Succeeded {
            deploy_id: finalized.deploy_id.clone(),
        };
        self.client
            .complete(lease, &outcome, &[])
            .await
            .expect("completing");
        finalized
    }

    /// A whole deploy of `files` to `site` at `sha`.
    pub async fn deploy(
        &self,
        app: &TestApp,
        site: &str,
        sha: &str,
        files: &[(&str, &[u8])],
    ) -> FinalizeResponse {
        app.trigger_build(site, sha).await;
        let lease = self.lease().await;
        let answer = self.send_manifest(&lease, files).await;
        self.upload_missing(&answer, files).await;
        self.finish(&lease).await
    }
}

/// A git server over smart HTTP (`git http-backend` behind a small HTTP
/// server) whose repositories need `x-access-token:<token>` as Basic
/// credentials, as GitHub's private repositories do with an app token.
pub struct PrivateGitServer {
    pub base_url: String,
    /// Every Authorization header the server was sent (or `-` for none).
    pub seen_auth: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _root: TempDir,
}

impl PrivateGitServer {
    /// Serves a bare copy of `repo` as `<base_url>/<name>.git`.
    pub async fn start(repo: &SiteRepo, name: &str, token: &str) -> Self {
        use axum::body::Bytes as Body;
        use axum::extract::{Path as UrlPath, RawQuery, State};
        use axum::http::{HeaderMap, Method, StatusCode};
        use axum::response::{IntoResponse, Response};
        use base64::Engine as _;
        use std::sync::{Arc, Mutex};

        let root = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("git")
            .args(["clone", "-q", "--bare", &repo.url()])
            .arg(root.path().join(format!("{name}.git")))
            .status()
            .expect("the git command line is installed (scripts/test.sh installs it)");
        assert!(status.success(), "git clone --bare");

        #[derive(Clone)]
        struct Shared {
            root: std::path::PathBuf,
            expected: String,
            seen: Arc<Mutex<Vec<String>>>,
        }
        async fn serve(
            State(shared): State<Shared>,
            method: Method,
            UrlPath(path): UrlPath<String>,
            RawQuery(query): RawQuery,
            headers: HeaderMap,
            body: Body,
        ) -> Response {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            shared.seen.lock().unwrap().push(auth.clone());
            if auth != shared.expected {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Basic realm=\"git\"")],
                    "credentials needed",
                )
                    .into_response();
            }
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let mut child = tokio::process::Command::new("git")
                .arg("http-backend")
                .env("GIT_PROJECT_ROOT", &shared.root)
                .env("GIT_HTTP_EXPORT_ALL", "1")
                .env("REQUEST_METHOD", method.as_str())
                .env("PATH_INFO", format!("/{path}"))
                .env("QUERY_STRING", query.unwrap_or_default())
                .env("CONTENT_TYPE", header("content-type"))
                .env("CONTENT_LENGTH", body.len().to_string())
                .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
                .env("GIT_PROTOCOL", header("git-protocol"))
                .env("REMOTE_USER", "x-access-token")
                .env("REMOTE_ADDR", "127.0.0.1")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("running git http-backend");
            let mut stdin = child.stdin.take().unwrap();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = stdin.write_all(&body).await;
            });
            let output = child.wait_with_output().await.unwrap();
            let split = output
                .stdout
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|at| (at, 4))
                .or_else(|| {
                    output
                        .stdout
                        .windows(2)
                        .position(|w| w == b"\n\n")
                        .map(|at| (at, 2))
                })
                .expect("a CGI answer has headers");
            let head = String::from_utf8_lossy(&output.stdout[..split.0]).into_owned();
            let mut response = Response::builder().status(200);
            for line in head.lines() {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                if name.eq_ignore_ascii_case("status") {
                    let code = value.split(' ').next().unwrap().parse::<u16>().unwrap();
                    response = response.status(code);
                } else {
                    response = response.header(name, value);
                }
            }
            response
                .body(axum::body::Body::from(
                    output.stdout[split.0 + split.1..].to_vec(),
                ))
                .unwrap()
        }

        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            root: root.path().to_path_buf(),
            expected: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
            ),
            seen: seen.clone(),
        };
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::any(serve))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        PrivateGitServer {
            base_url,
            seen_auth: seen,
            _root: root,
        }
    }
}

/// A headless Chromium, driven over WebDriver, looking at one controller's
/// dashboard. Each test opens its own browser session on the chromedriver
/// that `./scripts/start-chromedriver.sh` started.
pub struct Browser {
    pub client: fantoccini::Client,
    base_url: String,
}

/// Where chromedriver listens.
fn webdriver_url() -> String {
    std::env::var("JAMSTACK_TEST_WEBDRIVER_URL").unwrap_or_else(|_| "http://127.0.0.1:9515".to_owned())
}

impl TestApp {
    /// Opens a fresh headless Chromium on this controller's dashboard.
    pub async fn open_browser(&self) -> Browser {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "args": [
                    "--headless=new",
                    // Tests run as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1360,1000",
                ],
            }),
        );
        let url = webdriver_url();
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no WebDriver at {url} ({e}); start Chromium's driver with ./scripts/start-chromedriver.sh \
                 (it installs Debian's chromium and chromium-driver when missing)"
            )
        });
        Browser {
            client,
            base_url: self.base_url.clone(),
        }
    }
}

impl Browser {
    /// Opens a dashboard page by its path.
    pub async fn visit(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base_url))
            .await
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Signs in to the dashboard with the admin token, through the form.
    pub async fn sign_in(&self, admin_token: &str) {
        self.visit("/login").await;
        self.fill("input[name=token]", admin_token).await;
        self.click("#admin-sign-in button[type=submit]").await;
        self.wait_for_path("/sites").await;
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}` on {}: {e}", self.current()))
    }

    fn current(&self) -> &str {
        &self.base_url
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn wait_for_path(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.path().await != path {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the browser stayed on {} instead of reaching {path}; the page says:\n{}",
                self.path().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the text of `css` contains `wanted`; returns that text.
    pub async fn wait_for_text(&self, css: &str, wanted: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // The page may be replaced between finding the element and
            // reading it (a form was just sent): then read again.
            let text = match self.client.find(fantoccini::Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(wanted) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` did not show `{wanted}` within {within:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the page as a test artefact,
    /// `target/dashboard-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("taking a screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// A dashboard session held by a plain HTTP client, to post forms the way
/// a page of another origin would (or would not) be able to.
pub struct DashboardSession {
    pub cookie: String,
}

/// The value of `name="csrf"` in a page's first form.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form with a CSRF token");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn cookie_named(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

impl TestApp {
    /// Posts the sign-in form with `secret` (a token or password) as a
    /// browser would; returns the status.
    pub async fn try_sign_in_over_http(&self, secret: &str) -> u16 {
        self.sign_in_answer(secret).await.0
    }

    /// Posts the sign-in form with `secret`; returns the status and the
    /// page (or message) answered.
    pub async fn sign_in_answer(&self, secret: &str) -> (u16, String) {
        let page = self
            .http
            .get(format!("{}/login", self.base_url))
            .send()
            .await
            .unwrap();
        let login_cookie =
            cookie_named(&page, "jamstack_login").expect("the sign-in page sets its CSRF cookie");
        let csrf = csrf_of(&page.text().await.unwrap());
        let response = self
            .http
            .post(format!("{}/login", self.base_url))
            .header("cookie", login_cookie)
            .form(&[("csrf", csrf.as_str()), ("token", secret)])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Signs in through the sign-in form with a plain HTTP client.
    pub async fn sign_in_over_http(&self) -> DashboardSession {
        let page = self
            .http
            .get(format!("{}/login", self.base_url))
            .send()
            .await
            .unwrap();
        let login_cookie =
            cookie_named(&page, "jamstack_login").expect("the sign-in page sets its CSRF cookie");
        let csrf = csrf_of(&page.text().await.unwrap());
        let response = self
            .http
            .post(format!("{}/login", self.base_url))
            .header("cookie", login_cookie)
            .form(&[("csrf", csrf.as_str()), ("token", self.admin_token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303, "signing in");
        let cookie = cookie_named(&response, "jamstack_session").expect("signing in sets the session cookie");
        let set_cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("jamstack_session="))
            .unwrap()
            .to_owned();
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
        DashboardSession { cookie }
    }

    /// Posts a dashboard form with the session's cookie; returns the status.
    pub async fn post_form(
        &self,
        session: &DashboardSession,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("cookie", &session.cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Opens a dashboard page with the session's cookie; returns the HTML.
    pub async fn dashboard_page(&self, session: &DashboardSession, path: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .header("cookie", &session.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.text().await.unwrap()
    }
}
