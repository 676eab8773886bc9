//! What the edge reads of a deploy (its files with their store keys and
//! variants, and its rules), and what finalizing needs before a deploy goes
//! ready.

use super::Database;
use super::file_lists::{OWN_ROWS_LACKING_BLOBS, effective_files};

/// A file of a deploy and where its bytes are.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndexedFile {
    pub path: String,
    pub sha256: String,
    pub size: i64,
    pub key: String,
}

/// A compressed variant of a blob.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndexedVariant {
    /// The blob it is a variant of.
    pub sha256: String,
    pub encoding: String,
    pub variant_sha256: String,
    pub size: i64,
    pub key: String,
}

/// Everything the edge needs to serve one ready deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployContents {
    pub files: Vec<IndexedFile>,
    pub variants: Vec<IndexedVariant>,
    /// The checked rules as JSON; `None` when the deploy has none.
    pub rules: Option<String>,
}

/// After [`effective_files`]: a deploy's files with their stored size and
/// key, each blob looked up by its hash.
pub(super) const INDEX_FILES: &str = "SELECT f.path, f.sha256, b.size, COALESCE(b.storage_key, b.sha256) AS key \
     FROM effective_files f CROSS JOIN blobs b WHERE b.sha256 = f.sha256";

/// After [`effective_files`]: the variants of a deploy's blobs, once per
/// blob however many paths name it.
pub(super) const INDEX_VARIANTS: &str = "SELECT v.sha256, v.encoding, v.variant_sha256, b.size, \
       COALESCE(b.storage_key, b.sha256) AS key \
     FROM (SELECT DISTINCT sha256 FROM effective_files) f \
       CROSS JOIN blob_variants v CROSS JOIN blobs b \
     WHERE v.sha256 = f.sha256 AND b.sha256 = v.variant_sha256";

/// After [`effective_files`] of one path: that file's stored key.
pub(super) const FILE_KEY: &str = "SELECT COALESCE(b.storage_key, b.sha256) FROM effective_files f CROSS JOIN blobs b WHERE b.sha256 = f.sha256";

impl Database {
    /// The contents of a deploy, if it is ready.
    pub async fn ready_deploy_contents(&self, deploy_id: &str) -> anyhow::Result<Option<DeployContents>> {
        // The four reads at once, each on a connection of its own: a cold
        // load is what the first visitor of a site waits for. Whether the
        // deploy is ready decides if the rest is used.
        let files_sql = format!("{} {INDEX_FILES}", effective_files(None));
        let variants_sql = format!("{} {INDEX_VARIANTS}", effective_files(None));
        let (ready, files, variants, rules) = tokio::try_join!(
            sqlx::query("SELECT 1 FROM deploys WHERE id = $1 AND state = 'ready'")
                .bind(deploy_id)
                .fetch_optional(&self.pool),
            // The size is the stored blob's, never the one the manifest
            // declared: a false one would be a false `Content-Length`.
            sqlx::query_as(&files_sql).bind(deploy_id).fetch_all(&self.pool),
            sqlx::query_as(&variants_sql)
                .bind(deploy_id)
                .fetch_all(&self.pool),
            sqlx::query_scalar::<_, Option<String>>("SELECT rules FROM deploy_rules WHERE deploy_id = $1")
                .bind(deploy_id)
                .fetch_optional(&self.pool),
        )?;
        if ready.is_none() {
            return Ok(None);
        }
        Ok(Some(DeployContents {
            files,
            variants,
            rules: rules.flatten(),
        }))
    }

    /// The compressed variants of a deploy's files, for the edge to swap
    /// into an index it holds once they are made.
    pub async fn deploy_variants(&self, deploy_id: &str) -> anyhow::Result<Vec<IndexedVariant>> {
        Ok(
            sqlx::query_as(&format!("{} {INDEX_VARIANTS}", effective_files(None)))
                .bind(deploy_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The stored key of the file at `path` of a deploy, in any state.
    pub async fn deploy_file_key(&self, deploy_id: &str, path: &str) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar(&format!("{} {FILE_KEY}", effective_files(Some("$2"))))
                .bind(deploy_id)
                .bind(path)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Files of a deploy whose blob is not stored yet.
    pub async fn count_missing_blobs(&self, deploy_id: &str) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar(&format!("SELECT COUNT(*) {OWN_ROWS_LACKING_BLOBS}"))
                .bind(deploy_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Files of a deploy whose manifest declared a size other than their
    /// stored content's: `(path, declared, stored)`, the first few by path.
    pub async fn files_with_false_sizes(&self, deploy_id: &str) -> anyhow::Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT f.path, f.size, b.size FROM deploy_files f JOIN blobs b ON b.sha256 = f.sha256 \
             WHERE f.deploy_id = $1 AND f.sha256 IS NOT NULL AND f.size <> b.size ORDER BY f.path LIMIT 5",
        )
        .bind(deploy_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Keeps the rules of `jamstack.toml` sent with a deploy's manifest; the
    /// rules the edge applies are made again at finalize.
    pub async fn save_config_rules(&self, deploy_id: &str, json: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO deploy_rules (deploy_id, config_rules, rules) VALUES ($1, $2, NULL) \
             ON CONFLICT (deploy_id) DO UPDATE SET config_rules = excluded.config_rules, rules = NULL",
        )
        .bind(deploy_id)
        .bind(json)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn config_rules(&self, deploy_id: &str) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT config_rules FROM deploy_rules WHERE deploy_id = $1")
                .bind(deploy_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores every rule the edge will apply to a deploy.
    pub async fn save_deploy_rules(
        &self,
        deploy_id: &str,
        config_json: &str,
        json: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO deploy_rules (deploy_id, config_rules, rules) VALUES ($1, $2, $3) \
             ON CONFLICT (deploy_id) DO UPDATE SET rules = excluded.rules",
        )
        .bind(deploy_id)
        .bind(config_json)
        .bind(json)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
