//! Sending the blobs the controller lacks: the middle of the digest flow.
//!
//! The manifest went first and the controller answered with the hashes it
//! has in no deploy of any site; only those files are sent, several
//! requests at once, the small ones many to a request ([`Bundle`]). How one is sent (which API, which token, which retries) is the
//! caller's: the runner uploads under its job's lease, `jamstack deploy`
//! with a person's token and a progress bar.

use crate::Manifest;
use futures_util::{StreamExt, TryStreamExt};
use jamstack_proto::blob_bundle;
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

/// Small blobs, sent together in one request (`jamstack_proto::blob_bundle`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bundle {
    pub blobs: Vec<Blob>,
}

impl Bundle {
    /// The bytes of all its blobs.
    pub fn size(&self) -> u64 {
        self.blobs.iter().map(|blob| blob.size).sum()
    }

    /// The request body: each blob's frame, its file read now. Blocking:
    /// call it off the async threads. A file that grew past what a bundle
    /// may carry since it was hashed is an error here, not at the
    /// controller.
    pub fn body(&self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::with_capacity(self.blobs.iter().map(|b| blob_bundle::frame_len(b.size)).sum());
        for blob in &self.blobs {
            let bytes = std::fs::read(&blob.source)?;
            if bytes.len() as u64 > blob_bundle::MAX_BUNDLED_BLOB {
                return Err(std::io::Error::other(format!(
                    "{} changed while it was being deployed; deploy again",
                    blob.source.display()
                )));
            }
            blob_bundle::push_frame(&mut body, &blob.sha256, &bytes);
        }
        Ok(body)
    }
}

/// What one request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shipment {
    /// A blob larger than a bundle may carry, streamed on its own.
    One(Blob),
    Bundle(Bundle),
}

/// The bundle body a client aims for: big enough that a request's own cost
/// is small beside its blobs, small enough that several are in flight at
/// once for a site of a few megabytes.
const BUNDLE_TARGET_BYTES: usize = 2 * 1024 * 1024;

/// Groups `blobs` into requests: every blob a bundle may carry into
/// bundles of about [`BUNDLE_TARGET_BYTES`] (and at most
/// `blob_bundle::MAX_BUNDLE_BLOBS` blobs), the others on their own.
pub fn shipments(blobs: Vec<Blob>) -> Vec<Shipment> {
    let mut shipments = Vec::new();
    let mut bundle = Bundle::default();
    let mut bundle_bytes = 0;
    for blob in blobs {
        if blob.size > blob_bundle::MAX_BUNDLED_BLOB {
            shipments.push(Shipment::One(blob));
            continue;
        }
        let frame = blob_bundle::frame_len(blob.size);
        if !bundle.blobs.is_empty()
            && (bundle_bytes + frame > BUNDLE_TARGET_BYTES
                || bundle.blobs.len() == blob_bundle::MAX_BUNDLE_BLOBS)
        {
            shipments.push(Shipment::Bundle(std::mem::take(&mut bundle)));
            bundle_bytes = 0;
        }
        bundle_bytes += frame;
        bundle.blobs.push(blob);
    }
    if !bundle.blobs.is_empty() {
        shipments.push(Shipment::Bundle(bundle));
    }
    shipments
}

/// Sends every blob, small ones bundled with `put_bundle` and the others
/// with `put_one`, `parallel` requests at once; answers the bytes sent.
/// The first failure stops the rest.
pub async fn upload_blobs<E, One, OneFut, Many, ManyFut>(
    blobs: Vec<Blob>,
    parallel: usize,
    put_one: One,
    put_bundle: Many,
) -> Result<u64, UploadError<E>>
where
    One: Fn(Blob) -> OneFut,
    OneFut: Future<Output = Result<(), E>>,
    Many: Fn(Bundle) -> ManyFut,
    ManyFut: Future<Output = Result<(), E>>,
{
    let (put_one, put_bundle) = (&put_one, &put_bundle);
    let mut sent = futures_util::stream::iter(shipments(blobs))
        .map(|shipment| async move {
            match shipment {
                Shipment::One(blob) => {
                    let size = blob.size;
                    put_one(blob).await.map(|()| size)
                }
                Shipment::Bundle(bundle) => {
                    let size = bundle.size();
                    put_bundle(bundle).await.map(|()| size)
                }
            }
            .map_err(UploadError::Controller)
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
        let bytes = upload_blobs(
            blobs,
            4,
            |_| async { Err::<(), ()>(()) },
            |bundle| {
                sent.lock().unwrap().push(bundle.body().unwrap());
                async { Ok::<(), ()>(()) }
            },
        )
        .await
        .unwrap();
        assert_eq!(bytes, 2);
        let sent = sent.into_inner().unwrap();
        assert_eq!(sent.len(), 1);
        let frames = blob_bundle::parse(&sent[0]).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].sha256, b);
        assert_eq!(&sent[0][frames[0].bytes.clone()], b"bb");
    }

    fn blob(n: usize, size: u64) -> Blob {
        Blob {
            sha256: format!("{n:064x}"),
            source: PathBuf::from(format!("file-{n}")),
            size,
        }
    }

    #[test]
    fn small_blobs_travel_in_bundles_of_about_two_megabytes_and_large_ones_alone() {
        let large = blob_bundle::MAX_BUNDLED_BLOB + 1;
        let mut blobs: Vec<Blob> = (0..600).map(|n| blob(n, 10_000)).collect();
        blobs.insert(7, blob(1000, large));
        blobs.push(blob(1001, blob_bundle::MAX_BUNDLED_BLOB));
        let shipments = shipments(blobs);

        let ones: Vec<&Blob> = shipments
            .iter()
            .filter_map(|s| match s {
                Shipment::One(blob) => Some(blob),
                Shipment::Bundle(_) => None,
            })
            .collect();
        assert_eq!(ones.len(), 1);
        assert_eq!(ones[0].size, large);
        let bundles: Vec<&Bundle> = shipments
            .iter()
            .filter_map(|s| match s {
                Shipment::Bundle(bundle) => Some(bundle),
                Shipment::One(_) => None,
            })
            .collect();
        // 208 frames of 10,071 bytes fill 2 MiB; the largest blob a bundle
        // may carry does not fit beside the last 184.
        let counts: Vec<usize> = bundles.iter().map(|b| b.blobs.len()).collect();
        assert_eq!(counts, [208, 208, 184, 1]);
        for bundle in bundles {
            let body: usize = bundle.blobs.iter().map(|b| blob_bundle::frame_len(b.size)).sum();
            assert!(body <= BUNDLE_TARGET_BYTES, "{body}");
        }
    }

    #[test]
    fn a_bundle_holds_at_most_the_blobs_the_controller_takes_in_one() {
        let blobs: Vec<Blob> = (0..2_500).map(|n| blob(n, 1)).collect();
        let counts: Vec<usize> = shipments(blobs)
            .iter()
            .map(|s| match s {
                Shipment::Bundle(bundle) => bundle.blobs.len(),
                Shipment::One(_) => panic!("a 1-byte blob went alone"),
            })
            .collect();
        assert_eq!(counts, [1024, 1024, 452]);
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
        let error = upload_blobs(
            blobs,
            2,
            |_| async { Err("refused") },
            |_| async { Err("refused") },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, UploadError::Controller("refused")), "{error}");
    }
}
