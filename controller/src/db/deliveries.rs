//! Webhook deliveries: every one kept with what was done with it.
//!
//! An authenticated delivery is claimed under its `dedupe_key`
//! (`<source>:<delivery id>`) before anything acts on it, so a redelivery,
//! even one arriving while the first is still being handled, is handled
//! once. Only a delivery that failed inside the controller, or whose
//! handling was abandoned, can be claimed again: redelivering it retries it.
//! A claimed delivery also keeps the SHA-256 of its body (`body_key`): a
//! captured delivery replayed under a new id has the same body (a sender
//! without the secret cannot sign another), and is a duplicate too.

use super::{Database, now_millis};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// `github` or `generic`.
    pub source: String,
    /// The sender's id of the delivery (`X-GitHub-Delivery`).
    pub delivery_id: Option<String>,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    /// `processing`, `queued`, `skipped`, `ignored`, `duplicate`,
    /// `rejected` or `failed`.
    pub outcome: String,
    pub message: String,
    pub builds: Vec<i64>,
    pub received_at: i64,
    pub handled_at: Option<i64>,
}

/// A claim still `processing` after this long was abandoned (the
/// controller stopped while handling it): a redelivery may claim it again.
pub(super) const ABANDONED_AFTER_MS: i64 = 5 * 60 * 1000;

/// A delivery as it arrives.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub source: &'static str,
    pub delivery_id: Option<String>,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    /// The hex SHA-256 of the body, once it is read.
    pub body_sha256: Option<String>,
}

impl NewDelivery {
    pub fn dedupe_key(&self) -> Option<String> {
        self.delivery_id
            .as_ref()
            .map(|id| format!("{}:{id}", self.source))
    }

    /// What the body is recognised by: a replay under a new delivery id has
    /// the same.
    pub fn body_key(&self) -> Option<String> {
        self.body_sha256
            .as_ref()
            .map(|digest| format!("{}:{digest}", self.source))
    }
}

/// The answer to claiming a delivery.
#[derive(Debug, Clone)]
pub enum Claim {
    /// First time seen: handle it, then record the outcome under this id.
    New(i64),
    /// Seen before; this is the earlier delivery.
    Duplicate(Delivery),
    /// The same body was claimed before under another delivery id (a
    /// replay); this is the earlier delivery.
    SameBody(Delivery),
}

const DELIVERY_COLUMNS: &str = "id, source, delivery_id, event, action, repository, outcome, message, \
                                build_ids, received_at, handled_at";

/// A row of `webhook_deliveries`: the builds' ids joined by commas.
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    source: String,
    delivery_id: Option<String>,
    event: String,
    action: Option<String>,
    repository: Option<String>,
    outcome: String,
    message: String,
    build_ids: String,
    received_at: i64,
    handled_at: Option<i64>,
}

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Delivery {
            id: row.id,
            source: row.source,
            delivery_id: row.delivery_id,
            event: row.event,
            action: row.action,
            repository: row.repository,
            outcome: row.outcome,
            message: row.message,
            builds: row
                .build_ids
                .split(',')
                .filter_map(|id| id.parse().ok())
                .collect(),
            received_at: row.received_at,
            handled_at: row.handled_at,
        }
    }
}

pub(super) fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

