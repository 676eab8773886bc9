//! Calls to GitHub's REST API, through octocrab.
//!
//! [`GitHub`] holds one octocrab client, authenticated as the GitHub App when
//! one is configured. A site's calls go through a [`Repo`], authenticated as
//! the App's installation on the repository (tokens minted and renewed by
//! octocrab) or with the site's access token. Every call is retried with
//! exponential backoff when GitHub is unreachable, answers 5xx, or limits
//! the rate; other refusals are final. Tokens are never logged: errors carry
//! GitHub's message and status only.

use crate::config::{Config, RetryPolicy};
use backon::Retryable;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// For calls someone is waiting on (a runner's lease, an API request): a
/// few quick retries rather than minutes of them.
pub const INTERACTIVE_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(2),
};

/// Why a call to GitHub failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("GitHub refused {what} ({status}): {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
        /// GitHub asked to wait this long (`Retry-After`).
        retry_after: Option<Duration>,
    },
    #[error("GitHub could not be reached for {what}: {detail}")]
    Unreachable { what: String, detail: String },
    #[error("GitHub's answer to {what} was not understood: {detail}")]
    Unexpected { what: String, detail: String },
    #[error(
        "no GitHub App is configured; start the controller with --github-app-id and --github-app-key-file"
    )]
    NoApp,
}

impl CallError {
    /// Worth trying again later: GitHub was down, busy or rate limiting.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Unreachable { .. } => true,
            CallError::Refused { status, message, .. } => {
                *status >= 500
                    || *status == 429
                    || (*status == 403 && message.to_ascii_lowercase().contains("rate limit"))
            }
            CallError::Unexpected { .. } | CallError::NoApp => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How a site's calls authenticate.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// As the GitHub App's installation on the repository.
    Installation(i64),
    /// With the site's personal access token.
    Token(SecretString),
}

/// The controller's GitHub client.
pub struct GitHub {
    /// Authenticated as the App when one is configured, anonymous otherwise;
    /// per-site clients share its connection pool.
    base: Octocrab,
    has_app: bool,
    /// One client per installation, so octocrab's cached installation token
    /// is reused until it expires.
    installations: Mutex<HashMap<i64, Octocrab>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("has_app", &self.has_app)
            .finish_non_exhaustive()
    }
}

