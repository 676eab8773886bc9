//! Deploys (immutable file sets) and the blobs they point at.

use super::blobs::SweepLock;
use super::file_lists::{NewFileList, OWN_ROWS_LACKING_BLOBS, effective_files, record_file_list};
use super::{Build, Database, now_millis};
use jamstack_proto::BuildContext;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Deploy {
    pub id: String,
    pub site_id: i64,
    pub build_id: Option<i64>,
    pub context: String,
    pub branch: String,
    pub commit_sha: String,
    pub pr_number: Option<i64>,
    pub state: String,
    pub file_count: i64,
    pub total_size: i64,
    pub created_at: i64,
    pub ready_at: Option<i64>,
    /// What a deploy made directly through the API is, in its maker's words.
    pub title: Option<String>,
}

/// One file of a deploy, as the edge needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeployFile {
    pub sha256: String,
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalizeOutcome {
    /// The deploy is ready; `published` says whether it went live.
    Ready {
        published: bool,
    },
    /// Files whose blobs have not been uploaded yet.
    MissingBlobs(i64),
    /// The lease presented is not the job's live lease: nothing was done.
    StaleLease,
    NotFound,
}

const DEPLOY_COLUMNS: &str = "id, site_id, build_id, context, branch, commit_sha, pr_number, state, \
                              file_count, total_size, created_at, ready_at, title";

/// The context of a deploy made directly through the API and not (yet)
/// published: reachable only at its permalink.
pub const DRAFT_CONTEXT: &str = "draft";

/// What finalizing a deploy publishes.
#[derive(Debug, Clone, Copy)]
enum Publication<'a> {
    /// A build's deploy: production deploys go live unless publishing is
    /// locked; previews and branch deploys move their hostname alias.
    ByContext { alias: Option<&'a str> },
    /// A deploy made directly through the API: it goes live (and becomes a
    /// production deploy) when asked to, unless publishing is locked.
    Direct { publish: bool },
}

/// Hashes per `IN (…)` lookup.
const LOOKUP_BATCH: usize = 500;

