//! Notification hooks and the outbox of their deliveries.
//!
//! A delivery row is written when its event is handled and stays until it
//! is delivered or gives up; it is the delivery log the API shows. Sending
//! claims due rows by moving `claimed_until` forward: on SQLite inside one
//! `BEGIN IMMEDIATE` transaction, on PostgreSQL with `FOR UPDATE SKIP
//! LOCKED`, so two controllers never send the same attempt. A claim that
//! outlives its controller expires and the row is due again.

use super::{Backend, Database, now_millis};
use serde::Serialize;

/// How a hook tells its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// The event as JSON, signed with the hook's secret, POSTed to its URL.
    Webhook,
    /// A message in the shape of Slack's incoming webhooks (Slack,
    /// Mattermost, Rocket.Chat, Discord's `/slack` endpoint), POSTed to its URL.
    Slack,
    /// An e-mail to the hook's addresses through the controller's SMTP server.
    Email,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Webhook => "webhook",
            NotificationKind::Slack => "slack",
            NotificationKind::Email => "email",
        }
    }

    /// The kind stored as `text`; a kind this controller does not know
    /// (written by a newer one) is sent as nothing rather than misread.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "webhook" => Some(NotificationKind::Webhook),
            "slack" => Some(NotificationKind::Slack),
            "email" => Some(NotificationKind::Email),
            _ => None,
        }
    }
}

/// A site's notification hook. The secret stays sealed here, and a chat
/// URL, which is its own credential, is shown only by its host.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotificationHook {
    pub id: i64,
    pub site_id: i64,
    pub kind: NotificationKind,
    /// Where a webhook is POSTed; a Slack-compatible URL shows only its
    /// scheme and host (the rest is the credential); none for e-mail.
    #[serde(rename = "url", skip_serializing_if = "Option::is_none")]
    pub shown_url: Option<String>,
    /// The URL webhook deliveries go to; a chat hook's scheme and host only
    /// (its whole URL is sealed in `secret_sealed`); empty for e-mail.
    #[serde(skip)]
    pub url: String,
    /// The addresses an e-mail hook writes to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    pub events: Vec<String>,
    #[serde(skip)]
    pub secret_sealed: String,
    pub created_at: i64,
}

impl NotificationHook {
    pub fn subscribes_to(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

/// One delivery of one event to one hook, with how its attempts went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct NotificationDelivery {
    pub id: i64,
    pub hook_id: i64,
    /// Sent as `X-Jamstack-Delivery`; the same on every attempt.
    pub delivery_id: String,
    pub event: String,
    /// `pending`, `delivered` or `failed` (every attempt failed).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// The receiver's answer to the last attempt.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A claimed delivery, with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    /// `None`: a kind this controller does not know.
    pub kind: Option<NotificationKind>,
    pub emails: Vec<String>,
    pub delivery_id: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
    pub url: String,
    pub secret_sealed: String,
    pub site_id: i64,
}

/// A delivery as claiming it returns.
#[derive(sqlx::FromRow)]
struct ClaimedDelivery {
    id: i64,
    delivery_id: String,
    event: String,
    payload: String,
    attempts: i64,
    hook_id: i64,
}

/// Where a claimed delivery goes.
#[derive(sqlx::FromRow)]
struct HookTarget {
    kind: String,
    emails: String,
    url: String,
    secret_sealed: String,
    site_id: i64,
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Delivered {
        status: i64,
    },
    /// Try again at `retry_at` (Unix ms), or give up when `None`.
    Failed {
        status: Option<i64>,
        error: String,
        retry_at: Option<i64>,
    },
}

const HOOK_COLUMNS: &str = "id, site_id, kind, url, emails, events, secret_sealed, created_at";
const DELIVERY_COLUMNS: &str = "id, hook_id, delivery_id, event, state, attempts, next_attempt_at, \
     last_status, last_error, created_at, finished_at";

/// A row of `notification_hooks`: events joined by commas.
#[derive(sqlx::FromRow)]
struct HookRow {
    id: i64,
    site_id: i64,
    kind: String,
    url: String,
    emails: String,
    events: String,
    secret_sealed: String,
    created_at: i64,
}

impl From<HookRow> for NotificationHook {
    fn from(row: HookRow) -> Self {
        // A kind written by a newer controller is shown as the signed
        // webhook it most resembles; sending refuses it (`DueDelivery::kind`).
        let kind = NotificationKind::parse(&row.kind).unwrap_or(NotificationKind::Webhook);
        NotificationHook {
            id: row.id,
            site_id: row.site_id,
            kind,
            shown_url: match kind {
                NotificationKind::Webhook => Some(row.url.clone()),
                NotificationKind::Slack => Some(host_only(&row.url)),
                NotificationKind::Email => None,
            },
            url: row.url,
            emails: split_list(&row.emails),
            events: split_list(&row.events),
            secret_sealed: row.secret_sealed,
            created_at: row.created_at,
        }
    }
}

/// The items of a comma-separated column.
fn split_list(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `https://hooks.slack.com/…`: a chat URL without the path and query that
/// let anyone who has them post to the channel.
pub fn host_only(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}/…",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        ),
        Err(_) => "…".to_owned(),
    }
}

