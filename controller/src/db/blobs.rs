//! Blobs: where their bytes are stored, their compressed variants, and the
//! sweep that removes those no deploy references.

use super::file_lists::effective_files;
use super::{Backend, Database, now_millis};
use std::collections::HashSet;

/// The PostgreSQL advisory lock that keeps the sweep apart from writes that
/// make a blob referenced (recording a manifest, finalizing a deploy). Those
/// take it shared, so they never wait on each other; the sweep takes it
/// exclusively. At READ COMMITTED the sweep's `NOT EXISTS` would otherwise
/// judge by a snapshot taken before a concurrent manifest committed, and a
/// finalize could count a blob row the sweep has deleted but not yet
/// committed: a ready deploy naming a blob that is gone. SQLite needs no
/// lock: all three run in `BEGIN IMMEDIATE` transactions, which never
/// overlap. The high bits keep the key apart from anyone else's keys.
const ADVISORY_BLOB_SWEEP: i64 = 0x4a53_0003 << 32;

/// Which side of the blob sweep lock a transaction takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SweepLock {
    /// Writes that reference blobs: many at once.
    Reference,
    /// The sweep: alone.
    Sweep,
}

/// After `effective_files`: the files whose blob has no variant rows.
pub(super) const LACKING_VARIANTS: &str = "SELECT f.sha256, COALESCE(b.storage_key, b.sha256) AS key, b.size, f.path \
     FROM effective_files f CROSS JOIN blobs b \
     WHERE b.sha256 = f.sha256 \
       AND NOT EXISTS (SELECT 1 FROM blob_variants v WHERE v.sha256 = f.sha256)";

impl Database {
    /// Takes the blob sweep lock for the rest of `tx` (PostgreSQL; a no-op
    /// on SQLite, see [`ADVISORY_BLOB_SWEEP`]). Call it before the first
    /// statement that reads or writes references, so that statement's
    /// snapshot is taken under the lock.
    pub(super) async fn lock_against_sweep(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        side: SweepLock,
    ) -> anyhow::Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let sql = match side {
            SweepLock::Reference => "SELECT pg_advisory_xact_lock_shared($1)::TEXT",
            SweepLock::Sweep => "SELECT pg_advisory_xact_lock($1)::TEXT",
        };
        sqlx::query(sql)
            .bind(ADVISORY_BLOB_SWEEP)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Hashes per `IN (…)` lookup.
const LOOKUP_BATCH: usize = 500;

/// Blob rows per `INSERT` (four values each, well within both databases'
/// limits on bound values).
const RECORD_BATCH: usize = 250;

/// A blob just stored, to be recorded.
#[derive(Debug, Clone, Copy)]
pub struct StoredBlob<'a> {
    pub sha256: &'a str,
    pub size: i64,
    pub key: &'a str,
}

/// A file of a deploy whose blob has no variants yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BlobToCompress {
    pub sha256: String,
    pub key: String,
    pub size: i64,
    /// A path the blob is served at, which tells its type.
    pub path: String,
}

/// A blob row: its hash, where its bytes are, their size.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordedBlob {
    pub sha256: String,
    pub key: String,
    pub size: i64,
}

