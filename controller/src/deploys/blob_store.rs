//! Where blob bytes live. One interface; a local directory is the default.

use axum::body::Body;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Why a blob was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error(
        "the content hashes to {actual}, not to {expected}: the upload was corrupted or named the wrong blob"
    )]
    HashMismatch { expected: String, actual: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Content-addressed storage: a blob is named by the SHA-256 of its bytes.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `sha256` after checking that they hash to it.
    /// Storing a blob that is already there is a no-op.
    async fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), PutError>;

    /// A streaming body of the blob, or `None` if it is not stored.
    async fn open(&self, sha256: &str) -> std::io::Result<Option<Body>>;
}

/// Blobs as files under `<root>/<first two hex>/<hash>`.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBlobStore { root: root.into() }
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), PutError> {
        let actual = sha256_hex(bytes);
        if actual != sha256 {
            return Err(PutError::HashMismatch {
                expected: sha256.to_owned(),
                actual,
            });
        }
        let path = self.path_of(sha256);
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await?;
        // Write to a unique temporary name and rename: a reader sees either
        // no blob or the whole blob, and concurrent uploads of the same blob
        // cannot interleave.
        let temp = dir.join(format!(".{sha256}.{}.tmp", crate::auth::random_hex(8)));
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp, &path).await?;
        Ok(())
    }

    async fn open(&self, sha256: &str) -> std::io::Result<Option<Body>> {
        match tokio::fs::File::open(self.path_of(sha256)).await {
            Ok(file) => Ok(Some(Body::from_stream(tokio_util::io::ReaderStream::new(file)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blob_whose_bytes_do_not_match_its_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path());
        let wrong = sha256_hex(b"something else");
        let err = store.put(&wrong, b"hello").await.unwrap_err();
        assert!(matches!(err, PutError::HashMismatch { .. }), "{err}");
        assert!(store.open(&wrong).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_stored_blob_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path());
        let hash = sha256_hex(b"hello");
        store.put(&hash, b"hello").await.unwrap();
        store.put(&hash, b"hello").await.unwrap();
        let body = store.open(&hash).await.unwrap().unwrap();
        let bytes = axum::body::to_bytes(body, 1024).await.unwrap();
        assert_eq!(&bytes[..], b"hello");
    }
}