/// A hook to store: what kind, where it sends, what it sends.
#[derive(Debug, Clone)]
pub struct NewNotificationHook<'a> {
    pub kind: NotificationKind,
    /// Empty for e-mail.
    pub url: &'a str,
    pub emails: &'a [String],
    pub events: &'a [String],
    /// Empty for kinds that are not signed.
    pub secret_sealed: &'a str,
}

impl Database {
    pub async fn insert_notification_hook(
        &self,
        site_id: i64,
        hook: NewNotificationHook<'_>,
    ) -> anyhow::Result<NotificationHook> {
        let row: HookRow = sqlx::query_as(&format!(
            "INSERT INTO notification_hooks (site_id, kind, url, emails, events, secret_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {HOOK_COLUMNS}"
        ))
        .bind(site_id)
        .bind(hook.kind.as_str())
        .bind(hook.url)
        .bind(hook.emails.join(","))
        .bind(hook.events.join(","))
        .bind(hook.secret_sealed)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    /// Whether any hook of the site subscribes to `event`: one light read
    /// that spares listeners the build of a site nobody watches.
    pub async fn site_wants_notification(&self, site_id: i64, event: &str) -> anyhow::Result<bool> {
        Ok(self
            .notification_hooks(site_id)
            .await?
            .iter()
            .any(|hook| hook.subscribes_to(event)))
    }

    /// Of `site_ids`, those with a hook that subscribes to `event`, in one
    /// read.
    pub async fn sites_wanting_notification(
        &self,
        site_ids: &[i64],
        event: &str,
    ) -> anyhow::Result<std::collections::HashSet<i64>> {
        let mut wanting = std::collections::HashSet::new();
        for chunk in site_ids.chunks(500) {
            let sql = format!(
                "SELECT {HOOK_COLUMNS} FROM notification_hooks WHERE site_id IN ({})",
                super::placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query_as::<_, HookRow>(&sql);
            for site_id in chunk {
                query = query.bind(*site_id);
            }
            wanting.extend(
                query
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(NotificationHook::from)
                    .filter(|hook| hook.subscribes_to(event))
                    .map(|hook| hook.site_id),
            );
        }
        Ok(wanting)
    }

    pub async fn notification_hooks(&self, site_id: i64) -> anyhow::Result<Vec<NotificationHook>> {
        let rows: Vec<HookRow> = sqlx::query_as(&format!(
            "SELECT {HOOK_COLUMNS} FROM notification_hooks WHERE site_id = $1 ORDER BY id"
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(NotificationHook::from).collect())
    }

    pub async fn notification_hook(&self, site_id: i64, id: i64) -> anyhow::Result<Option<NotificationHook>> {
        let row: Option<HookRow> = sqlx::query_as(&format!(
            "SELECT {HOOK_COLUMNS} FROM notification_hooks WHERE site_id = $1 AND id = $2"
        ))
        .bind(site_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(NotificationHook::from))
    }

    /// Removes a hook and its delivery log; false when there was none.
    pub async fn delete_notification_hook(&self, site_id: i64, id: i64) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let found = sqlx::query("SELECT id FROM notification_hooks WHERE site_id = $1 AND id = $2")
            .bind(site_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if found {
            sqlx::query("DELETE FROM notification_deliveries WHERE hook_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM notification_hooks WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Puts one delivery of `event` with the JSON body `payload` in the
    /// outbox of every hook of the site that asked for it, due now, each
    /// under a fresh id from `new_id`. Returns how many were queued.
    pub async fn queue_notifications(
        &self,
        site_id: i64,
        event: &str,
        payload: &str,
        new_id: impl Fn() -> String,
    ) -> anyhow::Result<usize> {
        let hooks = self.notification_hooks(site_id).await?;
        let subscribed: Vec<&NotificationHook> = hooks.iter().filter(|h| h.subscribes_to(event)).collect();
        if subscribed.is_empty() {
            // Most events of most sites: no write transaction at all.
            return Ok(0);
        }
        let now = now_millis();
        let mut queued = 0;
        let mut tx = self.write_tx().await?;
        for hook in subscribed {
            sqlx::query(
                "INSERT INTO notification_deliveries \
                 (hook_id, delivery_id, event, payload, state, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
            )
            .bind(hook.id)
            .bind(new_id())
            .bind(event)
            .bind(payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            queued += 1;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Claims up to `limit` due deliveries for `claim_millis`: nobody else
    /// sends them meanwhile.
    pub async fn claim_due_notifications(
        &self,
        limit: i64,
        claim_millis: i64,
    ) -> anyhow::Result<Vec<DueDelivery>> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM notification_deliveries \
             WHERE state = 'pending' AND next_attempt_at <= $1 AND claimed_until <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2{}",
            if self.backend == Backend::Postgres {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            }
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut due = Vec::with_capacity(ids.len());
        for id in ids {
            let claimed: ClaimedDelivery = sqlx::query_as(
                "UPDATE notification_deliveries SET claimed_until = $1 WHERE id = $2 \
                 RETURNING id, delivery_id, event, payload, attempts, hook_id",
            )
            .bind(now + claim_millis)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let hook: HookTarget = sqlx::query_as(
                "SELECT kind, emails, url, secret_sealed, site_id FROM notification_hooks WHERE id = $1",
            )
            .bind(claimed.hook_id)
            .fetch_one(&mut *tx)
            .await?;
            due.push(DueDelivery {
                id: claimed.id,
                kind: NotificationKind::parse(&hook.kind),
                emails: split_list(&hook.emails),
                delivery_id: claimed.delivery_id,
                event: claimed.event,
                payload: claimed.payload,
                attempts: claimed.attempts,
                url: hook.url,
                secret_sealed: hook.secret_sealed,
                site_id: hook.site_id,
            });
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Records how an attempt ended and releases the claim.
    pub async fn record_notification_attempt(&self, id: i64, result: &AttemptResult) -> anyhow::Result<()> {
        let now = now_millis();
        match result {
            AttemptResult::Delivered { status } => {
                sqlx::query(
                    "UPDATE notification_deliveries SET state = 'delivered', attempts = attempts + 1, \
                     last_status = $1, last_error = NULL, claimed_until = 0, finished_at = $2 WHERE id = $3",
                )
                .bind(*status)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
            AttemptResult::Failed {
                status,
                error,
                retry_at,
            } => {
                sqlx::query(
                    "UPDATE notification_deliveries SET state = $1, attempts = attempts + 1, \
                     last_status = $2, last_error = $3, claimed_until = 0, next_attempt_at = $4, \
                     finished_at = $5 WHERE id = $6",
                )
                .bind(if retry_at.is_some() { "pending" } else { "failed" })
                .bind(*status)
                .bind(error)
                .bind(retry_at.unwrap_or(now))
                .bind(retry_at.is_none().then_some(now))
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// A hook's deliveries, newest first.
    pub async fn notification_deliveries(
        &self,
        hook_id: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<NotificationDelivery>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE hook_id = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(hook_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The earliest time a pending delivery is due, if any is.
    pub async fn next_notification_due(&self) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN claimed_until > next_attempt_at THEN claimed_until ELSE next_attempt_at END) \
             FROM notification_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Forgets finished deliveries (delivered or given up) older than
    /// `before` (Unix ms); pending ones are kept whatever their age.
    pub async fn prune_notification_deliveries(&self, before: i64) -> anyhow::Result<u64> {
        let done =
            sqlx::query("DELETE FROM notification_deliveries WHERE state <> 'pending' AND finished_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }
}
