//! Webhooks: `POST /webhooks/github` (signed GitHub deliveries) and
//! `POST /webhooks/generic/{site}` (a signed push from any git server).
//!
//! Each delivery is checked (size, signature), recorded, claimed under its
//! delivery id so a redelivery is handled once, read into a source-agnostic
//! event and handed to [`crate::triggers`]. Nothing here calls GitHub: what
//! is reported back goes out in the background ([`crate::github::reporter`]),
//! so a delivery is answered in the time a few database writes take.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::db::{Claim, Database, NewDelivery};
use crate::error::AppError;
use crate::github::signature::{self, SignatureError};
use crate::github::{self, Envelope, GitHubEvent, InstallationAction, PullRequestAction};
use crate::push_batches::{Batched, PushArrival, PushBatches};
use crate::secrets::SecretBox;
use crate::state::Installation;
use crate::triggers::{self, Outcome, Triggers, no_site};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// GitHub caps payloads at 25 MB; larger bodies are refused before reading.
pub const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;

/// The signature header of the generic webhook: `sha256=` and the hex
/// HMAC-SHA256 of the body with the site's secret, as GitHub signs.
pub const GENERIC_SIGNATURE_HEADER: &str = "x-jamstack-signature-256";
/// An id the sender gives each delivery, so a resent one is handled once.
pub const GENERIC_DELIVERY_HEADER: &str = "x-jamstack-delivery";

/// How long deliveries are kept.
const DELIVERY_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Refused (unauthenticated) deliveries kept at most, newest first.
const REFUSED_DELIVERIES_KEPT: i64 = 1000;

