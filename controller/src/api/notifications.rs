//! A site's notification webhooks: `GET`/`POST
//! /api/v1/sites/{site}/notifications`, `DELETE …/notifications/{id}` and
//! the delivery log, `GET …/notifications/{id}/deliveries`. Sending lives
//! in `crate::notifications`.

use super::find_site;
use crate::auth::{CanManageSites, CanRead};
use crate::config::Config;
use crate::db::{Database, NotificationDelivery, NotificationHook};
use crate::error::{AppResult, bad_request, not_found};
use crate::notifications::{EVENTS, secret_purpose};
use crate::secrets::SecretBox;
use crate::secrets::random_hex;
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
    /// Where deliveries are POSTed: an http(s) URL.
    pub url: String,
    /// The events to send; every event when left out.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// The signing secret; the controller makes one (and answers it once)
    /// when left out.
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
    security(("token" = ["read"]))
)]
pub async fn list(
    State(db): State<Database>,
    _: CanRead,
    Path(site): Path<String>,
) -> AppResult<Json<Vec<NotificationHook>>> {
    let site = find_site(&db, &site).await?;
    Ok(Json(db.notification_hooks(site.id).await?))
}

/// Adds a notification hook; its secret is answered once when the
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
        (status = 400, description = "A bad URL, event or secret", body = ErrorBody),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["sites"]))
)]
pub async fn create(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    State(secrets): State<Arc<SecretBox>>,
    _: CanManageSites,
    Path(site): Path<String>,
    Json(body): Json<NewHook>,
) -> AppResult<(StatusCode, Json<CreatedHook>)> {
    let site = find_site(&db, &site).await?;
    let url = body.url.trim();
    let parsed = url::Url::parse(url).ok();
    if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
        return Err(bad_request(format!(
            "`url`: `{url}` is not an http(s) address; give the receiver's URL, e.g. https://hooks.example.com/deploys"
        )));
    }
    let allowed = config.notifications.allow_private_targets;
    if let Some(refusal) = crate::notifications::targets::refusal(url, allowed) {
        return Err(bad_request(format!("`url`: {refusal}")));
    }
    let events = match body.events {
        None => EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        Some(events) if events.is_empty() => {
            return Err(bad_request(format!(
                "`events` is empty; name some of {} or leave it out for all",
                EVENTS.join(", ")
            )));
        }
        Some(mut events) => {
            if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err(bad_request(format!(
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
            return Err(bad_request(
                "`secret` must be 16 to 256 characters; or leave it out and the controller makes one",
            ));
        }
        Some(secret) => (secret, false),
        None => (random_hex(32), true),
    };
    let sealed = secrets.seal(&secret_purpose(&site.name), &secret);
    let hook = db
        .insert_notification_hook(site.id, url, &events, &sealed)
        .await?;
    tracing::info!(site = %site.name, hook = hook.id, url, "notification hook added");
    Ok((
        StatusCode::CREATED,
        Json(CreatedHook {
            hook,
            secret: made.then_some(secret),
        }),
    ))
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
    security(("token" = ["sites"]))
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
    security(("token" = ["read"]))
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