impl Database {
    /// Records the manifest of the deploy a build is uploading. A build has
    /// at most one deploy: a retried manifest replaces the files of a deploy
    /// still uploading and leaves a ready one as it is.
    pub async fn upsert_build_deploy(
        &self,
        new_deploy_id: &str,
        build: &Build,
        files: NewFileList<'_>,
    ) -> anyhow::Result<Deploy> {
        let mut tx = self.write_tx().await?;
        self.lock_against_sweep(&mut tx, SweepLock::Reference).await?;
        let existing: Option<Deploy> = sqlx::query_as(&format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE build_id = $1"
        ))
        .bind(build.id)
        .fetch_optional(&mut *tx)
        .await?;
        let deploy_id = match existing {
            Some(deploy) if deploy.state == "ready" => return Ok(deploy),
            // Its files are replaced below.
            Some(deploy) => deploy.id,
            None => {
                sqlx::query(
                    "INSERT INTO deploys (id, site_id, build_id, context, branch, commit_sha, pr_number, \
                     state, file_count, total_size, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'uploading', 0, 0, $8)",
                )
                .bind(new_deploy_id)
                .bind(build.site_id)
                .bind(build.id)
                .bind(build.context.as_str())
                .bind(&build.branch)
                .bind(&build.commit_sha)
                .bind(build.pr_number)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
                new_deploy_id.to_owned()
            }
        };
        record_file_list(&mut tx, self.backend, &deploy_id, build.site_id, files).await?;
        let deploy = sqlx::query_as(&format!("SELECT {DEPLOY_COLUMNS} FROM deploys WHERE id = $1"))
            .bind(&deploy_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deploy)
    }

    /// Records a deploy made directly through the API (no build): a draft
    /// of `site_id` until it is finalized.
    pub async fn insert_direct_deploy(
        &self,
        deploy_id: &str,
        site_id: i64,
        branch: &str,
        title: Option<&str>,
        files: NewFileList<'_>,
    ) -> anyhow::Result<Deploy> {
        let mut tx = self.write_tx().await?;
        // Like a build's manifest, this one names blobs the sweep must not
        // judge unreferenced from an older snapshot.
        self.lock_against_sweep(&mut tx, SweepLock::Reference).await?;
        sqlx::query(
            "INSERT INTO deploys (id, site_id, build_id, context, branch, commit_sha, pr_number, \
             state, file_count, total_size, created_at, title) \
             VALUES ($1, $2, NULL, $3, $4, '', NULL, 'uploading', 0, 0, $5, $6)",
        )
        .bind(deploy_id)
        .bind(site_id)
        .bind(DRAFT_CONTEXT)
        .bind(branch)
        .bind(now_millis())
        .bind(title)
        .execute(&mut *tx)
        .await?;
        record_file_list(&mut tx, self.backend, deploy_id, site_id, files).await?;
        let deploy = sqlx::query_as(&format!("SELECT {DEPLOY_COLUMNS} FROM deploys WHERE id = $1"))
            .bind(deploy_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deploy)
    }

    /// Every deploy a hostname serves now: sites' published deploys and
    /// their aliases' deploys.
    pub async fn served_deploy_ids(&self) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT published_deploy_id FROM sites WHERE published_deploy_id IS NOT NULL \
             UNION SELECT deploy_id FROM site_aliases",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The distinct hashes a deploy names that no stored blob has.
    pub async fn missing_blobs_of_deploy(&self, deploy_id: &str) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT DISTINCT f.sha256 {OWN_ROWS_LACKING_BLOBS} ORDER BY f.sha256"
        ))
        .bind(deploy_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Database {
    /// Of `hashes`, those no stored blob has.
    pub async fn missing_blobs(&self, hashes: &[String]) -> anyhow::Result<Vec<String>> {
        let mut missing = Vec::new();
        for batch in hashes.chunks(LOOKUP_BATCH) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT sha256 FROM blobs WHERE sha256 IN ({})",
                placeholders.join(",")
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for hash in batch {
                query = query.bind(hash);
            }
            let present: std::collections::HashSet<String> =
                query.fetch_all(&self.pool).await?.into_iter().collect();
            missing.extend(batch.iter().filter(|h| !present.contains(*h)).cloned());
        }
        Ok(missing)
    }

    /// Notes that the blob store now holds `sha256`.
    pub async fn record_blob(&self, sha256: &str, size: i64) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO blobs (sha256, size, created_at) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING")
            .bind(sha256)
            .bind(size)
            .bind(now_millis())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Marks a deploy ready once every blob it names is stored, and, when it
    /// is a production deploy of a site whose publishing is not locked, makes
    /// it the published deploy; a preview or branch deploy moves its `alias`
    /// instead. One transaction, fenced by the job's lease: a stale lease
    /// publishes nothing. Finalizing a ready deploy again answers as the
    /// first time did.
    pub async fn finalize_deploy(
        &self,
        deploy_id: &str,
        job_id: i64,
        lease_id: &str,
        alias: Option<&str>,
    ) -> anyhow::Result<FinalizeOutcome> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        // The count of missing blobs below must not see a row a running
        // sweep is removing.
        self.lock_against_sweep(&mut tx, SweepLock::Reference).await?;
        let lease_live = sqlx::query(
            "SELECT 1 FROM jobs j JOIN deploys d ON d.build_id = j.build_id WHERE j.id = $1 \
             AND j.lease_id = $2 AND j.state = 'leased' AND j.lease_expires_at > $3 AND d.id = $4",
        )
        .bind(job_id)
        .bind(lease_id)
        .bind(now)
        .bind(deploy_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !lease_live {
            return Ok(FinalizeOutcome::StaleLease);
        }
        let outcome = finish(&mut tx, deploy_id, now, Publication::ByContext { alias }).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Finalizes a deploy made directly through the API: ready once every
    /// blob it names is stored, and published (becoming the site's
    /// production deploy) when `publish` and publishing is not locked.
    /// Finalizing a ready deploy again answers whether it is published.
    pub async fn finalize_direct_deploy(
        &self,
        deploy_id: &str,
        publish: bool,
    ) -> anyhow::Result<FinalizeOutcome> {
        let mut tx = self.write_tx().await?;
        // As for a build's deploy: the count of missing blobs must not see
        // a row a running sweep is removing.
        self.lock_against_sweep(&mut tx, SweepLock::Reference).await?;
        let outcome = finish(&mut tx, deploy_id, now_millis(), Publication::Direct { publish }).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// The part of finalizing both kinds of deploy share, in the caller's
/// transaction.
async fn finish(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    deploy_id: &str,
    now: i64,
    publication: Publication<'_>,
) -> anyhow::Result<FinalizeOutcome> {
    #[derive(sqlx::FromRow)]
    struct Finalizing {
        site_id: i64,
        context: String,
        state: String,
        commit_unverified: i64,
    }
    let Some(Finalizing {
        site_id,
        context,
        state,
        commit_unverified,
    }) = sqlx::query_as(
        "SELECT d.site_id, d.context, d.state, COALESCE(b.commit_unverified, 0) AS commit_unverified \
         FROM deploys d LEFT JOIN builds b ON b.id = d.build_id WHERE d.id = $1",
    )
    .bind(deploy_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(FinalizeOutcome::NotFound);
    };
    // A hand-picked commit no runner found on its branch is not the
    // site's code: its deploy keeps its permalink and goes live only when
    // someone who may publish publishes it.
    let unverified = commit_unverified != 0;
    if state == "ready" {
        let published = sqlx::query("SELECT 1 FROM sites WHERE id = $1 AND published_deploy_id = $2")
            .bind(site_id)
            .bind(deploy_id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        return Ok(FinalizeOutcome::Ready { published });
    }
    let missing: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {OWN_ROWS_LACKING_BLOBS}"))
        .bind(deploy_id)
        .fetch_one(&mut **tx)
        .await?;
    if missing > 0 {
        return Ok(FinalizeOutcome::MissingBlobs(missing));
    }
    sqlx::query("UPDATE deploys SET state = 'ready', ready_at = $1 WHERE id = $2")
        .bind(now)
        .bind(deploy_id)
        .execute(&mut **tx)
        .await?;
    let alias = match publication {
        Publication::ByContext { alias } => alias,
        Publication::Direct { publish: false } => return Ok(FinalizeOutcome::Ready { published: false }),
        Publication::Direct { publish: true } => {
            let published =
                sqlx::query("UPDATE sites SET published_deploy_id = $1 WHERE id = $2 AND publish_locked = 0")
                    .bind(deploy_id)
                    .bind(site_id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
                    == 1;
            if published {
                sqlx::query("UPDATE deploys SET context = $1 WHERE id = $2")
                    .bind(BuildContext::Production.as_str())
                    .bind(deploy_id)
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(FinalizeOutcome::Ready { published });
        }
    };
    let published = if context == BuildContext::Production.as_str() {
        if unverified {
            return Ok(FinalizeOutcome::Ready { published: false });
        }
        sqlx::query("UPDATE sites SET published_deploy_id = $1 WHERE id = $2 AND publish_locked = 0")
            .bind(deploy_id)
            .bind(site_id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1
    } else {
        if let Some(alias) = alias {
            sqlx::query(
                "INSERT INTO site_aliases (site_id, alias, deploy_id, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (site_id, alias) DO UPDATE SET deploy_id = excluded.deploy_id, \
                     updated_at = excluded.updated_at",
            )
            .bind(site_id)
            .bind(alias)
            .bind(deploy_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        false
    };
    Ok(FinalizeOutcome::Ready { published })
}

impl Database {
    pub async fn deploy(&self, deploy_id: &str) -> anyhow::Result<Option<Deploy>> {
        Ok(
            sqlx::query_as(&format!("SELECT {DEPLOY_COLUMNS} FROM deploys WHERE id = $1"))
                .bind(deploy_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn deploys_of_site(&self, site_id: i64, limit: i64) -> anyhow::Result<Vec<Deploy>> {
        self.deploys_of_site_page(site_id, limit, 0).await
    }

    /// One page of a site's deploys, newest first.
    pub async fn deploys_of_site_page(
        &self,
        site_id: i64,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<Vec<Deploy>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE site_id = $1 ORDER BY created_at DESC, id \
             LIMIT $2 OFFSET $3"
        ))
        .bind(site_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A file of a ready deploy, by its path in the deploy.
    pub async fn deploy_file(&self, deploy_id: &str, path: &str) -> anyhow::Result<Option<DeployFile>> {
        Ok(sqlx::query_as(&format!(
            "{} SELECT f.sha256, f.size FROM effective_files f JOIN deploys d ON d.id = $1 \
             WHERE d.state = 'ready'",
            effective_files(Some("$2"))
        ))
        .bind(deploy_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The deploy a hostname alias (`deploy-preview-12`, a branch label)
    /// of a site points at.
    pub async fn alias_deploy(&self, site_id: i64, alias: &str) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT deploy_id FROM site_aliases WHERE site_id = $1 AND alias = $2")
                .bind(site_id)
                .bind(alias)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Takes a hostname alias down (a closed pull request, a deleted
    /// branch); its deploys stay reachable at their permalinks.
    pub async fn remove_alias(&self, site_id: i64, alias: &str) -> anyhow::Result<bool> {
        let result = sqlx::query("DELETE FROM site_aliases WHERE site_id = $1 AND alias = $2")
            .bind(site_id)
            .bind(alias)
            .execute(self.writer())
            .await?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn deploy_of_build(&self, build_id: i64) -> anyhow::Result<Option<Deploy>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE build_id = $1"
        ))
        .bind(build_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every file of a deploy (path, hash, size), by path.
    pub async fn deploy_files(&self, deploy_id: &str) -> anyhow::Result<Vec<(String, DeployFile)>> {
        #[derive(sqlx::FromRow)]
        struct PathAndFile {
            path: String,
            #[sqlx(flatten)]
            file: DeployFile,
        }
        let rows: Vec<PathAndFile> = sqlx::query_as(&format!(
            "{} SELECT path, sha256, size FROM effective_files ORDER BY path",
            effective_files(None)
        ))
        .bind(deploy_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|row| (row.path, row.file)).collect())
    }
}