/// What the controller did with a delivery; GitHub shows it in the
/// webhook's "Recent deliveries" view.
#[derive(Debug, Serialize)]
pub struct DeliveryAnswer {
    /// The delivery's id in `GET /api/v1/webhook-deliveries/{id}`.
    pub delivery: i64,
    pub outcome: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<i64>,
    pub message: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// At most 200 bytes of what a sender chose (ids, names), for the records:
/// unauthenticated senders choose them too.
fn clip(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Why a delivery was not acted on.
enum Refusal {
    /// Refused before it was authenticated: recorded, never claimed.
    Unauthenticated(AppError),
    /// Authenticated but unreadable.
    Invalid(AppError),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Refusal {
    fn from(error: anyhow::Error) -> Self {
        Refusal::Internal(error)
    }
}

/// Records, claims and handles one delivery; `handle` runs only for a
/// delivery seen for the first time.
async fn receive<F, Fut>(
    db: &Database,
    audit: &AuditLog,
    mut delivery: NewDelivery,
    checked: Result<(), Refusal>,
    handle: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, Refusal>>,
{
    if let Err(Refusal::Unauthenticated(error)) = checked {
        return refuse(db, &delivery, error).await;
    }
    let id = match db.claim_delivery(&delivery).await {
        Ok(Claim::New(id)) => id,
        Ok(Claim::Duplicate(earlier)) => {
            let message = format!(
                "delivery `{}` was received before (delivery {}, {}): {}",
                delivery.delivery_id.as_deref().unwrap_or_default(),
                earlier.id,
                earlier.outcome,
                earlier.message
            );
            delivery.action = delivery.action.or(earlier.action);
            let id = db
                .record_unclaimed_delivery(&delivery, "duplicate", &message)
                .await
                .unwrap_or(earlier.id);
            return answer(StatusCode::OK, id, "duplicate", earlier.builds, message);
        }
        Ok(Claim::SameBody(earlier)) => {
            let message = format!(
                "this body was received before under another delivery id (delivery {}, `{}`, {}): \
                 a replayed delivery is not acted on. To build again, trigger a build \
                 (POST /api/v1/sites/<site>/builds) or push a new commit",
                earlier.id,
                earlier.delivery_id.as_deref().unwrap_or("no id"),
                earlier.outcome,
            );
            tracing::warn!(earlier = earlier.id, "a replayed webhook body was not acted on");
            delivery.action = delivery.action.or(earlier.action);
            let id = db
                .record_unclaimed_delivery(&delivery, "duplicate", &message)
                .await
                .unwrap_or(earlier.id);
            return answer(StatusCode::OK, id, "duplicate", Vec::new(), message);
        }
        Err(e) => return AppError::from(e).into_response(),
    };
    let result = match checked {
        Ok(()) => handle().await,
        Err(refusal) => Err(refusal),
    };
    match result {
        Ok(outcome) => {
            if let Err(e) = db
                .finish_delivery(id, outcome.outcome, &outcome.message, &outcome.builds)
                .await
            {
                return AppError::from(e).into_response();
            }
            let status = answer_status(&outcome);
            audit_builds_queued(audit, &delivery, &outcome.builds, status).await;
            answer(status, id, outcome.outcome, outcome.builds, outcome.message)
        }
        Err(Refusal::Invalid(error) | Refusal::Unauthenticated(error)) => {
            let _ = db.finish_delivery(id, "rejected", error.message(), &[]).await;
            error.into_response()
        }
        Err(Refusal::Internal(e)) => {
            // Recorded as failed: a redelivery will be handled again.
            let _ = db
                .finish_delivery(
                    id,
                    "failed",
                    "internal error; the controller's log has the details. Redeliver it once fixed",
                    &[],
                )
                .await;
            AppError::from(e).into_response()
        }
    }
}

/// 202 says work was queued; anything else was done already.
fn answer_status(outcome: &Outcome) -> StatusCode {
    StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::OK)
}

/// Writes the builds a delivery queued to the audit log, as done by
/// `webhook:<source>` (`webhook:github`, `webhook:generic`).
async fn audit_builds_queued(audit: &AuditLog, delivery: &NewDelivery, builds: &[i64], status: StatusCode) {
    let actor = format!("webhook:{}", delivery.source);
    audit
        .builds_queued(&actor, builds, i64::from(status.as_u16()))
        .await;
}

async fn refuse(db: &Database, delivery: &NewDelivery, error: AppError) -> Response {
    if let Err(e) = db
        .record_unclaimed_delivery(delivery, "rejected", error.message())
        .await
    {
        tracing::error!(error = format!("{e:#}"), "recording a refused delivery");
    }
    tracing::warn!(source = delivery.source, delivery = ?delivery.delivery_id, error = error.message(), "webhook delivery refused");
    error.into_response()
}

fn answer(status: StatusCode, delivery: i64, outcome: &str, builds: Vec<i64>, message: String) -> Response {
    (
        status,
        Json(DeliveryAnswer {
            delivery,
            outcome: outcome.to_owned(),
            builds,
            message,
        }),
    )
        .into_response()
}

/// Reads a webhook's body, at most [`MAX_WEBHOOK_BODY`] bytes within the
/// listener's body timeout: the sender is not yet authenticated, so it may
/// neither send without end nor hold the connection by sending slowly.
async fn read_body(config: &Config, request: Request) -> Result<Bytes, AppError> {
    let limit = config.http.body_read_timeout;
    match tokio::time::timeout(limit, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(rejection)) => Err(body_refusal(&rejection)),
        Err(_) => Err(AppError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} seconds; send the whole delivery at once",
                limit.as_secs()
            ),
        )),
    }
}

/// The hex SHA-256 a delivery's body is recognised by (see
/// [`NewDelivery::body_key`]).
fn body_digest(body: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(body))
}

fn body_refusal(rejection: &BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} MB, the most a webhook may send",
                MAX_WEBHOOK_BODY / (1024 * 1024)
            ),
        )
    } else {
        AppError::new(rejection.status(), rejection.body_text())
    }
}

