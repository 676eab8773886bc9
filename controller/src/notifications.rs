//! Outgoing notifications: signed webhooks a site's owners point at their
//! monitoring or scripts, messages to their chat (Slack-compatible incoming
//! webhooks) and e-mails, sent on build and deploy events.
//!
//! An event becomes one row per interested hook in the outbox
//! (`db::notifications`), then [`run`] claims due rows and sends them. A
//! receiver that fails or times out is tried again with exponential backoff
//! (`Config::notifications`); every row keeps its attempts, last status and
//! error, which is the delivery log the API shows. A restart loses nothing
//! (rows wait in the database) and, with several controllers on one
//! PostgreSQL database, each attempt is sent by one of them.
//!
//! Build events come from [`crate::events`] ([`queue_build_events`]); deploy
//! events are queued where publishing, locking and rolling back happen
//! ([`deploy_changed`]).
//!
//! Every kind of hook shares the outbox, its retries and its delivery log;
//! they differ only in [`send`]: a webhook gets the stored JSON, a chat or
//! an e-mail a message made from it ([`message`]) when it is sent.
//!
//! A webhook's request is signed: `X-Jamstack-Signature: t=<unix seconds>,v1=<hex>`
//! where `<hex>` is HMAC-SHA256 with the hook's secret over
//! `<unix seconds>.<body>`. Receivers recompute it, compare in constant time
//! and refuse old timestamps (replays). `X-Jamstack-Delivery` is the same on
//! every attempt of a delivery, so receivers can drop repeats.

pub mod email;
pub mod message;
pub mod targets;

use crate::config::Config;
use crate::db::Database;
use crate::db::{AttemptResult, BuildState, DueDelivery, NotificationKind};
use crate::events::BuildTiming;
use crate::events::Events;
use crate::secrets::random_hex;
use crate::urls::Urls;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Notifications as a service: the outbox in the database, the waiter to
/// wake when a delivery is queued, and what payloads link to.
#[derive(Clone)]
pub struct Notifications {
    pub db: Database,
    pub config: Arc<Config>,
    pub urls: Urls,
    /// Build state changes, turned into notifications.
    pub events: Events,
    /// Woken when a notification delivery is queued, so it goes out at once.
    pub queued: Arc<Notify>,
    /// Opens the sealed secrets stored with sites.
    pub secrets: Arc<crate::secrets::SecretBox>,
    /// The operator's SMTP server, when one is configured (`--smtp-url`).
    pub mailer: Option<email::Mailer>,
}

pub const SIGNATURE_HEADER: &str = "X-Jamstack-Signature";
pub const DELIVERY_HEADER: &str = "X-Jamstack-Delivery";
pub const EVENT_HEADER: &str = "X-Jamstack-Event";

/// How long finished deliveries stay in a hook's log.
const KEEP_DELIVERIES: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often old deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Every event a hook can ask for.
pub const EVENTS: &[&str] = &[
    "build.started",
    "build.succeeded",
    "build.failed",
    "deploy.published",
    "deploy.locked",
    "deploy.unlocked",
    "deploy.rolled_back",
    "certificate.failed",
    AUDIT_EVENT,
];

/// An entry written to the audit log about the site: who did what, to
/// what, when. Only owners of the site's team may subscribe a hook to it,
/// and only by naming it (a hook made without `events` does not get it).
pub const AUDIT_EVENT: &str = "audit";

/// The events a hook made without naming any subscribes to: all but
/// [`AUDIT_EVENT`], which its team's owners must ask for.
pub fn default_events() -> Vec<String> {
    EVENTS
        .iter()
        .filter(|event| **event != AUDIT_EVENT)
        .map(|event| (*event).to_owned())
        .collect()
}

/// A change to what a site serves, for [`deploy_changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployChange {
    /// A deploy went live: a production build finished, or one was
    /// published by hand that is newer than the one it replaced.
    Published,
    /// An older deploy was published by hand.
    RolledBack,
    Locked,
    Unlocked,
}

impl DeployChange {
    pub fn event(self) -> &'static str {
        match self {
            DeployChange::Published => "deploy.published",
            DeployChange::RolledBack => "deploy.rolled_back",
            DeployChange::Locked => "deploy.locked",
            DeployChange::Unlocked => "deploy.unlocked",
        }
    }
}

