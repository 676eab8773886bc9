//! Uploading a build's publish directory to the controller under the job's
//! lease: Netlify's digest flow.
//!
//! The manifest (path, SHA-256, size, mode of every file, made by
//! [`jamstack_deploy_files`]) goes first; the controller answers with the
//! hashes it lacks across all deploys and sites; only those blobs are sent;
//! then the deploy is finalized.

use crate::client::{ClientError, ControllerClient};
pub use jamstack_deploy_files::{Manifest, ManifestError, build_manifest};
use jamstack_proto::{FinalizeResponse, JobLease, ManifestResponse};
use std::time::{Duration, Instant};

/// Blobs uploaded at once.
const PARALLEL_UPLOADS: usize = 8;

/// Why an upload failed; [`UploadError::Controller`] holds the
/// controller's answer, a lost lease among them.
pub type UploadError = jamstack_deploy_files::upload::UploadError<ClientError>;

/// What an upload did, for the build log.
#[derive(Debug)]
pub struct Uploaded {
    pub files: usize,
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    pub finalized: FinalizeResponse,
    pub timings: UploadTimings,
}

/// How long each step of an upload took, so a slow deploy shows where.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadTimings {
    /// Sending the manifest until the controller named the missing blobs.
    pub manifest: Duration,
    /// Uploading the missing blobs.
    pub blobs: Duration,
    /// Finalizing.
    pub finalize: Duration,
}

/// Sends the manifest: only the changes since the folder's last deploy when
/// that is known, and every file when it is not or the controller cannot
/// use that deploy.
async fn send_manifest(
    client: &ControllerClient,
    lease: &JobLease,
    manifest: &mut Manifest,
) -> Result<ManifestResponse, UploadError> {
    if let Some(changes) = manifest.changes() {
        match client.send_deploy_manifest(lease, &changes).await {
            Err(ClientError::Refused { status, message })
                if status == reqwest::StatusCode::PRECONDITION_FAILED =>
            {
                tracing::info!(%message, "sending every file instead of the changes");
            }
            answer => return answer.map_err(UploadError::Controller),
        }
    }
    // The manifest keeps its sources, all that finding the blobs needs.
    let wire = manifest.take_wire();
    client
        .send_deploy_manifest(lease, &wire)
        .await
        .map_err(UploadError::Controller)
}

/// Sends the manifest, uploads the blobs the controller lacks, finalizes.
pub async fn upload(
    client: &ControllerClient,
    lease: &JobLease,
    mut manifest: Manifest,
) -> Result<Uploaded, UploadError> {
    let files = manifest.files.len();
    let step = Instant::now();
    let answer = send_manifest(client, lease, &mut manifest).await?;
    let mut timings = UploadTimings {
        manifest: step.elapsed(),
        ..UploadTimings::default()
    };
    let step = Instant::now();
    let blobs = manifest.blobs_for(&answer.missing)?;
    let uploaded_bytes = jamstack_deploy_files::upload::upload_blobs(
        blobs,
        PARALLEL_UPLOADS,
        |blob| async move { client.put_blob_file(&blob.sha256, &blob.source).await },
        |bundle| async move {
            let body = tokio::task::spawn_blocking(move || bundle.body())
                .await
                .map_err(|e| ClientError::Local(format!("reading the publish directory: {e}")))?
                .map_err(|e| ClientError::Local(format!("reading the publish directory: {e}")))?;
            client.post_blob_bundle(body).await.map(|_| ())
        },
    )
    .await?;
    timings.blobs = step.elapsed();
    let step = Instant::now();
    let finalized = client.finalize(lease).await.map_err(UploadError::Controller)?;
    timings.finalize = step.elapsed();
    manifest.record_deploy(&finalized.deploy_id);
    Ok(Uploaded {
        files,
        uploaded_blobs: answer.missing.len(),
        uploaded_bytes,
        finalized,
        timings,
    })
}