impl Database {
    /// The store key of a recorded blob.
    pub async fn blob_key(&self, sha256: &str) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(storage_key, sha256) FROM blobs WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records that the blob's bytes are stored under `key`. False when the
    /// blob was recorded already (a concurrent upload won): `key` then holds
    /// a duplicate the caller deletes.
    pub async fn record_stored_blob(&self, sha256: &str, size: i64, key: &str) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO blobs (sha256, size, created_at, storage_key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(size)
        .bind(now_millis())
        .bind(key)
        .execute(self.writer())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Of `hashes`, those a blob row names: what a bundle need not store.
    pub async fn recorded_blobs_among(&self, hashes: &[&str]) -> anyhow::Result<HashSet<String>> {
        let mut known = HashSet::new();
        for batch in hashes.chunks(LOOKUP_BATCH) {
            let sql = format!(
                "SELECT sha256 FROM blobs WHERE sha256 IN {}",
                super::value_rows(1, batch.len(), 1)
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for hash in batch {
                query = query.bind(*hash);
            }
            known.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(known)
    }

    /// [`Database::record_stored_blob`] for many blobs, in one transaction
    /// and a statement per [`RECORD_BATCH`]: returns the hashes recorded
    /// now; the others were recorded already, and the caller deletes the
    /// copies it stored for them.
    pub async fn record_stored_blobs(&self, blobs: &[StoredBlob<'_>]) -> anyhow::Result<HashSet<String>> {
        let mut recorded = HashSet::new();
        let created_at = now_millis();
        let mut tx = self.writer().begin().await?;
        for batch in blobs.chunks(RECORD_BATCH) {
            let sql = format!(
                "INSERT INTO blobs (sha256, size, created_at, storage_key) VALUES {} \
                 ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
                super::value_rows(batch.len(), 4, 1)
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for blob in batch {
                query = query
                    .bind(blob.sha256)
                    .bind(blob.size)
                    .bind(created_at)
                    .bind(blob.key);
            }
            recorded.extend(query.fetch_all(&mut *tx).await?);
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// The blobs recorded at or after `since` (unix milliseconds), which a
    /// power loss may have torn (`deploys::durability`).
    pub async fn blobs_recorded_since(&self, since: i64) -> anyhow::Result<Vec<RecordedBlob>> {
        Ok(sqlx::query_as(
            "SELECT sha256, COALESCE(storage_key, sha256) AS key, size FROM blobs WHERE created_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets the blob `sha256` stored under `key`, so the next manifest
    /// that names it asks for it again. False if it was recorded under
    /// another key meanwhile.
    pub async fn forget_blob(&self, sha256: &str, key: &str) -> anyhow::Result<bool> {
        let result =
            sqlx::query("DELETE FROM blobs WHERE sha256 = $1 AND COALESCE(storage_key, sha256) = $2")
                .bind(sha256)
                .bind(key)
                .execute(self.writer())
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The files of a deploy whose blobs have no variant rows yet, one row per
    /// file (a blob may appear under several paths).
    pub async fn blobs_lacking_variants(&self, deploy_id: &str) -> anyhow::Result<Vec<BlobToCompress>> {
        Ok(
            sqlx::query_as(&format!("{} {LACKING_VARIANTS}", effective_files(None)))
                .bind(deploy_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Records the `encoding` variant of `sha256`: `Some((variant sha256,
    /// size, key))` when stored, `None` when compressing did not pay.
    /// Returns false when the variant's bytes were recorded already under
    /// another key (the caller then deletes `key`).
    pub async fn record_variant(
        &self,
        sha256: &str,
        encoding: &str,
        variant: Option<(&str, i64, &str)>,
    ) -> anyhow::Result<bool> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        // The variant may be an old blob this makes referenced again.
        self.lock_against_sweep(&mut tx, SweepLock::Reference).await?;
        let mut stored = true;
        if let Some((variant_sha, size, key)) = variant {
            stored = sqlx::query(
                "INSERT INTO blobs (sha256, size, created_at, storage_key) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(variant_sha)
            .bind(size)
            .bind(now)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        }
        sqlx::query(
            "INSERT INTO blob_variants (sha256, encoding, variant_sha256, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256, encoding) DO NOTHING",
        )
        .bind(sha256)
        .bind(encoding)
        .bind(variant.map(|(variant_sha, _, _)| variant_sha))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Removes up to `limit` blobs recorded before `cutoff` that no deploy's
    /// files name, directly or as a variant of a file's blob, and returns
    /// them so their bytes can be deleted. The check and the removal are one
    /// statement in one write transaction that holds the sweep lock
    /// exclusively: a manifest recorded at the same time either names the
    /// blob first (and it stays) or finds it gone (and uploads it again under
    /// a new key), and a finalize never counts a blob this sweep removes.
    pub async fn sweep_unreferenced_blobs(
        &self,
        cutoff: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<RecordedBlob>> {
        let mut tx = self.write_tx().await?;
        self.lock_against_sweep(&mut tx, SweepLock::Sweep).await?;
        // Any row of any deploy counts, also a row a delta above it hides:
        // a removed deploy has no rows, and the bases of the deploys kept
        // are kept too (removing one rebases its children first). Removal
        // rows (sha256 NULL) name no blob and never match.
        let swept: Vec<RecordedBlob> = sqlx::query_as(
            "DELETE FROM blobs WHERE sha256 IN (\
               SELECT b.sha256 FROM blobs b WHERE b.created_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM deploy_files f WHERE f.sha256 = b.sha256) \
               AND NOT EXISTS (SELECT 1 FROM blob_variants v JOIN deploy_files f ON f.sha256 = v.sha256 \
                               WHERE v.variant_sha256 = b.sha256) \
               LIMIT $2) \
             RETURNING sha256, COALESCE(storage_key, sha256) AS key, size",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        // Variant records of blobs that are gone go with them.
        sqlx::query(
            "DELETE FROM blob_variants WHERE NOT EXISTS \
             (SELECT 1 FROM blobs b WHERE b.sha256 = blob_variants.sha256)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(swept)
    }

    /// Of store `keys`, those a blob row names.
    pub async fn known_blob_keys(&self, keys: &[String]) -> anyhow::Result<HashSet<String>> {
        let mut known = HashSet::new();
        let hashes: Vec<&str> = keys
            .iter()
            .map(|k| k.split_once('.').map_or(k.as_str(), |(hash, _)| hash))
            .collect();
        for batch in hashes.chunks(LOOKUP_BATCH) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT COALESCE(storage_key, sha256) FROM blobs WHERE sha256 IN ({})",
                placeholders.join(",")
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for hash in batch {
                query = query.bind(*hash);
            }
            known.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(known)
    }
}
