//! GitHub: the only module that knows octocrab and GitHub's payload shapes.
//!
//! Deliveries come in through [`parse_event`], which turns a webhook body
//! into our own small [`GitHubEvent`], so the rest of the controller never
//! sees GitHub's models. Calls go out through [`client`] (octocrab, with
//! retries), and [`reporter`] turns build state changes into commit
//! statuses, deployments and the pull-request comment. [`sign_in`] is
//! "Sign in with GitHub": the OAuth flow, and who the person is.

pub mod client;
pub mod reporter;
pub mod sign_in;
pub mod signature;

use crate::config::Config;
use crate::db::Database;
use crate::db::Site;
use crate::events::Events;
use crate::urls::Urls;
use client::{CallError, Credentials};
use jamstack_proto::Secret;
use octocrab::models::webhook_events::payload::{
    InstallationRepositoriesWebhookEventAction, InstallationWebhookEventAction, PullRequestWebhookEventAction,
};
use octocrab::models::webhook_events::{EventInstallation, WebhookEvent, WebhookEventPayload};
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;

/// GitHub as a service: the API client, the database of installations and
/// site tokens, and what reports need (build events, where things are
/// reached).
#[derive(Clone)]
pub struct GitHubService {
    pub db: Database,
    pub config: Arc<Config>,
    pub client: Arc<client::GitHub>,
    /// Opens the sealed secrets stored with sites.
    pub secrets: Arc<crate::secrets::SecretBox>,
    pub urls: Urls,
    pub events: Events,
    /// "Sign in with GitHub", when an OAuth client is configured.
    pub sign_in: Option<Arc<sign_in::OAuthClient>>,
}

/// A delivery, reduced to what the controller acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitHubEvent {
    Ping,
    Push(PushEvent),
    PullRequest(PullRequestEvent),
    Installation(InstallationEvent),
    InstallationRepositories(InstallationRepositoriesEvent),
    /// An event or action we accept and do not act on.
    Other {
        event: String,
        action: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// `owner/name`.
    pub repository: String,
    /// The full ref pushed, e.g. `refs/heads/main` or `refs/tags/v1`.
    pub git_ref: String,
    /// The commit the ref pointed at before the push (zeros for a new ref).
    pub before: String,
    /// The commit the ref points at after the push.
    pub after: String,
    pub deleted: bool,
    pub head_commit_message: Option<String>,
    pub head_commit_author: Option<String>,
    /// The App installation that sent it, if it came through an App.
    pub installation_id: Option<i64>,
}

