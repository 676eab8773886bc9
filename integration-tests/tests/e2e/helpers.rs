//! `spawn_app()` and the actions a user takes, named as a user would.

use hmac::{Hmac, Mac};
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
    _data: Option<TempDir>,
}

/// A controller with a runner inside, as `jamstack-controller up` runs them.
pub async fn spawn_app() -> TestApp {
    let (app, data) = build_app().await;
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
    let (app, data) = build_app().await;
    let token = app.embedded_runner_token().await.expect("minting a runner token");
    (serve(app, data), token)
}

async fn build_app() -> (Application, TempDir) {
    require_docker().await;
    let data = tempfile::tempdir().expect("a temporary data directory");
    let mut config = Config::new(data.path().join("controller"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    config.heartbeat_interval = Duration::from_secs(1);
    config.lease_duration = Duration::from_secs(15);
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
        _data: Some(data),
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
            _data: None,
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

    async fn api_json(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
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
        self.click("form[action='/login'] button[type=submit]").await;
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
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
            let text = self.text(css).await;
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