/// The change a lock (`true`) or unlock makes.
pub fn lock_change(locked: bool) -> DeployChange {
    if locked {
        DeployChange::Locked
    } else {
        DeployChange::Unlocked
    }
}

/// The purpose a hook's secret is sealed under.
pub fn secret_purpose(site: &str) -> String {
    format!("site/{site}/notification-secret")
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Queues `event` for the site's hooks that want it and wakes the sender.
/// A failure is logged, never passed on: notifying never fails what it
/// reports.
async fn queue(state: &Notifications, site_id: i64, event: &str, payload: serde_json::Value) {
    let body = serde_json::json!({
        "event": event,
        "occurred_at": crate::db::now_millis(),
        "data": payload,
    })
    .to_string();
    match state
        .db
        .queue_notifications(site_id, event, &body, || random_hex(16))
        .await
    {
        Ok(0) => {}
        Ok(queued) => {
            tracing::debug!(site_id, event, queued, "notifications queued");
            state.queued.notify_one();
        }
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                site_id,
                event,
                "queueing notifications failed"
            )
        }
    }
}

/// Queues the notification of a publish, rollback, lock or unlock.
pub async fn deploy_changed(
    state: &Notifications,
    site_id: i64,
    change: DeployChange,
    deploy_id: Option<&str>,
) {
    // Most sites have no hook for most events: look before reading more.
    if let Ok(false) = state.db.site_wants_notification(site_id, change.event()).await {
        return;
    }
    let site = match state.db.site_by_id(site_id).await {
        Ok(Some(site)) => site,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                site_id,
                "reading a site to notify failed"
            );
            return;
        }
    };
    let mut deploy = deploy_id.map(|id| {
        serde_json::json!({
            "id": id,
            "permalink": state.urls.site_url(&format!("{id}--{}", site.name)),
        })
    });
    if let Some(deploy) = deploy.as_mut() {
        add_commit_of_deploy(state, deploy).await;
    }
    let payload = serde_json::json!({
        "site": { "id": site.id, "name": site.name, "url": state.urls.site_url(&site.name) },
        "deploy": deploy,
        "locked": site.publish_locked,
    });
    queue(state, site_id, change.event(), payload).await;
}

/// Queues [`AUDIT_EVENT`] for the hooks of the entry's site that asked for
/// it. The payload says who, what, on which path, with what answer and
/// when; the entry never holds a request body, so no variable's value.
pub async fn audit_recorded(state: &Notifications, entry: &crate::db::NewAuditEntry) {
    let Some(name) = entry.site.as_deref() else {
        return;
    };
    let site = match state.db.site_by_name(name).await {
        Ok(Some(site)) => site,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                site = name,
                "reading a site to notify failed"
            );
            return;
        }
    };
    if let Ok(false) = state.db.site_wants_notification(site.id, AUDIT_EVENT).await {
        return;
    }
    let payload = audit_payload(state, site.id, &site.name, entry);
    queue(state, site.id, AUDIT_EVENT, payload).await;
}

/// [`audit_recorded`] for many entries, each with the id of its site: one
/// read finds which of their sites hear the audit log.
pub async fn audits_recorded(state: &Notifications, entries: &[(i64, &crate::db::NewAuditEntry)]) {
    let mut site_ids: Vec<i64> = entries.iter().map(|(site_id, _)| *site_id).collect();
    site_ids.sort_unstable();
    site_ids.dedup();
    let wanting = match state.db.sites_wanting_notification(&site_ids, AUDIT_EVENT).await {
        Ok(wanting) => wanting,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "reading which sites hear the audit log failed"
            );
            return;
        }
    };
    for (site_id, entry) in entries {
        let Some(name) = entry.site.as_deref().filter(|_| wanting.contains(site_id)) else {
            continue;
        };
        queue(
            state,
            *site_id,
            AUDIT_EVENT,
            audit_payload(state, *site_id, name, entry),
        )
        .await;
    }
}

