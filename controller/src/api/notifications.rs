//! A site's notification hooks (signed webhooks, Slack-compatible chat
//! webhooks, e-mail): `GET`/`POST
//! /api/v1/sites/{site}/notifications`, `DELETE …/notifications/{id}` and
//! the delivery log, `GET …/notifications/{id}/deliveries`. Sending lives
//! in `crate::notifications`.

use super::find_site;
use crate::auth::{Auth, CanManageSites, CanRead, Permission, Principal, Resource, check_permission};
use crate::config::Config;
use crate::db::{
    Database, NewNotificationHook, NotificationDelivery, NotificationHook, NotificationKind, Site,
};
use crate::error::{AppResult, bad_request, forbidden, not_found};
use crate::notifications::{AUDIT_EVENT, EVENTS, secret_purpose};
use crate::secrets::SecretBox;
use crate::secrets::random_hex;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The deliveries the log shows, newest first.
const DELIVERY_LOG_LENGTH: i64 = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    /// `webhook` (signed JSON, the default), `slack` (a message in the
    /// shape of Slack's incoming webhooks: Slack, Mattermost, Rocket.Chat,
    /// Discord's `/slack` URL) or `email` (needs the controller's
    /// `--smtp-url`).
    #[serde(default)]
    pub kind: Option<NotificationKind>,
    /// Where a webhook or chat message is POSTed: an http(s) URL. Not for
    /// e-mail.
    #[serde(default)]
    pub url: Option<String>,
    /// Who an e-mail hook writes to: 1 to 20 addresses. Only for e-mail.
    #[serde(default)]
    pub emails: Option<Vec<String>>,
    /// The events to send; every event when left out.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// A webhook's signing secret; the controller makes one (and answers it
    /// once) when left out. Only for webhooks.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedHook {
    #[serde(flatten)]
    pub hook: NotificationHook,
    /// The secret the controller made: shown only in this answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The site's notification hooks (their secrets stay sealed).
#[utoipa::path(
    get,
    operation_id = "list_notification_hooks",
    path = "/api/v1/sites/{site}/notifications",
    tag = "notifications",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The site's hooks", body = Vec<NotificationHook>),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list(
    State(db): State<Database>,
    _: CanRead,
    Path(site): Path<String>,
) -> AppResult<Json<Vec<NotificationHook>>> {
    let site = find_site(&db, &site).await?;
    Ok(Json(db.notification_hooks(site.id).await?))
}