impl PushEvent {
    /// The branch pushed to, if the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    Synchronize,
    Reopened,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub action: PullRequestAction,
    /// The repository the pull request is opened against, `owner/name`.
    pub repository: String,
    pub number: i64,
    pub title: Option<String>,
    pub author: Option<String>,
    /// The branch with the changes, and its newest commit.
    pub head_ref: String,
    pub head_sha: String,
    /// The head branch lives in another repository (a fork), or in one that
    /// was deleted: its code comes from outside the repository.
    pub from_fork: bool,
    pub merged: bool,
    pub installation_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallationAction {
    Created,
    Deleted,
    Suspend,
    Unsuspend,
    NewPermissionsAccepted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationEvent {
    pub action: InstallationAction,
    pub installation_id: i64,
    pub account: String,
    /// The repositories it reaches, when the payload lists them.
    pub repositories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationRepositoriesEvent {
    pub installation_id: i64,
    pub account: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// How calls about `site` authenticate: its access token when it has one,
/// else the GitHub App's installation on its repository (given at connect
/// time, or known from installation events). `None` when the site is not on
/// GitHub or nothing can reach its repository.
pub async fn credentials_for(state: &GitHubService, site: &Site) -> anyhow::Result<Option<Credentials>> {
    let Some(repository) = &site.github_repo else {
        return Ok(None);
    };
    if let Some(sealed) = &site.github_token_sealed {
        let token = state
            .secrets
            .open(&crate::secrets::github_token_purpose(&site.name), sealed)?;
        return Ok(Some(Credentials::Token(token.into())));
    }
    if !state.client.has_app() {
        return Ok(None);
    }
    let installation = match site.github_installation_id {
        Some(id) => Some(id),
        None => state.db.installation_for_repo(repository).await?,
    };
    Ok(installation.map(Credentials::Installation))
}

/// The default branch of the site's GitHub repository, asked from GitHub
/// with the site's token or App installation; `None` when the site has no
/// GitHub repository or credentials, or GitHub does not answer (a few quick
/// tries: someone waits for the site to be connected).
pub async fn default_branch_of(state: &GitHubService, site: &Site) -> Option<String> {
    let repository = site.github_repo.as_ref()?;
    let credentials = match credentials_for(state, site).await {
        Ok(credentials) => credentials?,
        Err(e) => {
            tracing::warn!(site = %site.name, error = format!("{e:#}"), "no credentials to ask GitHub with");
            return None;
        }
    };
    let quick = client::INTERACTIVE_RETRY.min_of(state.config.github_retry);
    let answer = match state.client.repo(&credentials, repository) {
        Ok(repo) => repo.with_retry(quick).default_branch().await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(branch) if !branch.trim().is_empty() => Some(branch),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(
                site = %site.name,
                error = %e,
                "could not ask GitHub for the repository's default branch; deliveries will name it"
            );
            None
        }
    }
}

/// A token a runner can fetch the site's repository with over https: a
/// fresh installation token that can only read this repository, or the
/// site's access token. `None` for repositories fetched another way, and
/// when no token can be had (the fetch then says what failed).
///
/// The token goes out only when `repo_url` is the GitHub repository itself
/// (`https://<GitHub host>/<github_repo>(.git)`): a site's `repo_url` is
/// whatever its admin typed, and a token for `octo/blog` handed to a job
/// whose URL names another server would be sent to that server.
pub async fn clone_token_for(state: &GitHubService, site: &Site) -> Option<Secret> {
    use secrecy::ExposeSecret as _;
    let repository = site.github_repo.as_ref()?;
    let repo_url = site.repo_url.as_deref()?;
    let git_host = git_host_of(&state.config.github_api_url);
    if !is_clone_url_of(repo_url, repository, &git_host) {
        tracing::info!(
            site = %site.name,
            repo_url = %repo_url,
            "no token for the job: the repository URL is not https://{git_host}/{repository}"
        );
        return None;
    }
    let token = match credentials_for(state, site).await {
        Ok(Some(Credentials::Token(token))) => Ok(token),
        Ok(Some(Credentials::Installation(id))) => state.client.clone_token(id, repository).await,
        Ok(None) => return None,
        Err(e) => Err(CallError::Unexpected {
            what: "the site's credentials".to_owned(),
            detail: format!("{e:#}"),
        }),
    };
    match token {
        Ok(token) => Some(Secret::new(token.expose_secret())),
        Err(e) => {
            tracing::warn!(site = %site.name, error = %e, "no token for fetching the repository");
            None
        }
    }
}

/// The host GitHub serves git from: `github.com`, or for GitHub Enterprise
/// (an API at `https://HOST/api/v3`) that `HOST`.
pub fn git_host_of(api_url: &str) -> String {
    let Some(rest) = api_url.strip_prefix("https://") else {
        return "github.com".to_owned();
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if path.trim_end_matches('/') == "api/v3" && !host.is_empty() {
        host.to_ascii_lowercase()
    } else {
        "github.com".to_owned()
    }
}

/// Whether `repo_url` is GitHub's https clone URL of `full_name` on
/// `git_host`, with or without `.git`: no user, port, query or other path.
pub fn is_clone_url_of(repo_url: &str, full_name: &str, git_host: &str) -> bool {
    let Some(rest) = repo_url.strip_prefix("https://") else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return false;
    };
    let path = path.strip_suffix(".git").unwrap_or(path);
    host.eq_ignore_ascii_case(git_host) && path.eq_ignore_ascii_case(full_name)
}

/// Why a delivery could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not a valid `{event}` payload: {source}")]
    Malformed {
        event: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the `{0}` payload names no repository")]
    NoRepository(String),
    #[error("the `{0}` payload names no installation")]
    NoInstallation(String),
}

/// Why a delivery's body holds no payload to read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(
        "Content-Type `{0}` is not one GitHub sends; in the webhook's settings on GitHub pick \
         `application/json` or `application/x-www-form-urlencoded` as its content type"
    )]
    UnknownContentType(String),
    #[error(
        "the form body has no `payload` field: GitHub sends a form delivery's JSON there. \
         Pick `application/json` as the content type in the webhook's settings on GitHub \
         to send the JSON as the body instead"
    )]
    NoPayloadField,
    #[error(
        "the form body cannot be read ({0}); GitHub sends `payload=<the event's JSON>`. \
         Pick `application/json` as the content type in the webhook's settings on GitHub \
         to send the JSON as the body instead"
    )]
    MalformedForm(serde_urlencoded::de::Error),
}