#[tracing::instrument(name = "webhook", skip_all, fields(source = "github", delivery = header(request.headers(), "x-github-delivery").unwrap_or_default()))]
pub async fn github(
    State(db): State<Database>,
    State(audit): State<AuditLog>,
    State(config): State<Arc<Config>>,
    State(push_batches): State<PushBatches>,
    State(triggers): State<Triggers>,
    State(installation): State<Installation>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let event = header(&headers, "x-github-event").unwrap_or_default().to_owned();
    let mut delivery = NewDelivery {
        source: "github",
        delivery_id: header(&headers, "x-github-delivery").map(|id| clip(id).to_owned()),
        event: if event.is_empty() {
            "(none)".to_owned()
        } else {
            clip(&event).to_owned()
        },
        action: None,
        repository: None,
        body_sha256: None,
    };
    // No signature, no reading: what cannot be authenticated is refused
    // before its body is read.
    if let Err(e) = signature::parse(header(&headers, "x-hub-signature-256")) {
        return refuse(&db, &delivery, crate::error::unauthorized(e.to_string())).await;
    }
    let body = match read_body(&config, request).await {
        Ok(body) => body,
        Err(error) => return refuse(&db, &delivery, error).await,
    };
    // The signature covers the body as received, whichever content type
    // carries the payload in it.
    let payload = signature::verify(
        installation.webhook_secret.as_bytes(),
        header(&headers, "x-hub-signature-256"),
        &body,
    )
    .map_err(|e| Refusal::Unauthenticated(crate::error::unauthorized(e.to_string())))
    .and_then(|()| {
        if event.is_empty() {
            Err(Refusal::Invalid(crate::error::bad_request(
                "missing X-GitHub-Event header; GitHub sends it with every delivery",
            )))
        } else {
            Ok(())
        }
    })
    .and_then(|()| {
        github::payload_of(header(&headers, "content-type"), &body)
            .map_err(|e| Refusal::Invalid(crate::error::bad_request(e.to_string())))
    });
    let (checked, payload) = match payload {
        Ok(payload) => (Ok(()), Some(payload)),
        Err(refusal) => (Err(refusal), None),
    };
    if checked.is_ok() {
        delivery.body_sha256 = Some(body_digest(&body));
    }
    let envelope = payload.as_deref().and_then(Envelope::peek);
    if let Some(envelope) = &envelope {
        delivery.action = envelope.action.as_deref().map(|a| clip(a).to_owned());
        delivery.repository = envelope.repository().map(|r| clip(&r).to_owned());
    }
    if let Some((repository, default_branch)) = envelope.as_ref().and_then(Envelope::default_branch) {
        follow_default_branch(&db, &delivery, repository, default_branch).await;
    }
    let parsed = payload
        .as_deref()
        .map(|payload| github::parse_with_envelope(&event, payload, envelope.as_ref()));
    if let Some(Ok(GitHubEvent::Push(push))) = &parsed
        && delivery.delivery_id.is_some()
        && let Some(response) = push_in_batch(&push_batches, &delivery, push).await
    {
        return response;
    }
    receive(&db, &audit, delivery, checked, || async {
        let event = parsed
            .ok_or_else(|| Refusal::Internal(anyhow::anyhow!("an unauthenticated delivery was handled")))?
            .map_err(|e| Refusal::Invalid(crate::error::bad_request(e.to_string())))?;
        on_github_event(&db, &triggers, event)
            .await
            .map_err(Refusal::Internal)
    })
    .await
}

/// Sites connected without naming a production branch build the
/// repository's default branch: an authenticated delivery names it, and a
/// renamed default branch is followed. Done before the delivery is acted
/// on, so the first push to it builds.
async fn follow_default_branch(
    db: &Database,
    delivery: &NewDelivery,
    repository: &str,
    default_branch: &str,
) {
    match db
        .follow_default_branch(repository, default_branch, delivery)
        .await
    {
        Ok(changed) => {
            for (site, before) in changed {
                tracing::info!(
                    site,
                    repository,
                    before,
                    production_branch = default_branch,
                    "the production branch follows the repository's default branch"
                );
            }
        }
        // The delivery is still handled, with the branch the site had.
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            repository,
            "recording the repository's default branch"
        ),
    }
}