impl GitHub {
    /// Builds the client from the controller's settings; reads the App's
    /// private key when an App is configured.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let mut builder = Octocrab::builder()
            .base_uri(config.github_api_url.as_str())
            .map_err(|e| {
                anyhow::anyhow!(
                    "the GitHub API URL `{}` is not a valid URL ({e}); give e.g. https://api.github.com",
                    config.github_api_url
                )
            })?
            // Retries are ours, with backoff; octocrab's would be immediate.
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)));
        let has_app = config.github_app.is_some();
        if let Some(app) = &config.github_app {
            let pem = std::fs::read(&app.private_key_file).map_err(|e| {
                anyhow::anyhow!(
                    "reading the GitHub App's private key {}: {e}; download a private key from the App's settings page on GitHub",
                    app.private_key_file.display()
                )
            })?;
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not an RSA private key in PEM format; use the .pem file GitHub made for the App",
                    app.private_key_file.display()
                )
            })?;
            builder = builder.app(AppId(app.app_id), key);
        }
        let base = builder
            .build()
            .map_err(|e| anyhow::anyhow!("making the GitHub client: {}", describe(&e)))?;
        Ok(GitHub {
            base,
            has_app,
            installations: Mutex::new(HashMap::new()),
            retry: config.github_retry,
        })
    }

    pub fn has_app(&self) -> bool {
        self.has_app
    }

    /// The API of one repository (`owner/name`), called with `credentials`.
    pub fn repo(&self, credentials: &Credentials, full_name: &str) -> Result<Repo, CallError> {
        let crab = match credentials {
            Credentials::Installation(id) => self.installation_client(*id)?,
            Credentials::Token(token) => self
                .base
                .user_access_token(token.expose_secret().to_owned())
                .map_err(|e| unexpected("using the access token", &e))?,
        };
        Ok(Repo {
            crab,
            full_name: full_name.to_owned(),
            retry: self.retry,
        })
    }

    /// A client acting as the person a user access token (from "Sign in
    /// with GitHub") belongs to, and the retry policy for calls someone
    /// waits on.
    pub(super) fn as_user(&self, token: &SecretString) -> Result<(Octocrab, RetryPolicy), CallError> {
        let crab = self
            .base
            .user_access_token(token.expose_secret().to_owned())
            .map_err(|e| unexpected("using the user's access token", &e))?;
        Ok((crab, INTERACTIVE_RETRY.min_of(self.retry)))
    }

    fn installation_client(&self, id: i64) -> Result<Octocrab, CallError> {
        if !self.has_app {
            return Err(CallError::NoApp);
        }
        let mut cache = self
            .installations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(crab) = cache.get(&id) {
            return Ok(crab.clone());
        }
        let crab = self
            .base
            .installation(InstallationId(id as u64))
            .map_err(|_| CallError::NoApp)?;
        cache.insert(id, crab.clone());
        Ok(crab)
    }

    /// Mints an installation token that can only read the contents of
    /// `owner/name`, for a runner to fetch a private repository. It expires
    /// within an hour. A runner waits for it, so it is retried briefly.
    pub async fn clone_token(&self, installation: i64, full_name: &str) -> Result<SecretString, CallError> {
        if !self.has_app {
            return Err(CallError::NoApp);
        }
        #[derive(Deserialize)]
        struct Minted {
            token: String,
        }
        let name = full_name.rsplit('/').next().unwrap_or(full_name);
        let body = json!({ "repositories": [name], "permissions": { "contents": "read" } });
        let minted: Minted = call(
            &self.base,
            INTERACTIVE_RETRY.min_of(self.retry),
            "minting an installation token",
            Method::Post,
            &format!("/app/installations/{installation}/access_tokens"),
            Some(&body),
        )
        .await?;
        Ok(SecretString::from(minted.token))
    }
}

/// A commit status (`POST /repos/{owner}/{repo}/statuses/{sha}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    /// `pending`, `success`, `failure` or `error`.
    pub state: &'static str,
    pub target_url: String,
    /// At most 140 characters; longer ones are cut.
    pub description: String,
    pub context: String,
}

/// A deployment (`POST /repos/{owner}/{repo}/deployments`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    pub sha: String,
    pub environment: String,
    pub description: String,
    pub production: bool,
    pub payload: Value,
}

/// A deployment status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentStatus {
    /// `queued`, `in_progress`, `success`, `failure`, `error` or `inactive`.
    pub state: &'static str,
    pub log_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
    pub description: String,
    pub auto_inactive: bool,
}

/// One repository's API.
#[derive(Debug)]
pub struct Repo {
    crab: Octocrab,
    full_name: String,
    retry: RetryPolicy,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: i64,
}