/// The fields of a form-encoded delivery: GitHub's JSON is in `payload`.
#[derive(Deserialize)]
struct FormDelivery {
    payload: Option<String>,
}

/// The JSON payload of a delivery, read according to its `Content-Type`:
/// GitHub sends either the JSON itself (`application/json`) or a form whose
/// `payload` field holds it (`application/x-www-form-urlencoded`, the default
/// of a webhook added by hand). A delivery without a content type is read as
/// JSON, as before GitHub let people choose. The signature covers `body`
/// as received, so it is checked before this.
pub fn payload_of<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<Cow<'a, [u8]>, BodyError> {
    let Some(content_type) = content_type else {
        return Ok(Cow::Borrowed(body));
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(Cow::Borrowed(body))
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let form: FormDelivery = serde_urlencoded::from_bytes(body).map_err(BodyError::MalformedForm)?;
        let payload = form.payload.ok_or(BodyError::NoPayloadField)?;
        Ok(Cow::Owned(payload.into_bytes()))
    } else {
        let shown: String = content_type.chars().take(100).collect();
        Err(BodyError::UnknownContentType(shown))
    }
}

/// The fields every payload may carry, read before the full parse so that
/// unknown actions are recognised (and ignored) without failing on a shape
/// octocrab's models do not know yet.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope {
    pub action: Option<String>,
    pub repository: Option<EnvelopeRepository>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EnvelopeRepository {
    pub full_name: Option<String>,
    pub default_branch: Option<String>,
}

