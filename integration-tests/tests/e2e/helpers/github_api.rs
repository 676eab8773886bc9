//! A stand-in for GitHub's REST API: the one stand-in the tests allow, since
//! GitHub cannot be reached from here.
//!
//! It answers the endpoints the controller calls, in GitHub's shapes
//! (installation tokens, repositories, commit statuses, issue comments,
//! deployments and their statuses, repository webhooks), keeps what was created so later
//! calls see it (a comment can be listed and edited), and records every
//! request. A test can make the next calls of one kind fail with 502, as a
//! GitHub outage would.
//!
//! It is GitHub's web side too, for "Sign in with GitHub": people with
//! accounts ([`GitHubAccount`]), the OAuth approval page (for whoever a
//! test says is signed in at GitHub), the code exchange (client secret,
//! code and PKCE verifier checked), and `/user`, `/user/emails`,
//! `/user/orgs` and `/user/teams` answering for the token it gave.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

/// The App id the controller is configured with in tests.
pub const APP_ID: u64 = 4242;

/// The OAuth client the stand-in knows: the controller signs people in
/// with it in tests.
pub const OAUTH_CLIENT_ID: &str = "Iv1.standin0client";
pub const OAUTH_CLIENT_SECRET: &str = "standin-oauth-client-secret-0123456789";

/// A person with an account on the stand-in GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubAccount {
    pub id: u64,
    pub login: String,
    /// Their primary, verified address.
    pub email: Option<String>,
    /// Logins of the organizations they belong to.
    pub organizations: Vec<String>,
    /// (organization login, team slug) of the teams they belong to.
    pub teams: Vec<(String, String)>,
}

impl GitHubAccount {
    pub fn new(id: u64, login: &str) -> Self {
        GitHubAccount {
            id,
            login: login.to_owned(),
            email: None,
            organizations: Vec::new(),
            teams: Vec::new(),
        }
    }
}

/// A code the approval page gave, waiting to be exchanged once.
#[derive(Debug, Clone)]
struct IssuedCode {
    account: u64,
    redirect_uri: String,
    code_challenge: String,
}

/// One request, as GitHub received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: i64,
    /// `owner/name`.
    pub repo: String,
    pub issue: i64,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    comments: Vec<Comment>,
    /// Deployments: id → (repo, request body).
    deployments: Vec<(i64, String, Value)>,
    hooks: Vec<(i64, String, Value)>,
    /// `owner/name` → its default branch; `main` for any other.
    default_branches: HashMap<String, String>,
    next_id: i64,
    /// Kind of call (`statuses`, `comments`, `deployments`, …) → how many of
    /// the next ones answer 502.
    failures: HashMap<&'static str, u32>,
    /// People with an account, by id.
    accounts: HashMap<u64, GitHubAccount>,
    /// Who the approval page acts for, as a browser's github.com cookie would.
    signed_in_at_github: Option<u64>,
    codes: HashMap<String, IssuedCode>,
    /// User access tokens given, in order, with the account each is for.
    user_tokens: Vec<(String, u64)>,
    /// Whether tokens may read e-mail addresses (a `user:email` scope or
    /// a GitHub App's e-mail permission); `read:org` alone may not.
    emails_readable: bool,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    key_dir: Arc<TempDir>,
}

