//! Build hooks: per-site URLs that queue a build when POSTed to. Only the
//! SHA-256 of the id in a hook's URL is stored; the id is found by hashing
//! what a caller sends.

use super::{Database, now_millis};
use serde::Serialize;

/// A build hook as listed: never the id in its URL.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct BuildHook {
    pub id: i64,
    #[serde(skip)]
    pub site_id: i64,
    pub name: String,
    /// The branch its builds build; `null` for the site's production branch.
    pub trigger_branch: Option<String>,
    /// The reason its builds show.
    pub trigger_title: Option<String>,
    pub created_at: i64,
    /// When it last queued a build; `null` if never.
    pub last_used_at: Option<i64>,
}

const HOOK_COLUMNS: &str = "id, site_id, name, trigger_branch, trigger_title, created_at, last_used_at";

/// What a new build hook is made of.
#[derive(Debug, Clone)]
pub struct NewBuildHook<'a> {
    pub site_id: i64,
    pub name: &'a str,
    pub url_id_hash: &'a str,
    pub trigger_branch: Option<&'a str>,
    pub trigger_title: Option<&'a str>,
}

impl Database {
    pub async fn insert_build_hook(&self, hook: &NewBuildHook<'_>) -> anyhow::Result<BuildHook> {
        Ok(sqlx::query_as(&format!(
            "INSERT INTO build_hooks (site_id, name, url_id_hash, trigger_branch, trigger_title, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {HOOK_COLUMNS}"
        ))
        .bind(hook.site_id)
        .bind(hook.name)
        .bind(hook.url_id_hash)
        .bind(hook.trigger_branch)
        .bind(hook.trigger_title)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?)
    }

    /// The site's build hooks, oldest first.
    pub async fn build_hooks(&self, site_id: i64) -> anyhow::Result<Vec<BuildHook>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {HOOK_COLUMNS} FROM build_hooks WHERE site_id = $1 ORDER BY id"
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The hook whose URL id hashes to `url_id_hash`, if any.
    pub async fn build_hook_by_url_id_hash(&self, url_id_hash: &str) -> anyhow::Result<Option<BuildHook>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {HOOK_COLUMNS} FROM build_hooks WHERE url_id_hash = $1"
        ))
        .bind(url_id_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The stored hash of a hook's URL id: for tests that check the id
    /// itself is never kept.
    pub async fn build_hook_url_id_hash(&self, id: i64) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT url_id_hash FROM build_hooks WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn note_build_hook_used(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE build_hooks SET last_used_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes a hook: its URL answers 404 from now on. False when the
    /// site has no such hook.
    pub async fn delete_build_hook(&self, site_id: i64, id: i64) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM build_hooks WHERE site_id = $1 AND id = $2")
            .bind(site_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