impl Envelope {
    /// Reads the envelope; `None` when the body is not a JSON object.
    pub fn peek(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    pub fn repository(&self) -> Option<String> {
        self.repository.as_ref().and_then(|r| r.full_name.clone())
    }

    /// The repository (`owner/name`) and its default branch, when the
    /// payload names both: every repository webhook's deliveries do.
    pub fn default_branch(&self) -> Option<(&str, &str)> {
        let repository = self.repository.as_ref()?;
        let full_name = repository.full_name.as_deref()?;
        let branch = repository
            .default_branch
            .as_deref()
            .filter(|b| !b.trim().is_empty())?;
        Some((full_name, branch))
    }
}

const PULL_REQUEST_ACTIONS: &[&str] = &["opened", "synchronize", "reopened", "closed"];
const INSTALLATION_ACTIONS: &[&str] = &[
    "created",
    "deleted",
    "suspend",
    "unsuspend",
    "new_permissions_accepted",
];
const INSTALLATION_REPOSITORIES_ACTIONS: &[&str] = &["added", "removed"];

/// Reads a delivery given its `X-GitHub-Event` header and body.
pub fn parse_event(event: &str, body: &[u8]) -> Result<GitHubEvent, ParseError> {
    parse_with_envelope(event, body, Envelope::peek(body).as_ref())
}

/// [`parse_event`] for a caller that has peeked at the envelope already.
pub fn parse_with_envelope(
    event: &str,
    body: &[u8],
    envelope: Option<&Envelope>,
) -> Result<GitHubEvent, ParseError> {
    let known = matches!(
        event,
        "push" | "pull_request" | "installation" | "installation_repositories"
    );
    let envelope = match envelope {
        Some(envelope) => envelope,
        // Events we act on must be JSON; others are not read at all.
        None if known => {
            let source = serde_json::from_slice::<serde::de::IgnoredAny>(body)
                .err()
                .unwrap_or_else(|| serde::de::Error::custom("expected a JSON object"));
            return Err(ParseError::Malformed {
                event: event.to_owned(),
                source,
            });
        }
        None => &Envelope::default(),
    };
    let action = envelope.action.as_deref().unwrap_or("");
    let acted_on = match event {
        "ping" => return Ok(GitHubEvent::Ping),
        "push" => true,
        "pull_request" => PULL_REQUEST_ACTIONS.contains(&action),
        "installation" => INSTALLATION_ACTIONS.contains(&action),
        "installation_repositories" => INSTALLATION_REPOSITORIES_ACTIONS.contains(&action),
        _ => false,
    };
    if !acted_on {
        return Ok(GitHubEvent::Other {
            event: event.to_owned(),
            action: envelope.action.clone(),
        });
    }
    let parsed =
        WebhookEvent::try_from_header_and_body(event, body).map_err(|source| ParseError::Malformed {
            event: event.to_owned(),
            source,
        })?;
    let installation_id = parsed.installation.as_ref().map(|i| i.id().0 as i64);
    let account = match &parsed.installation {
        Some(EventInstallation::Full(installation)) => installation.account.login.clone(),
        _ => String::new(),
    };
    let repository = || {
        parsed
            .repository
            .as_ref()
            .and_then(|r| r.full_name.clone())
            .ok_or_else(|| ParseError::NoRepository(event.to_owned()))
    };
    let installation = || installation_id.ok_or_else(|| ParseError::NoInstallation(event.to_owned()));
    match &parsed.specific {
        WebhookEventPayload::Push(push) => Ok(GitHubEvent::Push(PushEvent {
            repository: repository()?,
            git_ref: push.r#ref.clone(),
            before: push.before.clone(),
            after: push.after.clone(),
            deleted: push.deleted,
            head_commit_message: push.head_commit.as_ref().map(|c| c.message.clone()),
            head_commit_author: push.head_commit.as_ref().map(|c| c.author.user.name.clone()),
            installation_id,
        })),
        WebhookEventPayload::PullRequest(pr) => {
            let action = match pr.action {
                PullRequestWebhookEventAction::Opened => PullRequestAction::Opened,
                PullRequestWebhookEventAction::Synchronize => PullRequestAction::Synchronize,
                PullRequestWebhookEventAction::Reopened => PullRequestAction::Reopened,
                PullRequestWebhookEventAction::Closed => PullRequestAction::Closed,
                _ => {
                    return Ok(GitHubEvent::Other {
                        event: event.to_owned(),
                        action: envelope.action.clone(),
                    });
                }
            };
            let repository = repository()?;
            let head = &pr.pull_request.head;
            let head_repository = head.repo.as_ref().and_then(|r| r.full_name.clone());
            let from_fork = !head_repository
                .as_deref()
                .is_some_and(|head| head.eq_ignore_ascii_case(&repository));
            Ok(GitHubEvent::PullRequest(PullRequestEvent {
                action,
                number: pr.number as i64,
                title: pr.pull_request.title.clone(),
                author: pr.pull_request.user.as_ref().map(|u| u.login.clone()),
                head_ref: head.ref_field.clone(),
                head_sha: head.sha.clone(),
                from_fork,
                merged: pr.pull_request.merged.unwrap_or(false),
                repository,
                installation_id,
            }))
        }
        WebhookEventPayload::Installation(payload) => {
            let action = match payload.action {
                InstallationWebhookEventAction::Created => InstallationAction::Created,
                InstallationWebhookEventAction::Deleted => InstallationAction::Deleted,
                InstallationWebhookEventAction::Suspend => InstallationAction::Suspend,
                InstallationWebhookEventAction::Unsuspend => InstallationAction::Unsuspend,
                InstallationWebhookEventAction::NewPermissionsAccepted => {
                    InstallationAction::NewPermissionsAccepted
                }
                _ => {
                    return Ok(GitHubEvent::Other {
                        event: event.to_owned(),
                        action: envelope.action.clone(),
                    });
                }
            };
            Ok(GitHubEvent::Installation(InstallationEvent {
                action,
                installation_id: installation()?,
                account,
                repositories: payload
                    .repositories
                    .iter()
                    .flatten()
                    .map(|r| r.full_name.clone())
                    .collect(),
            }))
        }
        WebhookEventPayload::InstallationRepositories(payload) => {
            let (added, removed) = match payload.action {
                InstallationRepositoriesWebhookEventAction::Added
                | InstallationRepositoriesWebhookEventAction::Removed => (
                    payload
                        .repositories_added
                        .iter()
                        .map(|r| r.full_name.clone())
                        .collect(),
                    payload
                        .repositories_removed
                        .iter()
                        .map(|r| r.full_name.clone())
                        .collect(),
                ),
                _ => {
                    return Ok(GitHubEvent::Other {
                        event: event.to_owned(),
                        action: envelope.action.clone(),
                    });
                }
            };
            Ok(GitHubEvent::InstallationRepositories(
                InstallationRepositoriesEvent {
                    installation_id: installation()?,
                    account,
                    added,
                    removed,
                },
            ))
        }
        _ => Ok(GitHubEvent::Other {
            event: event.to_owned(),
            action: envelope.action.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repo_url_naming_another_host_or_repository_gets_no_github_token() {
        assert_eq!(git_host_of("https://api.github.com"), "github.com");
        assert_eq!(git_host_of("http://127.0.0.1:9000"), "github.com");
        assert_eq!(git_host_of("https://GHE.example.com/api/v3/"), "ghe.example.com");
        for good in [
            "https://github.com/octo/blog.git",
            "https://github.com/octo/blog",
            "https://GitHub.com/Octo/Blog.git",
        ] {
            assert!(is_clone_url_of(good, "octo/blog", "github.com"), "{good}");
        }
        for bad in [
            "https://127.0.0.1:9000/octo/blog.git",
            "https://github.com.evil.example/octo/blog.git",
            "https://evil.example/github.com/octo/blog.git",
            "https://x@github.com/octo/blog.git",
            "https://github.com:444/octo/blog.git",
            "http://github.com/octo/blog.git",
            "https://github.com/octo/other.git",
            "https://github.com/octo/blog/../other.git",
            "https://github.com/octo/blog.git?x=1",
            "git@github.com:octo/blog.git",
            "/srv/git/blog",
        ] {
            assert!(!is_clone_url_of(bad, "octo/blog", "github.com"), "{bad}");
        }
        assert!(is_clone_url_of(
            "https://ghe.example.com/octo/blog.git",
            "octo/blog",
            "ghe.example.com"
        ));
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../shared/fixtures/github-webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!("reading {path}: {e}; the shared fixtures must sit beside the repository")
        })
    }

    #[test]
    fn a_real_push_payload_names_repository_branch_and_commit() {
        let GitHubEvent::Push(push) = parse_event("push", &fixture("push.with-new-branch.json")).unwrap()
        else {
            panic!("not a push");
        };
        assert!(push.repository.contains('/'), "{}", push.repository);
        assert!(push.branch().is_some());
        assert_eq!(push.after.len(), 40);
        assert!(!push.deleted);
        assert_eq!(push.installation_id, Some(1));
    }

    #[test]
    fn every_push_fixture_parses() {
        for name in [
            "push.json",
            "push.with-installation.json",
            "push.with-new-branch.json",
        ] {
            let event = parse_event("push", &fixture(name));
            assert!(matches!(event, Ok(GitHubEvent::Push(_))), "{name}: {event:?}");
        }
    }

    #[test]
    fn a_form_delivery_carries_the_same_payload_as_a_json_one() {
        let json = fixture("push.with-new-branch.json");
        let form = serde_urlencoded::to_string([("payload", std::str::from_utf8(&json).unwrap())]).unwrap();
        let from_form = payload_of(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap();
        assert_eq!(&*from_form, &json[..]);
        let from_json = payload_of(Some("application/json; charset=utf-8"), &json).unwrap();
        assert_eq!(
            parse_event("push", &from_form).unwrap(),
            parse_event("push", &from_json).unwrap()
        );
        assert_eq!(
            &*payload_of(None, &json).unwrap(),
            &json[..],
            "no content type is read as JSON"
        );
    }

    #[test]
    fn a_form_without_payload_or_an_unknown_content_type_says_what_to_pick_on_github() {
        let err = payload_of(Some("application/x-www-form-urlencoded"), b"ref=main").unwrap_err();
        assert!(matches!(err, BodyError::NoPayloadField), "{err}");
        assert!(err.to_string().contains("`payload`"), "{err}");
        let err = payload_of(Some("text/plain"), b"{}").unwrap_err();
        assert!(err.to_string().contains("`text/plain`"), "{err}");
        assert!(
            err.to_string().contains("application/x-www-form-urlencoded"),
            "{err}"
        );
    }

    #[test]
    fn a_real_tag_deletion_is_a_push_of_a_tag_ref() {
        let GitHubEvent::Push(push) = parse_event("push", &fixture("push.json")).unwrap() else {
            panic!("not a push");
        };
        assert_eq!(push.git_ref, "refs/tags/simple-tag");
        assert!(push.deleted);
        assert_eq!(push.branch(), None);
    }

    #[test]
    fn real_pull_request_payloads_name_the_head_branch_commit_and_number() {
        for (name, action) in [
            ("pull_request.opened.json", PullRequestAction::Opened),
            ("pull_request.synchronize.json", PullRequestAction::Synchronize),
            ("pull_request.closed.json", PullRequestAction::Closed),
        ] {
            let GitHubEvent::PullRequest(pr) = parse_event("pull_request", &fixture(name)).unwrap() else {
                panic!("{name}: not a pull request");
            };
            assert_eq!(pr.action, action, "{name}");
            assert_eq!(pr.number, 2);
            assert_eq!(pr.repository, "Codertocat/Hello-World");
            assert_eq!(pr.head_ref, "changes");
            assert_eq!(pr.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
            assert!(!pr.from_fork, "{name}: head and base are the same repository");
            assert_eq!(pr.installation_id, Some(1));
        }
    }

    #[test]
    fn a_pull_request_from_another_repository_is_from_a_fork() {
        let mut payload: serde_json::Value =
            serde_json::from_slice(&fixture("pull_request.opened.json")).unwrap();
        payload["pull_request"]["head"]["repo"]["full_name"] = "stranger/Hello-World".into();
        let body = serde_json::to_vec(&payload).unwrap();
        let GitHubEvent::PullRequest(pr) = parse_event("pull_request", &body).unwrap() else {
            panic!("not a pull request");
        };
        assert!(pr.from_fork);

        payload["pull_request"]["head"]["repo"] = serde_json::Value::Null;
        let body = serde_json::to_vec(&payload).unwrap();
        let GitHubEvent::PullRequest(pr) = parse_event("pull_request", &body).unwrap() else {
            panic!("not a pull request");
        };
        assert!(pr.from_fork, "a deleted head repository is not trusted either");
    }

    #[test]
    fn real_installation_payloads_list_the_reachable_repositories() {
        let GitHubEvent::Installation(installation) =
            parse_event("installation", &fixture("installation.created.json")).unwrap()
        else {
            panic!("not an installation event");
        };
        assert_eq!(installation.action, InstallationAction::Created);
        assert_eq!(installation.installation_id, 957387);
        assert_eq!(installation.account, "Codertocat");
        assert_eq!(installation.repositories, ["Codertocat/Hello-World"]);

        let GitHubEvent::InstallationRepositories(change) = parse_event(
            "installation_repositories",
            &fixture("installation_repositories.added.json"),
        )
        .unwrap() else {
            panic!("not an installation_repositories event");
        };
        assert_eq!(change.installation_id, 957387);
        assert_eq!(change.added, ["Codertocat/Space"]);
        assert!(change.removed.is_empty());
    }

    #[test]
    fn ping_and_unknown_events_and_actions_are_not_errors() {
        assert_eq!(
            parse_event("ping", &fixture("ping.json")).unwrap(),
            GitHubEvent::Ping
        );
        assert_eq!(
            parse_event("watch", b"{}").unwrap(),
            GitHubEvent::Other {
                event: "watch".into(),
                action: None
            }
        );
        // An action GitHub may add one day, on a body octocrab cannot read.
        assert_eq!(
            parse_event("pull_request", b"{\"action\": \"teleported\", \"number\": \"x\"}").unwrap(),
            GitHubEvent::Other {
                event: "pull_request".into(),
                action: Some("teleported".into())
            }
        );
        assert!(matches!(
            parse_event("pull_request", b"{\"action\": \"labeled\"}").unwrap(),
            GitHubEvent::Other { .. }
        ));
    }

    #[test]
    fn a_malformed_push_says_what_was_wrong() {
        let err = parse_event("push", b"{\"ref\": 5}").unwrap_err();
        assert!(err.to_string().contains("not a valid `push` payload"), "{err}");
        let err = parse_event("pull_request", b"{\"action\": \"opened\"}").unwrap_err();
        assert!(
            err.to_string().contains("not a valid `pull_request` payload"),
            "{err}"
        );
        let err = parse_event("pull_request", b"{\"action\": \"opened\", ").unwrap_err();
        assert!(err.to_string().contains("EOF"), "{err}");
        assert!(matches!(
            parse_event("star", b"not json"),
            Ok(GitHubEvent::Other { .. })
        ));
    }
}