/// What a hook hears of an audit entry about site `site_id`, `name`.
fn audit_payload(
    state: &Notifications,
    site_id: i64,
    name: &str,
    entry: &crate::db::NewAuditEntry,
) -> serde_json::Value {
    serde_json::json!({
        "site": { "id": site_id, "name": name, "url": state.urls.site_url(name) },
        "audit": {
            "actor": entry.actor,
            "action": entry.action,
            "target": entry.target,
            "team_id": entry.team_id,
            "status": entry.status,
            "at": crate::db::now_millis(),
        },
    })
}

/// Why an order for a certificate failed, as a notification tells it.
#[derive(Debug, Clone, Copy)]
pub struct CertificateFailure<'a> {
    /// The ACME problem type, or `client`.
    pub problem_type: &'a str,
    pub detail: &'a str,
    /// What to do about it.
    pub advice: &'a str,
}

/// Queues `certificate.failed` for the site's hooks: renewing the
/// certificate of `hostname` (one of the site's names) failed. The payload
/// carries the ACME server's reason, what to do, when the certificate
/// still served expires and when the next try is.
pub async fn certificate_failed(
    state: &Notifications,
    site_id: i64,
    order: &crate::db::AcmeOrder,
    failure: &CertificateFailure<'_>,
) {
    let event = "certificate.failed";
    if let Ok(false) = state.db.site_wants_notification(site_id, event).await {
        return;
    }
    let Ok(Some(site)) = state.db.site_by_id(site_id).await else {
        return;
    };
    let payload = serde_json::json!({
        "site": { "id": site.id, "name": site.name, "url": state.urls.site_url(&site.name) },
        "certificate": {
            "hostname": order.hostname,
            "problem_type": failure.problem_type,
            "detail": failure.detail,
            "advice": failure.advice,
            "not_after": order.not_after,
            "attempts": order.attempts,
            "next_attempt_at": order.next_attempt_at,
        },
    });
    queue(state, site_id, event, payload).await;
}

/// Adds what a chat message or an e-mail says of a deploy to its payload:
/// its context, branch and commit, and the commit's message when a build
/// made it. Read only when some hook of the site will be sent it; a read
/// that fails leaves the facts out.
async fn add_commit_of_deploy(state: &Notifications, payload: &mut serde_json::Value) {
    let Some(id) = payload["id"].as_str().map(str::to_owned) else {
        return;
    };
    let Ok(Some(deploy)) = state.db.deploy(&id).await else {
        return;
    };
    let commit_message = match deploy.build_id {
        Some(build_id) => state
            .db
            .build(build_id)
            .await
            .ok()
            .flatten()
            .and_then(|build| build.commit_message),
        None => deploy.title.clone(),
    };
    payload["context"] = deploy.context.into();
    payload["branch"] = deploy.branch.into();
    payload["pr_number"] = deploy.pr_number.into();
    payload["commit_sha"] = deploy.commit_sha.into();
    payload["commit_message"] = commit_message.into();
}

/// What a publish by hand is: a rollback when the deploy is older than the
/// one it replaced.
pub async fn change_of_publish(
    state: &Notifications,
    previously_published: Option<&str>,
    deploy: &crate::db::Deploy,
) -> DeployChange {
    let Some(previous) = previously_published.filter(|id| *id != deploy.id) else {
        return DeployChange::Published;
    };
    match state.db.deploy(previous).await {
        Ok(Some(previous)) if previous.created_at > deploy.created_at => DeployChange::RolledBack,
        _ => DeployChange::Published,
    }
}