/// Adds a notification hook: a signed webhook, a Slack-compatible chat
/// webhook or e-mail; a webhook's secret is answered once when the
/// controller made it.
#[utoipa::path(
    post,
    operation_id = "create_notification_hook",
    path = "/api/v1/sites/{site}/notifications",
    tag = "notifications",
    params(("site" = String, Path, description = "The site's name")),
    request_body = NewHook,
    responses(
        (status = 201, description = "The hook (and the secret, when the controller made it)", body = CreatedHook),
        (status = 400, description = "A bad kind, URL, address, event or secret, or e-mail without an SMTP server", body = ErrorBody),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn create(
    State(config): State<Arc<Config>>,
    State(secrets): State<Arc<SecretBox>>,
    State(auth): State<Auth>,
    principal: Option<Extension<Principal>>,
    _: CanManageSites,
    Path(site): Path<String>,
    Json(body): Json<NewHook>,
) -> AppResult<(StatusCode, Json<CreatedHook>)> {
    let db = auth.db.clone();
    let site = find_site(&db, &site).await?;
    // The audit log is its team's owners' to read: so is a hook sent it.
    let wants_audit = body
        .events
        .as_ref()
        .is_some_and(|events| events.iter().any(|e| e == AUDIT_EVENT));
    if wants_audit {
        let principal = principal.map(|Extension(p)| p);
        check_permission(&auth, principal.as_ref(), Permission::TeamMembers, Resource::Site(&site.name))
            .await
            .map_err(|_| {
                forbidden(format!(
                    "only owners of the team of `{}` (and the admin token) may subscribe a hook to `{AUDIT_EVENT}`",
                    site.name
                ))
            })?;
    }
    let created = make_hook(&db, &config, &secrets, &site, body)
        .await
        .map_err(|error| match error {
            MakeError::Invalid(message) => bad_request(message),
            MakeError::Failed(e) => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Why a hook was not made.
#[derive(Debug)]
pub enum MakeError {
    /// What was asked for is wrong; the message says how.
    Invalid(String),
    Failed(anyhow::Error),
}

/// Checks and stores a new notification hook of `site` by the rules every
/// kind has; the dashboard's settings page makes them here too.
pub async fn make_hook(
    db: &Database,
    config: &Config,
    secrets: &SecretBox,
    site: &Site,
    body: NewHook,
) -> Result<CreatedHook, MakeError> {
    let kind = body.kind.unwrap_or(NotificationKind::Webhook);
    let (url, emails) = match kind {
        NotificationKind::Webhook | NotificationKind::Slack => {
            if body.emails.is_some() {
                return Err(MakeError::Invalid(format!(
                    "`emails` is for hooks of kind `email`; a `{}` hook sends to its `url`",
                    kind.as_str()
                )));
            }
            let url = body.url.as_deref().unwrap_or_default().trim().to_owned();
            check_target(&url, kind, config.notifications.allow_private_targets)
                .map_err(MakeError::Invalid)?;
            (url, Vec::new())
        }
        NotificationKind::Email => {
            if config.smtp.is_none() {
                return Err(MakeError::Invalid(
                    "this controller has no SMTP server, so it cannot send e-mail; its operator starts \
                     it with --smtp-url and --smtp-from (see docs/configuration.md)"
                        .into(),
                ));
            }
            if body.url.is_some() {
                return Err(MakeError::Invalid(
                    "`url` is not for hooks of kind `email`; name the addresses in `emails`".into(),
                ));
            }
            let emails = crate::notifications::email::recipients(&body.emails.unwrap_or_default())
                .map_err(MakeError::Invalid)?;
            (String::new(), emails)
        }
    };
    if kind != NotificationKind::Webhook && body.secret.is_some() {
        return Err(MakeError::Invalid(format!(
            "`secret` is for hooks of kind `webhook`; a `{}` hook is not signed",
            kind.as_str()
        )));
    }
    let events = match body.events {
        None => crate::notifications::default_events(),
        Some(events) if events.is_empty() => {
            return Err(MakeError::Invalid(format!(
                "`events` is empty; name some of {} or leave it out for all",
                EVENTS.join(", ")
            )));
        }
        Some(mut events) => {
            if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err(MakeError::Invalid(format!(
                    "`events`: unknown event `{unknown}`; the events are {}",
                    EVENTS.join(", ")
                )));
            }
            events.sort();
            events.dedup();
            events
        }
    };
    let (secret, made) = match body.secret {
        Some(secret) if secret.len() < 16 || secret.len() > 256 => {
            return Err(MakeError::Invalid(
                "`secret` must be 16 to 256 characters; or leave it out and the controller makes one".into(),
            ));
        }
        Some(secret) => (Some(secret), false),
        None if kind == NotificationKind::Webhook => (Some(random_hex(32)), true),
        None => (None, false),
    };
    // A chat URL is its own credential (whoever has it posts to the
    // channel): it is sealed as a webhook's secret is, and the row keeps
    // only its scheme and host, to show.
    let (stored_url, sealed) = match kind {
        NotificationKind::Slack => (
            crate::db::host_only(&url),
            secrets.seal(&secret_purpose(&site.name), &url),
        ),
        _ => (
            url.clone(),
            secret
                .as_deref()
                .map(|secret| secrets.seal(&secret_purpose(&site.name), secret))
                .unwrap_or_default(),
        ),
    };
    let hook = db
        .insert_notification_hook(
            site.id,
            NewNotificationHook {
                kind,
                url: &stored_url,
                emails: &emails,
                events: &events,
                secret_sealed: &sealed,
            },
        )
        .await
        .map_err(MakeError::Failed)?;
    // A chat URL is its own credential: the log shows what the API shows.
    tracing::info!(
        site = %site.name,
        hook = hook.id,
        kind = kind.as_str(),
        url = hook.shown_url.as_deref().unwrap_or_default(),
        recipients = emails.len(),
        "notification hook added"
    );
    Ok(CreatedHook {
        hook,
        secret: if made { secret } else { None },
    })
}

/// Refuses a webhook or chat URL that is not http(s), or that names a
/// private address the controller does not allow.
fn check_target(url: &str, kind: NotificationKind, allow_private: bool) -> Result<(), String> {
    let example = match kind {
        NotificationKind::Slack => "https://hooks.slack.com/services/T000/B000/XXXX",
        _ => "https://hooks.example.com/deploys",
    };
    if url.is_empty() {
        return Err(format!(
            "`url` is missing; a `{}` hook needs its receiver's URL, e.g. {example}",
            kind.as_str()
        ));
    }
    let parsed = url::Url::parse(url).ok();
    if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
        return Err(format!(
            "`url`: `{url}` is not an http(s) address; give the receiver's URL, e.g. {example}"
        ));
    }
    if let Some(refusal) = crate::notifications::targets::refusal(url, allow_private) {
        return Err(format!("`url`: {refusal}"));
    }
    Ok(())
}

/// Removes a notification hook and its pending deliveries.
#[utoipa::path(
    delete,
    operation_id = "delete_notification_hook",
    path = "/api/v1/sites/{site}/notifications/{id}",
    tag = "notifications",
    params(("site" = String, Path, description = "The site's name"), ("id" = i64, Path, description = "The hook's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn delete(
    State(db): State<Database>,
    _: CanManageSites,
    Path((site, id)): Path<(String, i64)>,
) -> AppResult<StatusCode> {
    let site = find_site(&db, &site).await?;
    if !db.delete_notification_hook(site.id, id).await? {
        return Err(no_hook(&site.name, id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A hook's latest deliveries, newest first.
#[utoipa::path(
    get,
    operation_id = "list_notification_deliveries",
    path = "/api/v1/sites/{site}/notifications/{id}/deliveries",
    tag = "notifications",
    params(("site" = String, Path, description = "The site's name"), ("id" = i64, Path, description = "The hook's id")),
    responses(
        (status = 200, description = "The hook's latest deliveries", body = Vec<NotificationDelivery>),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn deliveries(
    State(db): State<Database>,
    _: CanRead,
    Path((site, id)): Path<(String, i64)>,
) -> AppResult<Json<Vec<NotificationDelivery>>> {
    let site = find_site(&db, &site).await?;
    let hook = db
        .notification_hook(site.id, id)
        .await?
        .ok_or_else(|| no_hook(&site.name, id))?;
    Ok(Json(
        db.notification_deliveries(hook.id, DELIVERY_LOG_LENGTH).await?,
    ))
}

fn no_hook(site: &str, id: i64) -> crate::error::AppError {
    not_found(format!(
        "site `{site}` has no notification hook {id}; list them with GET /api/v1/sites/{site}/notifications"
    ))
}
