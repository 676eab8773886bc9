//! Taking preview and branch hostnames down for good: a retired alias is
//! not brought back by a build that was already running, only by a new one.

use super::{Database, now_millis};

impl Database {
    /// Takes `alias` of a site down and remembers that it was retired.
    /// Returns whether it was serving a deploy.
    pub async fn retire_alias(&self, site_id: i64, alias: &str) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let removed = sqlx::query("DELETE FROM site_aliases WHERE site_id = $1 AND alias = $2")
            .bind(site_id)
            .bind(alias)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        sqlx::query(
            "INSERT INTO retired_aliases (site_id, alias, retired_at) VALUES ($1, $2, $3) \
             ON CONFLICT (site_id, alias) DO UPDATE SET retired_at = excluded.retired_at",
        )
        .bind(site_id)
        .bind(alias)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// A new build for `alias` was queued: it may serve again.
    pub async fn revive_alias(&self, site_id: i64, alias: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM retired_aliases WHERE site_id = $1 AND alias = $2")
            .bind(site_id)
            .bind(alias)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn is_alias_retired(&self, site_id: i64, alias: &str) -> anyhow::Result<bool> {
        let row = sqlx::query("SELECT 1 FROM retired_aliases WHERE site_id = $1 AND alias = $2")
            .bind(site_id)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}