/// Records a push delivery together with others arriving at the same time
/// (see [`crate::push_batches`]). `None` when it goes the one-at-a-time
/// way instead: a deleted branch (not a build), a delivery id seen before
/// (answered as a duplicate or retried there), or a failure (recorded
/// there as failed, so a redelivery retries it).
async fn push_in_batch(
    push_batches: &PushBatches,
    delivery: &NewDelivery,
    push: &github::PushEvent,
) -> Option<Response> {
    if push.deleted {
        return None;
    }
    let arrival = PushArrival {
        delivery: delivery.clone(),
        repository: push.repository.clone(),
        installation: push.installation_id,
        push: github_push(push.clone()),
    };
    match push_batches.record(arrival).await {
        // The batch wrote its builds to the audit log.
        Ok(Batched::Recorded {
            delivery: id,
            outcome,
        }) => {
            let status = answer_status(&outcome);
            Some(answer(
                status,
                id,
                outcome.outcome,
                outcome.builds,
                outcome.message,
            ))
        }
        Ok(Batched::Claimed) => None,
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "recording a push delivery in a batch failed"
            );
            None
        }
    }
}

fn github_push(push: github::PushEvent) -> triggers::Push {
    triggers::Push {
        git_ref: push.git_ref,
        before: Some(push.before),
        after: push.after,
        deleted: push.deleted,
        head_commit_message: push.head_commit_message,
        head_commit_author: push.head_commit_author,
        trigger: "webhook",
    }
}

async fn on_github_event(db: &Database, triggers: &Triggers, event: GitHubEvent) -> anyhow::Result<Outcome> {
    match event {
        GitHubEvent::Ping => Ok(Outcome::ignored("pong")),
        GitHubEvent::Other { event, action } => Ok(Outcome::ignored(match action {
            Some(action) => format!("`{event}` events with action `{action}` are accepted and not acted on"),
            None => format!("`{event}` events are accepted and not acted on"),
        })),
        GitHubEvent::Push(push) => {
            let sites = sites_of(db, &push.repository, push.installation_id).await?;
            if sites.is_empty() {
                return Ok(no_site(&push.repository));
            }
            triggers::on_push(triggers, &sites, &github_push(push)).await
        }
        GitHubEvent::PullRequest(pr) => {
            let sites = sites_of(db, &pr.repository, pr.installation_id).await?;
            if sites.is_empty() {
                return Ok(no_site(&pr.repository));
            }
            match pr.action {
                PullRequestAction::Closed => {
                    triggers::on_pull_request_closed(triggers, &sites, pr.number).await
                }
                PullRequestAction::Opened | PullRequestAction::Synchronize | PullRequestAction::Reopened => {
                    let request = triggers::PullRequest {
                        number: pr.number,
                        head_ref: pr.head_ref,
                        head_sha: pr.head_sha,
                        from_fork: pr.from_fork,
                        author: pr.author,
                        title: pr.title,
                    };
                    triggers::on_pull_request(triggers, &sites, &request).await
                }
            }
        }
        GitHubEvent::Installation(installation) => {
            let id = installation.installation_id;
            let message = match installation.action {
                InstallationAction::Deleted => {
                    db.delete_installation(id).await?;
                    format!("installation {id} removed")
                }
                InstallationAction::Suspend | InstallationAction::Unsuspend => {
                    let suspended = installation.action == InstallationAction::Suspend;
                    db.upsert_installation(id, &installation.account).await?;
                    db.set_installation_suspended(id, suspended).await?;
                    format!(
                        "installation {id} {}",
                        if suspended { "suspended" } else { "unsuspended" }
                    )
                }
                InstallationAction::Created | InstallationAction::NewPermissionsAccepted => {
                    db.upsert_installation(id, &installation.account).await?;
                    if installation.action == InstallationAction::Created {
                        db.update_installation_repos(id, &installation.repositories, &[], true)
                            .await?;
                    }
                    format!(
                        "installation {id} of {} reaches {} repositories",
                        installation.account,
                        installation.repositories.len()
                    )
                }
            };
            Ok(Outcome {
                outcome: "recorded",
                builds: Vec::new(),
                message,
            })
        }
        GitHubEvent::InstallationRepositories(change) => {
            let id = change.installation_id;
            db.upsert_installation(id, &change.account).await?;
            db.update_installation_repos(id, &change.added, &change.removed, false)
                .await?;
            Ok(Outcome {
                outcome: "recorded",
                builds: Vec::new(),
                message: format!(
                    "installation {id}: {} repositories added, {} removed",
                    change.added.len(),
                    change.removed.len()
                ),
            })
        }
    }
}

