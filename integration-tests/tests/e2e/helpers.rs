//! `spawn_app()` and the actions a user takes, named as a user would.

// Named by path so the benches, which include this file by path, find it too.
#[path = "helpers/github_api.rs"]
pub mod github_api;

pub use github_api::FakeGitHub;
use hmac::{Hmac, Mac};
use jamstack_controller::config::{GitHubApp, RetryPolicy};
use jamstack_controller::{Application, Config};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

pub struct TestApp {
    pub base_url: String,
    pub port: u16,
    pub admin_token: String,
    pub http: reqwest::Client,
    data: Option<TempDir>,
}

/// A controller with a runner inside, as `jamstack-controller up` runs them.
pub async fn spawn_app() -> TestApp {
    spawn_app_configured(|_| {}).await
}

/// [`spawn_app`], acting as a GitHub App against the stand-in GitHub API,
/// with quick retries.
pub async fn spawn_app_with_github(github: &FakeGitHub) -> TestApp {
    spawn_app_configured(|config| use_github(config, github)).await
}

/// [`spawn_controller_only`], against the stand-in GitHub API.
pub async fn spawn_controller_with_github(github: &FakeGitHub) -> (TestApp, String) {
    let (app, data) = build_app(|config| use_github(config, github)).await;
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

async fn spawn_app_configured(configure: impl FnOnce(&mut Config)) -> TestApp {
    let (app, data) = build_app(configure).await;
    let token = app.embedded_runner_token().await.expect("minting a runner token");
    let mut runner = jamstack_runner::RunnerConfig::new(app.base_url(), &token);
    runner.name = "test-runner".into();
    runner.work_dir = data.path().join("runner");
    runner.lease_wait = Duration::from_secs(5);
    let test_app = serve(app, data);
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
    let (app, data) = build_app(|_| {}).await;
    let token = app.embedded_runner_token().await.expect("minting a runner token");
    (serve(app, data), token)
}

async fn build_app(configure: impl FnOnce(&mut Config)) -> (Application, TempDir) {
    require_docker().await;
    let data = tempfile::tempdir().expect("a temporary data directory");
    let mut config = Config::new(data.path().join("controller"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    config.heartbeat_interval = Duration::from_secs(1);
    config.lease_duration = Duration::from_secs(15);
    configure(&mut config);
    let app = Application::build(config).await.expect("starting the controller");
    (app, data)
}

fn serve(app: Application, data: TempDir) -> TestApp {
    let test_app = TestApp {
        base_url: app.base_url().to_owned(),
        port: app.port(),
        admin_token: app
            .new_admin_token
            .clone()
            .expect("a fresh data directory makes an admin token"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        data: Some(data),
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
        }
    }

    /// Queues a build of `branch` at `sha` through the API; returns its id.
    pub async fn trigger_build(&self, site: &str, branch: &str, sha: &str) -> i64 {
        let response = self
            .http
            .post(self.api(&format!("/sites/{site}/builds")))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "branch": branch, "commit_sha": sha }))
            .send()
            .await
            .expect("triggering a build");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
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
    if let Err(e) = jamstack_runner::docker::Engine::connect().await {
        panic!("these tests need a running Docker engine: {e}");
    }
}

/// What a site served for one request.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
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

    async fn deliver_webhook(
        &self,
        event: &str,
        body: Vec<u8>,
        signature: Option<String>,
        delivery_id: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/webhooks/github", self.base_url))
            .header("X-GitHub-Event", event)
            .header("content-type", "application/json")
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

    pub async fn builds_of(&self, site: &str) -> Vec<Value> {
        let (status, body) = self
            .api_json(self.http.get(self.api(&format!("/sites/{site}/builds"))))
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let build = self.build(id).await;
            let state = build["state"].as_str().unwrap_or("");
            if matches!(state, "succeeded" | "failed" | "cancelled" | "skipped") {
                return build;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "build {id} did not finish in 2 minutes; it is {state}. Log:\n{}",
                self.build_log(id).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
            .api_json(self.http.get(self.api(&format!("/sites/{site}/deploys"))))
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
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
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

/// GitHub's real push payload, rewritten to name our repository, branch and
/// commit, and to point its clone URL at the local repository.
pub fn push_payload(github_repo: &str, repo: &SiteRepo, branch: &str, sha: &str) -> Value {
    let mut payload = fixture("push.with-new-branch.json");
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