impl Database {
    /// Whether a delivery with this id, or with this body under any id, was
    /// recorded before: GitHub's *Redeliver*, or a captured body played again.
    pub async fn delivery_seen(&self, delivery: &NewDelivery) -> anyhow::Result<bool> {
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE dedupe_key = $1 OR body_key = $2 LIMIT 1",
        )
        .bind(delivery.dedupe_key())
        .bind(delivery.body_key())
        .fetch_optional(&self.pool)
        .await?;
        Ok(seen.is_some())
    }

    /// Claims an authenticated delivery before it is acted on.
    pub async fn claim_delivery(&self, delivery: &NewDelivery) -> anyhow::Result<Claim> {
        // The same body under another id is a replay. Looked up first; the
        // unique index stops a replay racing its original.
        if let Some(body_key) = delivery.body_key() {
            #[derive(sqlx::FromRow)]
            struct KeyedDelivery {
                #[sqlx(flatten)]
                delivery: DeliveryRow,
                dedupe_key: Option<String>,
            }
            let earlier: Option<KeyedDelivery> = sqlx::query_as(&format!(
                "SELECT {DELIVERY_COLUMNS}, dedupe_key FROM webhook_deliveries WHERE body_key = $1"
            ))
            .bind(&body_key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(earlier) = earlier
                && earlier.dedupe_key != delivery.dedupe_key()
            {
                return Ok(Claim::SameBody(earlier.delivery.into()));
            }
        }
        let Some(key) = delivery.dedupe_key() else {
            // Without an id a delivery cannot be recognised again by its
            // id; its body still can.
            let id = self.insert_delivery(delivery, None, "processing", "").await?;
            sqlx::query("UPDATE webhook_deliveries SET body_key = $1 WHERE id = $2")
                .bind(delivery.body_key())
                .bind(id)
                .execute(self.writer())
                .await?;
            return Ok(Claim::New(id));
        };
        let claimed: Option<i64> = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (source, delivery_id, dedupe_key, event, action, repository, \
             outcome, message, received_at, body_key) \
             VALUES ($1, $2, $3, $4, $5, $6, 'processing', '', $7, $9) \
             ON CONFLICT (dedupe_key) DO UPDATE SET outcome = 'processing', message = '', \
             received_at = excluded.received_at, handled_at = NULL \
             WHERE webhook_deliveries.outcome = 'failed' \
             OR (webhook_deliveries.outcome = 'processing' AND webhook_deliveries.received_at < $8) \
             RETURNING id",
        )
        .bind(delivery.source)
        .bind(&delivery.delivery_id)
        .bind(&key)
        .bind(&delivery.event)
        .bind(&delivery.action)
        .bind(&delivery.repository)
        .bind(now_millis())
        .bind(now_millis() - ABANDONED_AFTER_MS)
        .bind(delivery.body_key())
        .fetch_optional(self.writer())
        .await?;
        if let Some(id) = claimed {
            return Ok(Claim::New(id));
        }
        let earlier: DeliveryRow = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE dedupe_key = $1"
        ))
        .bind(&key)
        .fetch_one(&self.pool)
        .await?;
        Ok(Claim::Duplicate(earlier.into()))
    }

    /// Records what was done with a claimed delivery.
    pub async fn finish_delivery(
        &self,
        id: i64,
        outcome: &str,
        message: &str,
        builds: &[i64],
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET outcome = $1, message = $2, build_ids = $3, handled_at = $4 \
             WHERE id = $5",
        )
        .bind(outcome)
        .bind(message)
        .bind(join_ids(builds))
        .bind(now_millis())
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records a delivery that was not acted on (refused, or a duplicate)
    /// without claiming its id. Returns its id.
    pub async fn record_unclaimed_delivery(
        &self,
        delivery: &NewDelivery,
        outcome: &str,
        message: &str,
    ) -> anyhow::Result<i64> {
        self.insert_delivery(delivery, Some(now_millis()), outcome, message)
            .await
    }

    async fn insert_delivery(
        &self,
        delivery: &NewDelivery,
        handled_at: Option<i64>,
        outcome: &str,
        message: &str,
    ) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (source, delivery_id, event, action, repository, outcome, \
             message, received_at, handled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(delivery.source)
        .bind(&delivery.delivery_id)
        .bind(&delivery.event)
        .bind(&delivery.action)
        .bind(&delivery.repository)
        .bind(outcome)
        .bind(message)
        .bind(now_millis())
        .bind(handled_at)
        .fetch_one(self.writer())
        .await?)
    }

    /// Deliveries, newest first, below `before` (an id) when given.
    pub async fn deliveries(&self, limit: i64, before: Option<i64>) -> anyhow::Result<Vec<Delivery>> {
        self.deliveries_page(limit, 0, before).await
    }

    /// One page of the deliveries, newest first, below `before` (an id)
    /// when given.
    pub async fn deliveries_page(
        &self,
        limit: i64,
        offset: i64,
        before: Option<i64>,
    ) -> anyhow::Result<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id < $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    pub async fn delivery(&self, id: i64) -> anyhow::Result<Option<Delivery>> {
        let row: Option<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Delivery::from))
    }

    /// Forgets deliveries received before `before` (Unix ms), and refused
    /// ones beyond the newest `keep_refused`, so unsigned requests cannot
    /// grow the table without bound. Returns how many were removed.
    pub async fn prune_deliveries(&self, before: i64, keep_refused: i64) -> anyhow::Result<u64> {
        let old = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?
            .rows_affected();
        let refused = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE outcome = 'rejected' AND id < \
             (SELECT COALESCE(MIN(id), 0) FROM (SELECT id FROM webhook_deliveries \
             WHERE outcome = 'rejected' ORDER BY id DESC LIMIT $1) AS newest)",
        )
        .bind(keep_refused)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(old + refused)
    }
}