/// Turns this controller's build events into notifications: started (first
/// lease), succeeded, failed.
pub async fn queue_build_events(state: Notifications) {
    let mut changes = state.events.build_changes();
    while let Some(change) = changes.next().await {
        let build_id = change.build_id;
        let event = match change.state {
            BuildState::Running => "build.started",
            BuildState::Succeeded => "build.succeeded",
            BuildState::Failed => "build.failed",
            _ => continue,
        };
        if let Some(BuildTiming::Started { attempt, .. }) = change.timing
            && attempt > 1
        {
            // Leased again after its runner was lost: it started already.
            continue;
        }
        // Most sites have no hook for most events: look before reading the build.
        match state.db.site_wants_notification(change.site_id, event).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    site_id = change.site_id,
                    "reading a site's notification hooks failed"
                );
                continue;
            }
        }
        let build = match state.db.build(build_id).await {
            Ok(Some(build)) => build,
            Ok(None) => continue,
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    build_id,
                    "reading a build to notify failed"
                );
                continue;
            }
        };
        // A build leased again after its runner was lost started already.
        if change.state == BuildState::Running && build.attempts > 1 {
            continue;
        }
        let url = format!("{}/builds/{}", state.urls.public_url, build.id);
        let mut build_json = serde_json::to_value(&build).unwrap_or_default();
        if let Some(fields) = build_json.as_object_mut() {
            fields.insert("url".to_owned(), url.into());
        }
        let deploy = build.deploy_id.as_ref().map(|id| {
            serde_json::json!({
                "id": id,
                "permalink": state.urls.site_url(&format!("{id}--{}", build.site)),
            })
        });
        let payload = serde_json::json!({
            "site": { "id": build.site_id, "name": build.site, "url": state.urls.site_url(&build.site) },
            "build": build_json,
            "deploy": deploy,
        });
        queue(&state, build.site_id, event, payload).await;
    }
}

/// The outbox sender, beside the server (with [`queue_build_events`]):
/// claims due deliveries and sends
/// them, waking when one is queued here and looking every few seconds for
/// those queued by other controllers or due for a retry.
pub async fn run(state: Notifications) {
    let settings = state.config.notifications;
    let mut client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("jamstack-notifications/", env!("CARGO_PKG_VERSION")));
    if !settings.allow_private_targets {
        client = client.dns_resolver(std::sync::Arc::new(targets::PublicOnly));
    }
    let client = match client.build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %error, "notifications cannot be sent: no HTTP client");
            return;
        }
    };
    // A claim outlives the slowest attempt, so nobody else sends it meanwhile.
    let claim_millis = (settings.timeout.as_millis() as i64) * 2 + 5_000;
    const BATCH: i64 = 16;
    let mut next_prune = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_prune {
            next_prune += PRUNE_EVERY;
            let before = crate::db::now_millis() - KEEP_DELIVERIES.as_millis() as i64;
            if let Err(error) = state.db.prune_notification_deliveries(before).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "pruning the notification log failed"
                );
            }
        }
        let woken = state.queued.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let claimed = match state.db.claim_due_notifications(BATCH, claim_millis).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "claiming notification deliveries failed"
                );
                Vec::new()
            }
        };
        let full = claimed.len() as i64 == BATCH;
        futures_util::future::join_all(claimed.into_iter().map(|due| deliver(&state, &client, due))).await;
        if full {
            continue;
        }
        let wait = match state.db.next_notification_due().await {
            Ok(Some(due)) => Duration::from_millis((due - crate::db::now_millis()).max(0) as u64),
            _ => Duration::from_secs(5),
        }
        .min(Duration::from_secs(5));
        let _ = tokio::time::timeout(wait, woken).await;
    }
}

async fn deliver(state: &Notifications, client: &reqwest::Client, due: DueDelivery) {
    let attempt = due.attempts + 1;
    let result = match send(state, client, &due).await {
        Ok(status) if (200..300).contains(&status) => AttemptResult::Delivered { status },
        outcome => {
            let (status, error) = match outcome {
                Ok(status) => (
                    Some(status),
                    format!("the receiver answered {status}; a 2xx answer is needed"),
                ),
                Err(error) => (None, error),
            };
            let retry = state.config.notifications.retry;
            let retry_at = (attempt < i64::from(retry.attempts))
                .then(|| crate::db::now_millis() + retry.delay(attempt as u32).as_millis() as i64);
            tracing::warn!(
                delivery = %due.delivery_id,
                event = %due.event,
                attempt,
                error = %error,
                retrying = retry_at.is_some(),
                "notification not delivered"
            );
            AttemptResult::Failed {
                status,
                error,
                retry_at,
            }
        }
    };
    if let AttemptResult::Delivered { .. } = result {
        tracing::info!(delivery = %due.delivery_id, event = %due.event, attempt, "notification delivered");
    }
    if let Err(error) = state.db.record_notification_attempt(due.id, &result).await {
        tracing::error!(error = format!("{error:#}"), delivery = %due.delivery_id, "recording a notification attempt failed");
    }
}

