//! Retention: which deploys may go, and removing one. A removed deploy keeps
//! its row (state `deleted`, for the history of builds) and loses its files,
//! which frees its blobs for the sweep; the deploys whose file lists were
//! deltas against it are rebased first.

use super::Database;
use super::file_lists::rebase_children;
use std::collections::HashSet;

/// A ready deploy that is not production's, with what names its alias.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AliasedDeploy {
    pub id: String,
    pub site_id: i64,
    pub context: String,
    pub branch: String,
    pub pr_number: Option<i64>,
}

impl Database {
    /// Ready deploys older than the newest `keep` of their site and context.
    pub async fn deploys_beyond_newest(&self, keep: i64) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
               (PARTITION BY site_id, context ORDER BY created_at DESC, id DESC) AS rank \
               FROM deploys WHERE state = 'ready') ranked \
             WHERE rank > $1",
        )
        .bind(keep)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ready preview and branch deploys.
    pub async fn ready_deploys_off_production(&self) -> anyhow::Result<Vec<AliasedDeploy>> {
        Ok(sqlx::query_as(
            "SELECT id, site_id, context, branch, pr_number FROM deploys \
             WHERE state = 'ready' AND context <> 'production'",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every (site, alias) that exists.
    pub async fn all_aliases(&self) -> anyhow::Result<HashSet<(i64, String)>> {
        let aliases: Vec<(i64, String)> = sqlx::query_as("SELECT site_id, alias FROM site_aliases")
            .fetch_all(&self.pool)
            .await?;
        Ok(aliases.into_iter().collect())
    }

    /// Deploys still `uploading` since before `before` whose job is over:
    /// uploads that will never be finalized.
    pub async fn abandoned_uploads(&self, before: i64) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT d.id FROM deploys d WHERE d.state = 'uploading' AND d.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.build_id = d.build_id AND j.state <> 'done')",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes a deploy unless, at this moment, it is published or a
    /// hostname alias points at it; returns its site when removed. One write
    /// transaction, so a publish cannot slip between the check and the
    /// removal.
    pub async fn remove_deploy(&self, deploy_id: &str) -> anyhow::Result<Option<i64>> {
        let mut tx = self.write_tx().await?;
        let removed: Option<i64> = sqlx::query_scalar(
            "UPDATE deploys SET state = 'deleted' \
             WHERE id = $1 AND state IN ('ready', 'uploading') \
             AND NOT EXISTS (SELECT 1 FROM sites s WHERE s.published_deploy_id = deploys.id) \
             AND NOT EXISTS (SELECT 1 FROM site_aliases a WHERE a.deploy_id = deploys.id) \
             RETURNING site_id",
        )
        .bind(deploy_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(site_id) = removed else {
            return Ok(None);
        };
        // The UPDATE above holds the deploy's row (on PostgreSQL) until the
        // commit: a manifest choosing it as its base waits, then finds it
        // gone; one that chose it first is among the children rebased.
        rebase_children(&mut tx, self.backend, deploy_id).await?;
        for sql in [
            "DELETE FROM deploy_files WHERE deploy_id = $1",
            "DELETE FROM deploy_rules WHERE deploy_id = $1",
        ] {
            sqlx::query(sql).bind(deploy_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(site_id))
    }
}
