//! Figures for monitoring, read when metrics are scraped.

use super::{Database, now_millis};

/// A runner that called within this long counts as connected (a waiting
/// lease request is renewed well within it).
const CONNECTED_WITHIN_MILLIS: i64 = 60_000;

/// Facts of the database, read when scraped.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct QueueFigures {
    pub queued: i64,
    pub running: i64,
    /// Runners seen within the last minute.
    pub runners_connected: i64,
    /// Runners holding at least one live lease.
    pub runners_busy: i64,
}

impl Database {
    /// Queue depth, running builds and runners, in one round trip.
    pub async fn queue_figures(&self) -> anyhow::Result<QueueFigures> {
        let figures: QueueFigures = sqlx::query_as(
            "SELECT \
             (SELECT COUNT(*) FROM jobs WHERE state = 'queued') AS queued, \
             (SELECT COUNT(*) FROM jobs WHERE state = 'leased') AS running, \
             (SELECT COUNT(*) FROM runners WHERE revoked_at IS NULL AND last_seen_at > $1) AS runners_connected, \
             (SELECT COUNT(DISTINCT runner_id) FROM jobs WHERE state = 'leased' AND runner_id IS NOT NULL) \
               AS runners_busy",
        )
        .bind(now_millis() - CONNECTED_WITHIN_MILLIS)
        .fetch_one(&self.pool)
        .await?;
        Ok(figures)
    }
}
