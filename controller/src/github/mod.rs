//! GitHub: the only module that knows octocrab and GitHub's payload shapes.
//!
//! It turns a webhook delivery into our own small event types, so the rest of
//! the controller never sees GitHub's models.

pub mod signature;

use octocrab::models::webhook_events::{WebhookEvent, WebhookEventPayload};

/// A delivery, reduced to what the controller acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitHubEvent {
    Ping,
    Push(PushEvent),
    /// An event or action we accept and do not act on (yet).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// `owner/name`.
    pub repository: String,
    /// The full ref pushed, e.g. `refs/heads/main` or `refs/tags/v1`.
    pub git_ref: String,
    /// The commit the ref points at after the push.
    pub after: String,
    pub deleted: bool,
    pub head_commit_message: Option<String>,
    pub head_commit_author: Option<String>,
}

impl PushEvent {
    /// The branch pushed to, if the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }
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
}

/// Reads a delivery given its `X-GitHub-Event` header and body.
pub fn parse_event(event: &str, body: &[u8]) -> Result<GitHubEvent, ParseError> {
    match event {
        "ping" => return Ok(GitHubEvent::Ping),
        "push" => {}
        other => return Ok(GitHubEvent::Other(other.to_owned())),
    }
    let parsed =
        WebhookEvent::try_from_header_and_body(event, body).map_err(|source| ParseError::Malformed {
            event: event.to_owned(),
            source,
        })?;
    let repository = parsed
        .repository
        .as_ref()
        .and_then(|r| r.full_name.clone())
        .ok_or_else(|| ParseError::NoRepository(event.to_owned()))?;
    match parsed.specific {
        WebhookEventPayload::Push(push) => Ok(GitHubEvent::Push(PushEvent {
            repository,
            git_ref: push.r#ref.clone(),
            after: push.after.clone(),
            deleted: push.deleted,
            head_commit_message: push.head_commit.as_ref().map(|c| c.message.clone()),
            head_commit_author: push.head_commit.as_ref().map(|c| c.author.user.name.clone()),
        })),
        _ => Ok(GitHubEvent::Other(event.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ping_and_unknown_events_are_not_errors() {
        assert_eq!(
            parse_event("ping", &fixture("ping.json")).unwrap(),
            GitHubEvent::Ping
        );
        assert_eq!(
            parse_event("watch", b"{}").unwrap(),
            GitHubEvent::Other("watch".into())
        );
    }

    #[test]
    fn a_malformed_push_says_what_was_wrong() {
        let err = parse_event("push", b"{\"ref\": 5}").unwrap_err();
        assert!(err.to_string().contains("not a valid `push` payload"), "{err}");
    }
}
