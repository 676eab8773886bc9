//! `spawn_app()` and the actions a user takes, named as a user would.

use hmac::{Hmac, Mac};
use jamstack_controller::config::S3Config;
use jamstack_controller::{Application, Config};
use jamstack_proto::{FinalizeResponse, JobLease, JobOutcome, ManifestFile, ManifestResponse};
use jamstack_runner::client::ControllerClient;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

pub struct TestApp {
    pub base_url: String,
    pub port: u16,
    pub admin_token: String,
    pub http: reqwest::Client,
    /// The controller's data directory (database, blobs, staging).
    pub data_dir: PathBuf,
    _data: TempDir,
}

/// A controller with a runner inside, as `jamstack-controller up` runs them.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `spawn_app` with settings changed by `configure` (blob store, limits,
/// retention).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
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
    spawn_controller_only_with(|_| {}).await
}

pub async fn spawn_controller_only_with(configure: impl FnOnce(&mut Config)) -> (TestApp, String) {
    let (app, data) = build_app(configure).await;
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
        data_dir: app.state().config.data_dir.clone(),
        _data: data,
    };
    tokio::spawn(async move { app.run_until_stopped().await.expect("the controller stopped") });
    test_app
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

    async fn api_json(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("calling the API");
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

    /// Delivers a webhook signed with the controller's secret.
    pub async fn deliver_github_event(&self, event: &str, payload: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        self.deliver_raw_webhook(event, body.clone(), Some(sign(WEBHOOK_SECRET, &body)))
            .await
    }

    pub async fn deliver_raw_webhook(
        &self,
        event: &str,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/webhooks/github", self.base_url))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", format!("delivery-{}", rand_suffix()))
            .header("content-type", "application/json")
            .body(body);
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
        let payload = push_payload(github_repo, repo, "main", sha);
        let (status, body) = self.deliver_github_event("push", &payload).await;
        assert_eq!(status, 202, "push webhook: {body}");
        body["builds"][0].as_i64().expect("the push queued a build")
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
            .http
            .get(self.api(&format!("/builds/{id}/log")))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    }

    /// Waits for a build to end and returns it.
    pub async fn wait_for_build(&self, id: i64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let build = self.build(id).await;
            let state = build["state"].as_str().unwrap_or("");
            if matches!(state, "succeeded" | "failed" | "cancelled") {
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
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        jamstack_runner::git::commit_files(self.dir.path(), "main", &files, message).expect("committing")
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
        self.client.complete(lease, &outcome).await.expect("completing");
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