impl FakeGitHub {
    /// Starts the server on a random port, and makes an RSA key for the
    /// App (with openssl, as a developer would).
    pub async fn start() -> Self {
        let key_dir = tempfile::tempdir().unwrap();
        let key = key_dir.path().join("app.pem");
        let made = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .unwrap_or_else(|e| panic!("running openssl to make a GitHub App key: {e}; install openssl"));
        assert!(made.status.success(), "openssl genrsa failed: {made:?}");
        let inner = Arc::new(Mutex::new(Inner {
            next_id: 1000,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/app/installations/{id}/access_tokens", post(access_token))
            .route("/repos/{owner}/{repo}", get(show_repository))
            .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(list_comments).post(create_comment),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments/{id}",
                patch(update_comment),
            )
            .route("/repos/{owner}/{repo}/deployments", post(create_deployment))
            .route(
                "/repos/{owner}/{repo}/deployments/{id}/statuses",
                post(create_deployment_status),
            )
            .route("/repos/{owner}/{repo}/hooks", get(list_hooks).post(create_hook))
            .route("/repos/{owner}/{repo}/hooks/{id}", patch(update_hook))
            .route(
                "/login/oauth/authorize",
                get(approval_page).post(approval_decision),
            )
            .route("/login/oauth/access_token", post(exchange_code))
            .route("/user", get(show_user))
            .route("/user/emails", get(list_emails))
            .route("/user/orgs", get(list_organizations))
            .route("/user/teams", get(list_teams))
            .fallback(unknown)
            .layer(axum::middleware::from_fn_with_state(inner.clone(), record))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeGitHub {
            url,
            inner,
            key_dir: Arc::new(key_dir),
        }
    }

    /// The App's private key file.
    pub fn app_key_file(&self) -> PathBuf {
        self.key_dir.path().join("app.pem")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Makes `branch` the default branch of `repo` (`owner/name`), as
    /// `GET /repos/{owner}/{repo}` answers it.
    pub fn set_default_branch(&self, repo: &str, branch: &str) {
        self.lock()
            .default_branches
            .insert(repo.to_owned(), branch.to_owned());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests whose path starts with `prefix` and whose method is `method`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .collect()
    }

    /// The commit statuses sent for `sha`, oldest first.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<Value> {
        self.requests_to("POST", &format!("/repos/{repo}/statuses/{sha}"))
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    /// The `state` of each commit status sent for `sha`, oldest first.
    pub fn status_states(&self, repo: &str, sha: &str) -> Vec<String> {
        self.statuses(repo, sha)
            .iter()
            .map(|s| s["state"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn comments(&self, repo: &str, issue: i64) -> Vec<Comment> {
        self.lock()
            .comments
            .iter()
            .filter(|c| c.repo == repo && c.issue == issue)
            .cloned()
            .collect()
    }

    /// Puts a comment on an issue, as a person (or an earlier controller)
    /// would have.
    pub fn add_comment(&self, repo: &str, issue: i64, body: &str) -> i64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.comments.push(Comment {
            id,
            repo: repo.to_owned(),
            issue,
            body: body.to_owned(),
        });
        id
    }

    /// Deployments of `repo`: (id, what the controller sent).
    pub fn deployments(&self, repo: &str) -> Vec<(i64, Value)> {
        self.lock()
            .deployments
            .iter()
            .filter(|(_, r, _)| r == repo)
            .map(|(id, _, body)| (*id, body.clone()))
            .collect()
    }

    /// The states sent for one deployment, oldest first.
    pub fn deployment_states(&self, repo: &str, deployment: i64) -> Vec<String> {
        self.requests_to(
            "POST",
            &format!("/repos/{repo}/deployments/{deployment}/statuses"),
        )
        .iter()
        .map(|r| r.body["state"].as_str().unwrap_or_default().to_owned())
        .collect()
    }

    pub fn hooks(&self, repo: &str) -> Vec<(i64, Value)> {
        self.lock()
            .hooks
            .iter()
            .filter(|(_, r, _)| r == repo)
            .map(|(id, _, body)| (*id, body.clone()))
            .collect()
    }

    /// Adds a person's account, or changes it (a new login, organizations
    /// joined or left): later calls with their tokens see the change.
    pub fn set_account(&self, account: GitHubAccount) {
        self.lock().accounts.insert(account.id, account);
    }

    /// The person the approval page acts for from now on, as if they had
    /// signed in at GitHub in the browser.
    pub fn sign_in_at_github(&self, id: u64) {
        self.lock().signed_in_at_github = Some(id);
    }

    /// Lets tokens read e-mail addresses, as a GitHub App with the e-mail
    /// permission's tokens may.
    pub fn let_tokens_read_emails(&self) {
        self.lock().emails_readable = true;
    }

    /// Every user access token the code exchange gave, oldest first.
    pub fn user_tokens(&self) -> Vec<String> {
        self.lock()
            .user_tokens
            .iter()
            .map(|(token, _)| token.clone())
            .collect()
    }

    /// The next `times` calls of `kind` (`statuses`, `comments`,
    /// `deployments`, `deployment_statuses`, `hooks`, `access_tokens`,
    /// `oauth` (the code exchange), `user` (`/user` and below it))
    /// answer 502, as from a proxy in front of a GitHub in trouble.
    pub fn fail_next(&self, kind: &'static str, times: u32) {
        self.lock().failures.insert(kind, times);
    }

    /// Waits until `done` holds, or fails the test after a while saying what
    /// was awaited and what GitHub was sent.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&FakeGitHub) -> bool) {
        let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
        while !done(self) {
            if tokio::time::Instant::now() > deadline {
                let sent: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{} {} {}", r.method, r.path, r.body))
                    .collect();
                panic!("GitHub never saw {what}; it was sent:\n{}", sent.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

/// Records every request, and answers 502 when a failure was asked for.
async fn record(
    State(inner): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        authorization: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&bytes)
            .ok()
            .or_else(|| {
                serde_urlencoded::from_bytes::<HashMap<String, String>>(&bytes)
                    .ok()
                    .filter(|fields| !fields.is_empty())
                    .map(|fields| json!(fields))
            })
            .unwrap_or(Value::Null),
    };
    let kind = kind_of(&parts.method, &path);
    {
        let mut inner = inner.lock().unwrap();
        inner.requests.push(recorded);
        if let Some(left) = inner.failures.get_mut(kind)
            && *left > 0
        {
            *left -= 1;
            return (
                StatusCode::BAD_GATEWAY,
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response();
        }
    }
    if path.starts_with("/repos/") && parts.headers.get("authorization").is_none() {
        return github_error(StatusCode::UNAUTHORIZED, "Requires authentication");
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

fn kind_of(method: &Method, path: &str) -> &'static str {
    if path == "/login/oauth/access_token" {
        "oauth"
    } else if path == "/user" || path.starts_with("/user/") {
        "user"
    } else if path.contains("/access_tokens") {
        "access_tokens"
    } else if path.contains("/statuses/") && !path.contains("/deployments/") {
        "statuses"
    } else if path.contains("/deployments/") {
        "deployment_statuses"
    } else if path.ends_with("/deployments") {
        "deployments"
    } else if path.contains("/comments") && method == Method::GET {
        "comment_lists"
    } else if path.contains("/comments") {
        "comments"
    } else if path.contains("/hooks") {
        "hooks"
    } else {
        "other"
    }
}

fn github_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn next_id(inner: &mut Inner) -> i64 {
    inner.next_id += 1;
    inner.next_id
}

const NOW: &str = "2024-05-01T12:00:00Z";

async fn access_token(
    State(inner): Shared,
    Path(installation): Path<i64>,
    headers: HeaderMap,
    body: Option<axum::Json<Value>>,
) -> Response {
    // The App authenticates with a JWT it signed, naming itself as issuer.
    let Some(jwt) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return github_error(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded");
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims =
        jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_secret(b""), &validation);
    let issuer = claims.ok().and_then(|c| {
        c.claims["iss"]
            .as_u64()
            .or_else(|| c.claims["iss"].as_str()?.parse().ok())
    });
    if issuer != Some(APP_ID) {
        return github_error(
            StatusCode::UNAUTHORIZED,
            "'Issuer' claim ('iss') must be an Integer",
        );
    }
    let id = next_id(&mut inner.lock().unwrap());
    let requested = body.map(|b| b.0).unwrap_or(Value::Null);
    created(json!({
        "token": format!("ghs_installation{installation}token{id}"),
        "expires_at": "2099-01-01T00:00:00Z",
        "permissions": requested.get("permissions").cloned().unwrap_or(json!({"contents": "read", "statuses": "write"})),
        "repository_selection": "selected",
    }))
}

async fn create_status(
    State(inner): Shared,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let id = next_id(&mut inner.lock().unwrap());
    created(json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/statuses/{sha}"),
        "id": id,
        "node_id": format!("SC_{id}"),
        "state": body["state"],
        "description": body["description"],
        "target_url": body["target_url"],
        "context": body["context"],
        "created_at": NOW,
        "updated_at": NOW,
        "creator": { "login": "jamstack[bot]", "id": 1, "type": "Bot" },
    }))
}

fn comment_json(comment: &Comment) -> Value {
    json!({
        "id": comment.id,
        "node_id": format!("IC_{}", comment.id),
        "url": format!("https://api.github.com/repos/{}/issues/comments/{}", comment.repo, comment.id),
        "html_url": format!("https://github.com/{}/pull/{}#issuecomment-{}", comment.repo, comment.issue, comment.id),
        "body": comment.body,
        "user": { "login": "jamstack[bot]", "id": 1, "type": "Bot" },
        "created_at": NOW,
        "updated_at": NOW,
        "author_association": "NONE",
    })
}

async fn list_comments(
    State(inner): Shared,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let per_page: usize = query.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let full = format!("{owner}/{repo}");
    let inner = inner.lock().unwrap();
    let listed: Vec<Value> = inner
        .comments
        .iter()
        .filter(|c| c.repo == full && c.issue == number)
        .skip(per_page * (page.max(1) - 1))
        .take(per_page)
        .map(comment_json)
        .collect();
    axum::Json(Value::Array(listed)).into_response()
}

async fn create_comment(
    State(inner): Shared,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let comment = Comment {
        id: next_id(&mut inner),
        repo: format!("{owner}/{repo}"),
        issue: number,
        body: body["body"].as_str().unwrap_or_default().to_owned(),
    };
    inner.comments.push(comment.clone());
    created(comment_json(&comment))
}

async fn update_comment(
    State(inner): Shared,
    Path((owner, repo, id)): Path<(String, String, i64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let full = format!("{owner}/{repo}");
    let mut inner = inner.lock().unwrap();
    let Some(comment) = inner.comments.iter_mut().find(|c| c.id == id && c.repo == full) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    comment.body = body["body"].as_str().unwrap_or_default().to_owned();
    axum::Json(comment_json(comment)).into_response()
}

async fn create_deployment(
    State(inner): Shared,
    Path((owner, repo)): Path<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let id = next_id(&mut inner);
    let full = format!("{owner}/{repo}");
    inner.deployments.push((id, full.clone(), body.clone()));
    created(json!({
        "url": format!("https://api.github.com/repos/{full}/deployments/{id}"),
        "id": id,
        "node_id": format!("DE_{id}"),
        "sha": body["ref"],
        "ref": body["ref"],
        "task": "deploy",
        "payload": body["payload"],
        "environment": body["environment"],
        "description": body["description"],
        "creator": { "login": "jamstack[bot]", "id": 1, "type": "Bot" },
        "created_at": NOW,
        "updated_at": NOW,
        "transient_environment": body["transient_environment"],
        "production_environment": body["production_environment"],
    }))
}

async fn create_deployment_status(
    State(inner): Shared,
    Path((owner, repo, deployment)): Path<(String, String, i64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let full = format!("{owner}/{repo}");
    if !inner
        .deployments
        .iter()
        .any(|(id, r, _)| *id == deployment && *r == full)
    {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let id = next_id(&mut inner);
    created(json!({
        "url": format!("https://api.github.com/repos/{full}/deployments/{deployment}/statuses/{id}"),
        "id": id,
        "node_id": format!("DES_{id}"),
        "state": body["state"],
        "description": body["description"],
        "environment_url": body["environment_url"],
        "log_url": body["log_url"],
        "deployment_url": format!("https://api.github.com/repos/{full}/deployments/{deployment}"),
        "creator": { "login": "jamstack[bot]", "id": 1, "type": "Bot" },
        "created_at": NOW,
        "updated_at": NOW,
    }))
}

fn hook_json(id: i64, repo: &str, body: &Value) -> Value {
    let mut config = body["config"].clone();
    if config.get("secret").is_some() {
        // GitHub never shows a hook's secret back.
        config["secret"] = json!("********");
    }
    json!({
        "type": "Repository",
        "id": id,
        "name": "web",
        "active": body["active"],
        "events": body["events"],
        "config": config,
        "updated_at": NOW,
        "created_at": NOW,
        "url": format!("https://api.github.com/repos/{repo}/hooks/{id}"),
    })
}

/// `GET /repos/{owner}/{repo}`: the fields of GitHub's answer the
/// controller reads, and a few around them.
async fn show_repository(State(inner): Shared, Path((owner, repo)): Path<(String, String)>) -> Response {
    let full = format!("{owner}/{repo}");
    let default_branch = inner
        .lock()
        .unwrap()
        .default_branches
        .get(&full)
        .cloned()
        .unwrap_or_else(|| "main".to_owned());
    axum::Json(json!({
        "id": 1296269,
        "name": repo,
        "full_name": full,
        "owner": { "login": owner, "type": "User" },
        "private": false,
        "html_url": format!("https://github.com/{full}"),
        "clone_url": format!("https://github.com/{full}.git"),
        "default_branch": default_branch,
    }))
    .into_response()
}

async fn list_hooks(State(inner): Shared, Path((owner, repo)): Path<(String, String)>) -> Response {
    let full = format!("{owner}/{repo}");
    let inner = inner.lock().unwrap();
    let hooks: Vec<Value> = inner
        .hooks
        .iter()
        .filter(|(_, r, _)| *r == full)
        .map(|(id, r, body)| hook_json(*id, r, body))
        .collect();
    axum::Json(Value::Array(hooks)).into_response()
}

async fn create_hook(
    State(inner): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if token.contains("revoked") {
        return github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    let mut inner = inner.lock().unwrap();
    let id = next_id(&mut inner);
    let full = format!("{owner}/{repo}");
    inner.hooks.push((id, full.clone(), body.clone()));
    created(hook_json(id, &full, &body))
}

async fn update_hook(
    State(inner): Shared,
    Path((owner, repo, id)): Path<(String, String, i64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let full = format!("{owner}/{repo}");
    let mut inner = inner.lock().unwrap();
    let Some(hook) = inner
        .hooks
        .iter_mut()
        .find(|(hook, r, _)| *hook == id && *r == full)
    else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    hook.2 = body.clone();
    axum::Json(hook_json(id, &full, &body)).into_response()
}

/// The approval page's query: what the controller sent the browser with.
#[derive(Debug, serde::Deserialize)]
struct Authorize {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// What is wrong with an approval request, as GitHub's page would say.
fn authorize_problem(query: &Authorize) -> Option<&'static str> {
    if query.client_id.as_deref() != Some(OAUTH_CLIENT_ID) {
        return Some("The client_id is not an application this GitHub knows.");
    }
    if query
        .redirect_uri
        .as_deref()
        .is_none_or(|uri| !uri.starts_with("http"))
    {
        return Some("The redirect_uri is missing or not a URL.");
    }
    if query.code_challenge_method.as_deref() != Some("S256") || query.code_challenge.is_none() {
        return Some("A code_challenge with code_challenge_method S256 is required.");
    }
    None
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /login/oauth/authorize`: the page where the person signed in at
/// GitHub approves the app, or cancels.
async fn approval_page(State(inner): Shared, uri: Uri, Query(query): Query<Authorize>) -> Response {
    if let Some(problem) = authorize_problem(&query) {
        return (StatusCode::BAD_REQUEST, axum::response::Html(problem.to_owned())).into_response();
    }
    let inner = inner.lock().unwrap();
    let Some(account) = inner.signed_in_at_github.and_then(|id| inner.accounts.get(&id)) else {
        return (
            StatusCode::OK,
            axum::response::Html("<h1>Sign in to GitHub</h1><p>No one is signed in.</p>".to_owned()),
        )
            .into_response();
    };
    let action = escape_html(&format!(
        "/login/oauth/authorize?{}",
        uri.query().unwrap_or_default()
    ));
    let page = format!(
        "<!doctype html><html><head><title>Authorize application</title></head><body>\
         <h1>Authorize the application</h1>\
         <p>Signed in as <strong id=\"login\">{login}</strong>. It asks for: {scope}.</p>\
         <form method=\"post\" action=\"{action}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Authorize</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Cancel</button>\
         </form></body></html>",
        login = escape_html(&account.login),
        scope = escape_html(query.scope.as_deref().unwrap_or("(no scope)")),
    );
    axum::response::Html(page).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct Decision {
    decision: String,
}

/// `POST /login/oauth/authorize`: the person's choice; back to the app
/// with a code, or with `error=access_denied`.
async fn approval_decision(
    State(inner): Shared,
    Query(query): Query<Authorize>,
    axum::Form(decision): axum::Form<Decision>,
) -> Response {
    if let Some(problem) = authorize_problem(&query) {
        return (StatusCode::BAD_REQUEST, problem).into_response();
    }
    let redirect_uri = query.redirect_uri.clone().unwrap_or_default();
    let state = query.state.clone().unwrap_or_default();
    let back =
        if decision.decision == "approve" {
            let mut inner = inner.lock().unwrap();
            let Some(account) = inner.signed_in_at_github else {
                return (StatusCode::UNAUTHORIZED, "no one is signed in at GitHub").into_response();
            };
            let code = format!("code{:016x}", rand_u64());
            inner.codes.insert(
                code.clone(),
                IssuedCode {
                    account,
                    redirect_uri: redirect_uri.clone(),
                    code_challenge: query.code_challenge.clone().unwrap_or_default(),
                },
            );
            serde_urlencoded::to_string([("code", code.as_str()), ("state", state.as_str())]).unwrap()
        } else {
            serde_urlencoded::to_string([
            ("error", "access_denied"),
            ("error_description", "The user has denied your application access."),
            (
                "error_uri",
                "https://docs.github.com/apps/troubleshooting-authorization-request-errors/#access-denied",
            ),
            ("state", state.as_str()),
        ])
        .unwrap()
        };
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [(
            axum::http::header::LOCATION,
            format!("{redirect_uri}{separator}{back}"),
        )],
    )
        .into_response()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish()
}

#[derive(Debug, Default, serde::Deserialize)]
struct Exchange {
    client_id: Option<String>,
    client_secret: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// GitHub's answer to a code exchange it refuses: 200, with an error.
fn oauth_error(error: &str, description: &str) -> Response {
    axum::Json(json!({
        "error": error,
        "error_description": description,
        "error_uri": format!("https://docs.github.com/apps/troubleshooting-oauth-app-access-token-request-errors/#{error}"),
    }))
    .into_response()
}

/// `POST /login/oauth/access_token`: a code for a user access token, once,
/// for the client it was given to, with the verifier of its challenge.
async fn exchange_code(State(inner): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: Exchange = serde_urlencoded::from_bytes(&body)
        .or_else(|_| serde_json::from_slice(&body))
        .unwrap_or_default();
    let wants_json = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if !wants_json {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "error=unsupported_format: this stand-in answers Accept: application/json only",
        )
            .into_response();
    }
    if form.client_id.as_deref() != Some(OAUTH_CLIENT_ID)
        || form.client_secret.as_deref() != Some(OAUTH_CLIENT_SECRET)
    {
        return oauth_error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let mut inner = inner.lock().unwrap();
    let Some(issued) = form.code.as_deref().and_then(|code| inner.codes.remove(code)) else {
        return oauth_error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    if form.redirect_uri.as_deref() != Some(issued.redirect_uri.as_str()) {
        return oauth_error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    use base64::Engine as _;
    use sha2::Digest as _;
    let verifier = form.code_verifier.unwrap_or_default();
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if verifier.len() < 43 || challenge != issued.code_challenge {
        return oauth_error(
            "bad_verification_code",
            "The code_verifier does not match the code_challenge.",
        );
    }
    let token = format!("gho_{:016x}{:016x}", rand_u64(), rand_u64());
    inner.user_tokens.push((token.clone(), issued.account));
    axum::Json(json!({ "access_token": token, "token_type": "bearer", "scope": "read:org" })).into_response()
}

/// The account a request's user access token is for.
fn account_of(inner: &Inner, headers: &HeaderMap) -> Result<GitHubAccount, Box<Response>> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
        .ok_or_else(|| Box::new(github_error(StatusCode::UNAUTHORIZED, "Requires authentication")))?;
    inner
        .user_tokens
        .iter()
        .find(|(given, _)| given == token)
        .and_then(|(_, id)| inner.accounts.get(id))
        .cloned()
        .ok_or_else(|| Box::new(github_error(StatusCode::UNAUTHORIZED, "Bad credentials")))
}

fn page_of<T: Clone>(items: &[T], query: &HashMap<String, String>) -> Vec<T> {
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .min(100);
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    items
        .iter()
        .skip(per_page * (page.max(1) - 1))
        .take(per_page)
        .cloned()
        .collect()
}

fn organization_json(login: &str) -> Value {
    json!({
        "login": login,
        "id": login.len() as u64 * 1000 + login.bytes().map(u64::from).sum::<u64>(),
        "node_id": format!("O_{login}"),
        "url": format!("https://api.github.com/orgs/{login}"),
        "description": null,
    })
}

/// `GET /user`: the account the token is for.
async fn show_user(State(inner): Shared, headers: HeaderMap) -> Response {
    let account = match account_of(&inner.lock().unwrap(), &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    axum::Json(json!({
        "login": account.login,
        "id": account.id,
        "node_id": format!("U_{}", account.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", account.id),
        "html_url": format!("https://github.com/{}", account.login),
        "type": "User",
        "site_admin": false,
        "name": null,
        "email": null,
        "created_at": NOW,
        "updated_at": NOW,
    }))
    .into_response()
}

/// `GET /user/emails`: refused unless tokens may read e-mail addresses.
async fn list_emails(State(inner): Shared, headers: HeaderMap) -> Response {
    let inner = inner.lock().unwrap();
    let account = match account_of(&inner, &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    if !inner.emails_readable {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let mut emails = vec![json!({
        "email": format!("{}@users.noreply.github.com", account.id),
        "primary": false,
        "verified": true,
        "visibility": null,
    })];
    if let Some(email) = &account.email {
        emails.push(json!({ "email": email, "primary": true, "verified": true, "visibility": "private" }));
    }
    axum::Json(Value::Array(emails)).into_response()
}

/// `GET /user/orgs`: the account's organizations, a page at a time.
async fn list_organizations(
    State(inner): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let account = match account_of(&inner.lock().unwrap(), &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    let listed: Vec<Value> = page_of(&account.organizations, &query)
        .iter()
        .map(|org| organization_json(org))
        .collect();
    axum::Json(Value::Array(listed)).into_response()
}

/// `GET /user/teams`: the account's teams, with their organizations.
async fn list_teams(
    State(inner): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let account = match account_of(&inner.lock().unwrap(), &headers) {
        Ok(account) => account,
        Err(refused) => return *refused,
    };
    let listed: Vec<Value> = page_of(&account.teams, &query)
        .iter()
        .enumerate()
        .map(|(n, (org, slug))| {
            json!({
                "id": 7000 + n,
                "node_id": format!("T_{org}_{slug}"),
                "name": slug,
                "slug": slug,
                "description": null,
                "privacy": "closed",
                "permission": "pull",
                "url": format!("https://api.github.com/orgs/{org}/teams/{slug}"),
                "organization": organization_json(org),
            })
        })
        .collect();
    axum::Json(Value::Array(listed)).into_response()
}

async fn unknown(uri: Uri) -> Response {
    github_error(
        StatusCode::NOT_FOUND,
        &format!("Not Found (the stand-in does not answer {uri})"),
    )
}