/// Sites connected to a repository; notes the installation a delivery came
/// through, so the App can reach the repository without waiting for an
/// installation event.
async fn sites_of(
    db: &Database,
    repository: &str,
    installation: Option<i64>,
) -> anyhow::Result<Vec<crate::db::Site>> {
    if let Some(installation) = installation {
        db.note_installation_repo(installation, repository).await?;
    }
    db.sites_for_github_repo(repository).await
}

/// The body of a generic webhook: one ref update, as a `post-receive` hook
/// sees it. Unknown fields are ignored, so senders can add their own.
#[derive(Debug, Deserialize)]
pub struct GenericPush {
    /// `refs/heads/<branch>`, or just the branch name.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit the ref pointed at before the push (all zeros for a new
    /// branch). Optional; with it, a push of an old commit replayed later
    /// is told apart from a revert, and two updates of a ref to the same
    /// commit send different bodies.
    pub before: Option<String>,
    /// The commit the ref points at now (`after` or `commit`); all zeros
    /// when the ref was deleted; absent to build the branch's head.
    #[serde(alias = "commit")]
    pub after: Option<String>,
    #[serde(default)]
    pub deleted: bool,
    /// The head commit's message, for `[skip ci]` and the build list.
    pub message: Option<String>,
    pub author: Option<String>,
}

#[tracing::instrument(name = "webhook", skip_all, fields(source = "generic", site = %site_name))]
pub async fn generic(
    State(db): State<Database>,
    State(audit): State<AuditLog>,
    State(config): State<Arc<Config>>,
    State(secrets): State<Arc<SecretBox>>,
    State(triggers): State<Triggers>,
    Path(site_name): Path<String>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let mut delivery = NewDelivery {
        source: "generic",
        delivery_id: header(&headers, GENERIC_DELIVERY_HEADER).map(|id| clip(id).to_owned()),
        event: "push".to_owned(),
        action: None,
        repository: Some(clip(&site_name).to_owned()),
        body_sha256: None,
    };
    if let Err(e) = signature::parse(header(&headers, GENERIC_SIGNATURE_HEADER)) {
        let error = crate::error::unauthorized(generic_signature_message(&e));
        return refuse(&db, &delivery, error).await;
    }
    let site = match db.site_by_name(&site_name).await {
        Ok(Some(site)) => site,
        Ok(None) => {
            let error = crate::error::not_found(format!("no site named `{site_name}`"));
            return refuse(&db, &delivery, error).await;
        }
        Err(e) => return AppError::from(e).into_response(),
    };
    let Some(sealed) = &site.generic_webhook_secret_sealed else {
        let error = crate::error::not_found(format!(
            "site `{site_name}` has no generic webhook; make its secret with POST /api/v1/sites/{site_name}/generic-webhook"
        ));
        return refuse(&db, &delivery, error).await;
    };
    let secret = match secrets.open(&crate::secrets::generic_webhook_purpose(&site.name), sealed) {
        Ok(secret) => secret,
        Err(e) => return AppError::from(anyhow::Error::from(e)).into_response(),
    };
    let body = match read_body(&config, request).await {
        Ok(body) => body,
        Err(error) => return refuse(&db, &delivery, error).await,
    };
    let checked = signature::verify(
        secret.as_bytes(),
        header(&headers, GENERIC_SIGNATURE_HEADER),
        &body,
    )
    .map_err(|e| Refusal::Unauthenticated(crate::error::unauthorized(generic_signature_message(&e))));
    if checked.is_ok() {
        // Bodies are per site (each has its own secret): the site is part
        // of what a body is recognised by.
        delivery.body_sha256 = Some(body_digest(&[site.name.as_bytes(), b"\n", &body].concat()));
    }
    receive(&db, &audit, delivery, checked, || async {
        let push = read_generic_push(&body).map_err(|e| Refusal::Invalid(crate::error::bad_request(e)))?;
        Ok(triggers::on_push(&triggers, std::slice::from_ref(&site), &push).await?)
    })
    .await
}

