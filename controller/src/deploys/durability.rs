//! Blobs a power loss may have torn. The local store writes a received blob
//! without syncing it (see `BlobStore::make_durable`), so a machine that
//! loses power before the deploy goes ready can come back with a blob row
//! whose file is empty or cut short. Such a blob is never part of a ready
//! deploy: every deploy syncs before it goes ready. But the database still
//! says it is stored, and a later manifest would not ask for it again; so
//! each start checks the blobs recorded since the last sync against their
//! hashes and forgets those that no longer match, to be uploaded again.

use super::blob_store::{BlobStore, Durability};
use crate::db::Database;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// Checks the blobs recorded since the store's last sync, forgets the torn
/// ones (row and bytes), then syncs. Returns how many were forgotten.
pub async fn forget_torn_blobs(db: &Database, blobs: &dyn BlobStore) -> anyhow::Result<usize> {
    let since = match blobs.durability().await? {
        Durability::Everything => None,
        Durability::RecordedBefore(time) => Some(time),
    };
    let mut forgotten = 0;
    if let Some(since) = since {
        let suspects = db.blobs_recorded_since(since).await?;
        if !suspects.is_empty() {
            tracing::info!(
                blobs = suspects.len(),
                "checking the blobs stored since the last sync against their hashes"
            );
        }
        for blob in suspects {
            if holds(blobs, &blob.key, &blob.sha256, blob.size).await? {
                continue;
            }
            tracing::warn!(
                blob = %blob.sha256,
                "a blob lost bytes before it was synced (a power loss?); it is forgotten and will be uploaded again"
            );
            db.forget_blob(&blob.sha256, &blob.key).await?;
            blobs.delete(&blob.key).await?;
            forgotten += 1;
        }
    }
    blobs.make_durable().await?;
    Ok(forgotten)
}

/// Whether `key` holds exactly `size` bytes hashing to `sha256`.
async fn holds(blobs: &dyn BlobStore, key: &str, sha256: &str, size: i64) -> std::io::Result<bool> {
    let Some(mut stream) = blobs.get(key, None).await? else {
        return Ok(false);
    };
    let (mut hasher, mut length) = (Sha256::new(), 0i64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        length += chunk.len() as i64;
        hasher.update(&chunk);
    }
    Ok(length == size && hex::encode(hasher.finalize()) == sha256)
}