/// One attempt: the receiver's status (an HTTP status, or the SMTP
/// server's reply code), or why there was none.
async fn send(state: &Notifications, client: &reqwest::Client, due: &DueDelivery) -> Result<i64, String> {
    let kind = due
        .kind
        .ok_or("the hook is of a kind this controller does not know; upgrade it, or recreate the hook")?;
    if kind == NotificationKind::Email {
        return send_email(state, due).await;
    }
    let site = state
        .db
        .site_by_id(due.site_id)
        .await
        .map_err(|e| format!("reading the site failed: {e:#}"))?
        .ok_or("the site was removed")?;
    // A webhook's signing secret, or a chat hook's whole URL.
    let opened = state
        .secrets
        .open(&secret_purpose(&site.name), &due.secret_sealed)
        .map_err(|e| {
            format!(
                "the hook's sealed secret cannot be opened ({e}); controllers sharing a database must \
                 share the secret key file, or recreate the hook"
            )
        })?;
    let (url, body, secret) = match kind {
        NotificationKind::Slack => {
            let facts = message_facts(due)?;
            (opened, message::slack_message(&facts).to_string(), None)
        }
        _ => (due.url.clone(), due.payload.clone(), Some(opened)),
    };
    // A hook made while private addresses were allowed may name one.
    if let Some(refusal) = targets::refusal(&url, state.config.notifications.allow_private_targets) {
        return Err(refusal);
    }
    post(state, client, due, &url, body, secret.as_deref()).await
}

/// The facts a message tells, from the delivery's stored payload.
fn message_facts(due: &DueDelivery) -> Result<message::Facts, String> {
    let payload: serde_json::Value = serde_json::from_str(&due.payload)
        .map_err(|e| format!("the stored payload is not JSON ({e}); this delivery cannot be sent"))?;
    Ok(message::facts(&due.event, &payload))
}

/// An e-mail of the event to the hook's addresses.
async fn send_email(state: &Notifications, due: &DueDelivery) -> Result<i64, String> {
    let mailer = state.mailer.as_ref().ok_or(
        "this controller has no SMTP server; start it with --smtp-url and --smtp-from (controllers \
         sharing a database need the same settings)",
    )?;
    let facts = message_facts(due)?;
    mailer
        .send(
            &due.emails,
            &message::email_subject(&facts),
            message::email_text(&facts),
            message::email_html(&facts),
        )
        .await
}

/// POSTs `body` as JSON to the hook's URL, signed when the hook has a
/// `secret`, with the delivery's id and event as headers.
async fn post(
    state: &Notifications,
    client: &reqwest::Client,
    due: &DueDelivery,
    url: &str,
    body: String,
    secret: Option<&str>,
) -> Result<i64, String> {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, &due.delivery_id)
        .header(EVENT_HEADER, &due.event);
    if let Some(secret) = secret {
        let timestamp = crate::db::now_millis() / 1000;
        request = request.header(SIGNATURE_HEADER, signature(secret, timestamp, body.as_bytes()));
    }
    let response = request.body(body).send().await.map_err(|e| {
        if e.is_timeout() {
            format!(
                "the receiver did not answer within {:?}",
                state.config.notifications.timeout
            )
        } else {
            // A chat URL is its own credential: the log names its host only.
            let shown = match due.kind {
                Some(NotificationKind::Webhook) => url.to_owned(),
                _ => crate::db::host_only(url),
            };
            format!("calling {shown} failed: {}", with_causes(&e.without_url()))
        }
    })?;
    Ok(i64::from(response.status().as_u16()))
}

/// An error and what caused it, `: `-separated (a refused connection says
/// so, not only "error sending request").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let signed = signature("secret", 1_700_000_000, b"{}");
        assert!(signed.starts_with("t=1700000000,v1="), "{signed}");
        assert_eq!(signed.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(signed, signature("secret", 1_700_000_001, b"{}"));
        assert_ne!(signed, signature("secret", 1_700_000_000, b"{ }"));
        assert_ne!(signed, signature("other", 1_700_000_000, b"{}"));
    }
}