fn generic_signature_message(error: &SignatureError) -> String {
    let header = "X-Jamstack-Signature-256";
    match error {
        SignatureError::Missing => format!(
            "missing {header} header; sign the body with the site's generic webhook secret \
             (scripts/post-receive does)"
        ),
        SignatureError::Malformed => format!("{header} must look like `sha256=<64 hex digits>`"),
        SignatureError::Mismatch => format!(
            "{header} does not match the body; check the secret the sender uses \
             against the site's generic webhook secret"
        ),
    }
}

/// Reads a generic webhook's signed body as a ref update, or says what is
/// wrong with it. The body is outside input: whoever holds the site's
/// secret writes it.
pub fn read_generic_push(body: &[u8]) -> Result<triggers::Push, String> {
    let push: GenericPush = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not a generic push: {e}; send JSON like {{\"ref\": \"refs/heads/main\", \"after\": \"<40-hex commit>\"}}"
        )
    })?;
    generic_push(push)
}

/// Checks a generic push and reads it as a ref update.
fn generic_push(push: GenericPush) -> Result<triggers::Push, String> {
    let git_ref = if push.git_ref.starts_with("refs/") {
        push.git_ref
    } else {
        format!("refs/heads/{}", push.git_ref)
    };
    let after = push.after.unwrap_or_default().to_ascii_lowercase();
    let deleted = push.deleted || (!after.is_empty() && after.bytes().all(|b| b == b'0'));
    if !deleted && !after.is_empty() && !jamstack_proto::is_full_commit_sha(&after) {
        return Err(format!(
            "`after` is `{after}`, not a full 40-hex commit id; send the new revision as git gives it"
        ));
    }
    let before = push.before.map(|b| b.to_ascii_lowercase());
    if let Some(before) = &before
        && !jamstack_proto::is_full_commit_sha(before)
    {
        return Err(format!(
            "`before` is `{before}`, not a full 40-hex commit id; send the old revision as git gives it"
        ));
    }
    Ok(triggers::Push {
        git_ref,
        before,
        after: if deleted { String::new() } else { after },
        deleted,
        head_commit_message: push.message,
        head_commit_author: push.author,
        trigger: "generic-webhook",
    })
}

/// Forgets old deliveries now and then, forever.
pub async fn prune_deliveries(db: crate::db::Database) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let before = crate::db::now_millis() - DELIVERY_RETENTION.as_millis() as i64;
        match db.prune_deliveries(before, REFUSED_DELIVERIES_KEPT).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "old webhook deliveries forgotten"),
            Err(e) => tracing::error!(error = format!("{e:#}"), "pruning webhook deliveries"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(git_ref: &str, after: Option<&str>) -> GenericPush {
        GenericPush {
            git_ref: git_ref.into(),
            before: None,
            after: after.map(str::to_owned),
            deleted: false,
            message: None,
            author: None,
        }
    }

    #[test]
    fn a_generic_push_names_a_branch_by_ref_or_by_name() {
        let sha = "A".repeat(40);
        let full = generic_push(push("refs/heads/main", Some(&sha))).unwrap();
        assert_eq!(full.git_ref, "refs/heads/main");
        assert_eq!(full.after, "a".repeat(40));
        assert_eq!(
            generic_push(push("main", None)).unwrap().git_ref,
            "refs/heads/main"
        );
    }

    #[test]
    fn a_generic_push_of_zeros_deletes_and_a_short_sha_is_refused() {
        let deleted = generic_push(push("feature", Some(&"0".repeat(40)))).unwrap();
        assert!(deleted.deleted);
        let err = generic_push(push("main", Some("abc123"))).unwrap_err();
        assert!(err.contains("abc123"), "{err}");
    }
}
