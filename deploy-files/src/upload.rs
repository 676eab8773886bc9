//! Sending the blobs the controller lacks: the middle of the digest flow.
//!
//! The manifest went first and the controller answered with the hashes it
//! has in no deploy of any site; only those files are sent, several at
//! once. How one is sent (which API, which token, which retries) is the
//! caller's: the runner uploads under its job's lease, `jamstack deploy`
//! with a person's token and a progress bar.

use crate::Manifest;
use futures_util::{StreamExt, TryStreamExt};
use std::future::Future;
use std::path::PathBuf;

/// One blob to send: the file holding the content of `sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub sha256: String,
    pub source: PathBuf,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError<E> {
    #[error("the controller asked for blob {0}, which is not in the manifest sent")]
    UnknownBlob(String),
    #[error("reading the publish directory: {0}")]
    Io(#[from] std::io::Error),
    /// The caller's call failed; the controller's answer is in it.
    #[error(transparent)]
    Controller(E),
}

impl Manifest {
    /// The blobs the controller named as missing, in its order, each with
    /// the size of its file now.
    pub fn blobs_for<E>(&self, missing: &[String]) -> Result<Vec<Blob>, UploadError<E>> {
        missing
            .iter()
            .map(|sha256| {
                let source = self
                    .sources
                    .get(sha256)
                    .ok_or_else(|| UploadError::UnknownBlob(sha256.clone()))?;
                Ok(Blob {
                    sha256: sha256.clone(),
                    source: source.clone(),
                    size: std::fs::metadata(source)?.len(),
                })
            })
            .collect()
    }
}

/// Sends every blob with `put`, `parallel` at once; answers the bytes
/// sent. The first failure stops the rest.
pub async fn upload_blobs<E, F, Fut>(blobs: Vec<Blob>, parallel: usize, put: F) -> Result<u64, UploadError<E>>
where
    F: Fn(Blob) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let put = &put;
    let mut sent = futures_util::stream::iter(blobs)
        .map(|blob| async move {
            let size = blob.size;
            put(blob).await.map(|()| size).map_err(UploadError::Controller)
        })
        .buffer_unordered(parallel.max(1));
    let mut bytes = 0u64;
    while let Some(size) = sent.try_next().await? {
        bytes += size;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn only_the_blobs_the_controller_lacks_are_sent_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.html"), "aaaa").unwrap();
        std::fs::write(dir.path().join("b.html"), "bb").unwrap();
        std::fs::write(dir.path().join("copy.html"), "bb").unwrap();
        let manifest = crate::build_manifest(dir.path()).unwrap();
        let b = manifest
            .files
            .iter()
            .find(|f| f.path == "b.html")
            .unwrap()
            .sha256
            .clone();
        let blobs = manifest.blobs_for::<()>(std::slice::from_ref(&b)).unwrap();
        assert_eq!(blobs.len(), 1);
        assert_eq!(blobs[0].size, 2);
        let sent = Mutex::new(Vec::new());
        let bytes = upload_blobs(blobs, 4, |blob| {
            sent.lock()
                .unwrap()
                .push(std::fs::read_to_string(&blob.source).unwrap());
            async { Ok::<(), ()>(()) }
        })
        .await
        .unwrap();
        assert_eq!(bytes, 2);
        assert_eq!(sent.into_inner().unwrap(), ["bb"]);
    }

    #[test]
    fn a_blob_the_manifest_does_not_hold_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        let manifest = crate::build_manifest(dir.path()).unwrap();
        let error = manifest.blobs_for::<()>(&["0".repeat(64)]).unwrap_err();
        assert!(matches!(error, UploadError::UnknownBlob(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_failed_send_stops_the_upload_with_the_callers_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        let manifest = crate::build_manifest(dir.path()).unwrap();
        let missing: Vec<String> = manifest.sources.keys().cloned().collect();
        let blobs = manifest.blobs_for::<&str>(&missing).unwrap();
        let error = upload_blobs(blobs, 2, |_| async { Err("refused") })
            .await
            .unwrap_err();
        assert!(matches!(error, UploadError::Controller("refused")), "{error}");
    }
}