impl Repo {
    /// The same repository with another retry policy, e.g. a short one for
    /// a call someone waits for.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, CallError> {
        call(
            &self.crab,
            self.retry,
            what,
            method,
            &format!("/repos/{}{path}", self.full_name),
            body,
        )
        .await
    }

    pub async fn set_commit_status(&self, sha: &str, status: &CommitStatus) -> Result<(), CallError> {
        let mut status = status.clone();
        status.description = truncate(&status.description, 140);
        let body = serde_json::to_value(&status).expect("a status serializes");
        let _: Value = self
            .call(
                "a commit status",
                Method::Post,
                &format!("/statuses/{sha}"),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    /// Writes `body` into the pull request's comment that carries `marker`:
    /// the one with id `known` if it still exists, else the one found by its
    /// marker, else (with `create`) a new one. Returns the comment's id.
    pub async fn upsert_pr_comment(
        &self,
        pr_number: i64,
        known: Option<i64>,
        marker: &str,
        body: &str,
        create: bool,
    ) -> Result<Option<i64>, CallError> {
        let payload = json!({ "body": body });
        if let Some(id) = known {
            match self.update_comment(id, &payload).await {
                Ok(()) => return Ok(Some(id)),
                // Someone deleted it: look for another, or make a new one.
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(id) = self.find_pr_comment(pr_number, marker).await? {
            self.update_comment(id, &payload).await?;
            return Ok(Some(id));
        }
        if !create {
            return Ok(None);
        }
        let created: Created = self
            .call(
                "a pull-request comment",
                Method::Post,
                &format!("/issues/{pr_number}/comments"),
                Some(&payload),
            )
            .await?;
        Ok(Some(created.id))
    }

    async fn update_comment(&self, id: i64, payload: &Value) -> Result<(), CallError> {
        let _: Value = self
            .call(
                "a pull-request comment edit",
                Method::Patch,
                &format!("/issues/comments/{id}"),
                Some(payload),
            )
            .await?;
        Ok(())
    }

    /// The first comment of the pull request whose body carries `marker`.
    async fn find_pr_comment(&self, pr_number: i64, marker: &str) -> Result<Option<i64>, CallError> {
        #[derive(Deserialize)]
        struct Comment {
            id: i64,
            body: Option<String>,
        }
        const PER_PAGE: usize = 100;
        for page in 1.. {
            let comments: Vec<Comment> = self
                .call(
                    "the pull request's comments",
                    Method::Get,
                    &format!("/issues/{pr_number}/comments?per_page={PER_PAGE}&page={page}"),
                    None,
                )
                .await?;
            if let Some(found) = comments
                .iter()
                .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)))
            {
                return Ok(Some(found.id));
            }
            if comments.len() < PER_PAGE {
                break;
            }
        }
        Ok(None)
    }

    pub async fn create_deployment(&self, deployment: &NewDeployment) -> Result<i64, CallError> {
        let body = json!({
            "ref": deployment.sha,
            "environment": deployment.environment,
            "description": truncate(&deployment.description, 140),
            "auto_merge": false,
            // The build is the check; GitHub must not wait for others.
            "required_contexts": [],
            "production_environment": deployment.production,
            "transient_environment": !deployment.production,
            "payload": deployment.payload,
        });
        let created: Created = self
            .call("a deployment", Method::Post, "/deployments", Some(&body))
            .await?;
        Ok(created.id)
    }

    pub async fn set_deployment_status(
        &self,
        deployment_id: i64,
        status: &DeploymentStatus,
    ) -> Result<(), CallError> {
        let mut status = status.clone();
        status.description = truncate(&status.description, 140);
        let body = serde_json::to_value(&status).expect("a status serializes");
        let _: Value = self
            .call(
                "a deployment status",
                Method::Post,
                &format!("/deployments/{deployment_id}/statuses"),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    /// Makes sure the repository sends `push` and `pull_request` events to
    /// `url`, signed with `secret`: updates the hook already pointing there,
    /// or creates one. Returns the hook's id.
    /// The repository's default branch (`GET /repos/{owner}/{repo}`).
    pub async fn default_branch(&self) -> Result<String, CallError> {
        #[derive(Deserialize)]
        struct Repository {
            default_branch: String,
        }
        let repository: Repository = self.call("the repository", Method::Get, "", None).await?;
        Ok(repository.default_branch)
    }

    pub async fn ensure_webhook(&self, url: &str, secret: &str) -> Result<i64, CallError> {
        #[derive(Deserialize)]
        struct Hook {
            id: i64,
            #[serde(default)]
            config: HookConfig,
        }
        #[derive(Deserialize, Default)]
        struct HookConfig {
            url: Option<String>,
        }
        let body = json!({
            "name": "web",
            "active": true,
            "events": ["push", "pull_request"],
            "config": { "url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0" },
        });
        let hooks: Vec<Hook> = self
            .call(
                "the repository's webhooks",
                Method::Get,
                "/hooks?per_page=100",
                None,
            )
            .await?;
        if let Some(hook) = hooks.iter().find(|h| h.config.url.as_deref() == Some(url)) {
            let _: Value = self
                .call(
                    "a webhook update",
                    Method::Patch,
                    &format!("/hooks/{}", hook.id),
                    Some(&body),
                )
                .await?;
            return Ok(hook.id);
        }
        let created: Created = self
            .call("a new webhook", Method::Post, "/hooks", Some(&body))
            .await?;
        Ok(created.id)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Method {
    Get,
    Post,
    Patch,
}

/// One call, retried with backoff while it fails transiently. GitHub's
/// `Retry-After` (up to ten minutes) is waited out when it asks for longer.
pub(super) async fn call<T: DeserializeOwned>(
    crab: &Octocrab,
    retry: RetryPolicy,
    what: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<T, CallError> {
    let mut attempt = 1;
    (|| call_once(crab, what, method, path, body))
        .retry(retry.backoff())
        .when(CallError::is_transient)
        .adjust(|e, wait| match e {
            CallError::Refused {
                retry_after: Some(asked), ..
            } => wait.map(|wait| wait.max((*asked).min(Duration::from_secs(600)))),
            _ => wait,
        })
        .notify(|e, wait| {
            tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "GitHub call failed; retrying");
            attempt += 1;
        })
        .await
}

async fn call_once<T: DeserializeOwned>(
    crab: &Octocrab,
    what: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<T, CallError> {
    let sent = match method {
        Method::Get => crab._get(path).await,
        Method::Post => crab._post(path, body).await,
        Method::Patch => crab._patch(path, body).await,
    };
    let response = sent.map_err(|e| CallError::Unreachable {
        what: what.to_owned(),
        detail: describe(&e),
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = crab
        .body_to_string(response)
        .await
        .map_err(|e| CallError::Unreachable {
            what: what.to_owned(),
            detail: describe(&e),
        })?;
    if !(200..300).contains(&status) {
        #[derive(Deserialize)]
        struct ErrorBody {
            message: String,
        }
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.message)
            .unwrap_or_else(|_| truncate(text.trim(), 200));
        return Err(CallError::Refused {
            what: what.to_owned(),
            status,
            message,
            retry_after,
        });
    }
    let text = if text.trim().is_empty() { "null" } else { &text };
    serde_json::from_str(text).map_err(|e| CallError::Unexpected {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

fn unexpected(what: &str, error: &octocrab::Error) -> CallError {
    CallError::Unexpected {
        what: what.to_owned(),
        detail: describe(error),
    }
}

/// An octocrab error in one line, without the backtrace its `Display` adds.
fn describe(error: &octocrab::Error) -> String {
    use std::error::Error as _;
    let mut text = match error.source() {
        Some(source) => source.to_string(),
        None => error.to_string(),
    };
    if let Some(cut) = text.find("\n\nFound at") {
        text.truncate(cut);
    }
    text.lines().next().unwrap_or_default().to_owned()
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, message: &str) -> CallError {
        CallError::Refused {
            what: "x".into(),
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    #[test]
    fn only_outages_and_rate_limits_are_retried() {
        assert!(refused(502, "Bad Gateway").is_transient());
        assert!(refused(429, "slow down").is_transient());
        assert!(refused(403, "API rate limit exceeded for installation").is_transient());
        assert!(!refused(403, "Resource not accessible by integration").is_transient());
        assert!(!refused(404, "Not Found").is_transient());
        assert!(!refused(422, "Validation Failed").is_transient());
        assert!(
            CallError::Unreachable {
                what: "x".into(),
                detail: "connection refused".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn descriptions_are_cut_to_what_github_accepts() {
        assert_eq!(truncate("short", 140), "short");
        let long = "é".repeat(200);
        let cut = truncate(&long, 140);
        assert_eq!(cut.chars().count(), 140);
        assert!(cut.ends_with('…'));
    }
}
