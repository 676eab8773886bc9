//! Receiving a blob: its bytes stream to a temporary file while they are
//! hashed and counted, so a large file never sits in memory and a file over
//! the size limit is refused as soon as it crosses it.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// A received file, deleted when dropped.
#[derive(Debug)]
pub struct Staged {
    pub file: tempfile::TempPath,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("the file is larger than the limit of {limit} bytes for one file")]
    TooLarge { limit: u64 },
    #[error("the upload broke off: {0}")]
    Body(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Writes `body` to a new file in `dir`, refusing it once it passes `limit`.
pub async fn stage<S, E>(dir: &Path, body: S, limit: u64) -> Result<Staged, StageError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    tokio::fs::create_dir_all(dir).await?;
    let (file, path) = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)?
        .into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    tokio::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StageError::Body(e.to_string()))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(StageError::TooLarge { limit });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    // Not synced here: the blob store makes a deploy's blobs durable at
    // once before it goes ready (`BlobStore::make_durable`), and a blob torn
    // by a power loss before that is found by its hash at the next start.
    file.flush().await?;
    Ok(Staged {
        file: path,
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + use<> {
        let parts: Vec<_> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures_util::stream::iter(parts)
    }

    #[tokio::test]
    async fn a_received_file_is_hashed_as_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let staged = stage(dir.path(), chunks(&[b"hel", b"lo"]), 10).await.unwrap();
        assert_eq!(staged.sha256, super::super::blob_store::sha256_hex(b"hello"));
        assert_eq!(staged.size, 5);
        assert_eq!(std::fs::read(&staged.file).unwrap(), b"hello");
        let path = staged.file.to_path_buf();
        drop(staged);
        assert!(!path.exists(), "the temporary file goes with the value");
    }

    #[tokio::test]
    async fn a_file_over_the_limit_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = stage(dir.path(), chunks(&[b"12345", b"678"]), 6)
            .await
            .unwrap_err();
        assert!(matches!(err, StageError::TooLarge { limit: 6 }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
