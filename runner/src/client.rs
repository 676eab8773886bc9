//! The runner's side of the protocol: the only module that talks HTTP to the
//! controller. Transient failures (the controller restarting, a network
//! blip, a 5xx) are retried with backoff; answers that mean "stop" are not.

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use jamstack_proto::{
    BundleResponse, CommitInfo, ConnectRequest, ConnectResponse, DeployManifest, ErrorBody, FinalizeResponse,
    HeartbeatResponse, JobCompletion, JobLease, JobOutcome, LEASE_HEADER, LeaseRequest, LogAppendResponse,
    ManifestFile, ManifestResponse, PROTOCOL_HEADER, PROTOCOL_VERSION, RegisterRequest, RegisterResponse,
    StepTiming, VersionMismatch, routes,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a call retries transient failures unless told otherwise.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(300);
/// How long handing a job back is retried while the runner shuts down.
const HAND_BACK_RETRY_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The lease is gone: another runner may own the job now.
    #[error("the controller says this runner no longer holds the job's lease")]
    StaleLease,
    #[error("{0}")]
    VersionMismatch(String),
    #[error("the controller refused the request ({status}): {message}")]
    Refused { status: StatusCode, message: String },
    #[error("the controller could not be reached: {0}")]
    Unreachable(String),
    /// A file to send could not be read: trying again would not help.
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable(_) => true,
            ClientError::Refused { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ControllerClient {
    http: reqwest::Client,
    base: String,
    token: String,
    /// How long transient failures are retried before giving up.
    retry_for: Duration,
    /// When set, transient failures are retried past `retry_for` until
    /// this is cancelled (the runner shutting down): a job's calls wait
    /// out a controller outage of any length.
    patient_until: Option<CancellationToken>,
}

enum Payload {
    None,
    Json(serde_json::Value),
    Bytes(Bytes),
    /// A file streamed from disk, reopened on every attempt, so a large
    /// blob never sits in memory whole.
    File(std::path::PathBuf),
}

impl ControllerClient {
    pub fn new(base: &str, token: &str) -> Self {
        ControllerClient {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("a TLS backend is compiled in"),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            retry_for: DEFAULT_RETRY_FOR,
            patient_until: None,
        }
    }

    /// How long transient failures are retried before a call gives up.
    pub fn with_retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// A client whose calls retry transient failures until `until` is
    /// cancelled or for `retry_for`, whichever is longer. A job's calls go
    /// through one: a job does not end because its controller restarted
    /// or was away for a while.
    pub fn patient(&self, until: CancellationToken) -> Self {
        ControllerClient {
            patient_until: Some(until),
            ..self.clone()
        }
    }

    fn keeps_retrying(&self, started: tokio::time::Instant) -> bool {
        started.elapsed() < self.retry_for || self.patient_until.as_ref().is_some_and(|t| !t.is_cancelled())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        lease: Option<&str>,
        payload: Payload,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let started = tokio::time::Instant::now();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_factor(2.0)
            .without_max_times();
        (|| self.call_once(&method, path, lease, &payload, timeout))
            .retry(backoff)
            .when(|e| e.is_transient() && self.keeps_retrying(started))
            .notify(
                |e, retry_in| tracing::warn!(path, error = %e, ?retry_in, "controller call failed; retrying"),
            )
            .await
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        lease: Option<&str>,
        payload: &Payload,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .timeout(timeout);
        if let Some(lease) = lease {
            request = request.header(LEASE_HEADER, lease);
        }
        request = match payload {
            Payload::None => request,
            Payload::Json(value) => request.json(value),
            Payload::Bytes(bytes) => request.body(bytes.clone()),
            Payload::File(path) => match tokio::fs::File::open(path).await {
                Ok(file) => {
                    let length = file.metadata().await.map(|m| m.len()).ok();
                    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
                    let request = request.body(reqwest::Body::wrap_stream(stream));
                    match length {
                        Some(length) => request.header(reqwest::header::CONTENT_LENGTH, length),
                        None => request,
                    }
                }
                Err(e) => {
                    return Err(ClientError::Unreachable(format!(
                        "reading {} to upload it: {e}",
                        path.display()
                    )));
                }
            },
        };
        match request.send().await {
            Ok(response) => Self::read(response).await,
            Err(e) => Err(ClientError::Unreachable(e.to_string())),
        }
    }

    async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<Option<T>, ClientError> {
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status.is_success() {
            return response
                .json::<T>()
                .await
                .map(Some)
                .map_err(|e| ClientError::Unreachable(format!("reading the answer: {e}")));
        }
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::CONFLICT {
            return Err(ClientError::StaleLease);
        }
        if status == StatusCode::UPGRADE_REQUIRED {
            let message = serde_json::from_str::<VersionMismatch>(&text).map_or(text, |m| m.message);
            return Err(ClientError::VersionMismatch(message));
        }
        let message = serde_json::from_str::<ErrorBody>(&text).map_or(text, |b| b.error);
        Err(ClientError::Refused { status, message })
    }

    fn json(value: &impl Serialize) -> Payload {
        Payload::Json(serde_json::to_value(value).expect("protocol types serialize"))
    }

    const SHORT: Duration = Duration::from_secs(30);

    /// Exchanges a registration token for this runner's own token.
    pub async fn register(&self, request: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.call(
            Method::POST,
            routes::runner::register(),
            None,
            Self::json(request),
            Self::SHORT,
        )
        .await?
        .ok_or_else(|| ClientError::Unreachable("empty answer to register".into()))
    }

    pub async fn connect(&self, runner_name: &str) -> Result<ConnectResponse, ClientError> {
        let request = ConnectRequest {
            protocol_version: PROTOCOL_VERSION,
            runner_name: runner_name.to_owned(),
        };
        self.call(
            Method::POST,
            routes::runner::connect(),
            None,
            Self::json(&request),
            Self::SHORT,
        )
        .await?
        .ok_or_else(|| ClientError::Unreachable("empty answer to connect".into()))
    }

    /// Waits up to `wait` for a job.
    pub async fn lease(&self, runner_name: &str, wait: Duration) -> Result<Option<JobLease>, ClientError> {
        let request = LeaseRequest {
            runner_name: runner_name.to_owned(),
            wait_seconds: wait.as_secs(),
        };
        self.call(
            Method::POST,
            routes::runner::lease(),
            None,
            Self::json(&request),
            wait + Self::SHORT,
        )
        .await
    }

    /// Extends the lease; the controller holds the answer up to `wait`
    /// and answers at once if the build is cancelled meanwhile.
    pub async fn heartbeat(
        &self,
        lease: &JobLease,
        wait: Duration,
    ) -> Result<HeartbeatResponse, ClientError> {
        let path = routes::runner::heartbeat(lease.job_id, wait.as_secs());
        self.call(
            Method::POST,
            &path,
            Some(&lease.lease_id),
            Payload::None,
            wait + Self::SHORT,
        )
        .await?
        .ok_or_else(|| ClientError::Unreachable("empty heartbeat answer".into()))
    }

    pub async fn report_commit(&self, lease: &JobLease, info: &CommitInfo) -> Result<(), ClientError> {
        let path = routes::runner::commit(lease.job_id);
        self.call::<serde_json::Value>(
            Method::POST,
            &path,
            Some(&lease.lease_id),
            Self::json(info),
            Self::SHORT,
        )
        .await
        .map(|_| ())
    }

    /// Appends log bytes at `offset`; returns the controller's stored length.
    pub async fn append_log(&self, lease: &JobLease, offset: u64, data: Bytes) -> Result<u64, ClientError> {
        let path = routes::runner::job_log(lease.job_id, offset);
        let answer: Option<LogAppendResponse> = self
            .call(
                Method::POST,
                &path,
                Some(&lease.lease_id),
                Payload::Bytes(data),
                Self::SHORT,
            )
            .await?;
        Ok(answer.map_or(offset, |a| a.stored_length))
    }

    /// Sends a manifest of files alone (no redirect or header rules).
    pub async fn send_manifest(
        &self,
        lease: &JobLease,
        files: Vec<ManifestFile>,
    ) -> Result<ManifestResponse, ClientError> {
        let manifest = DeployManifest {
            files,
            ..DeployManifest::default()
        };
        self.send_deploy_manifest(lease, &manifest).await
    }

    pub async fn send_deploy_manifest(
        &self,
        lease: &JobLease,
        manifest: &DeployManifest,
    ) -> Result<ManifestResponse, ClientError> {
        let path = routes::runner::deploy(lease.job_id);
        self.call(
            Method::POST,
            &path,
            Some(&lease.lease_id),
            Self::json(manifest),
            Duration::from_secs(120),
        )
        .await?
        .ok_or_else(|| ClientError::Unreachable("empty manifest answer".into()))
    }

    pub async fn put_blob(&self, sha256: &str, data: Bytes) -> Result<(), ClientError> {
        let path = routes::runner::blob(sha256);
        self.call::<serde_json::Value>(
            Method::PUT,
            &path,
            None,
            Payload::Bytes(data),
            Duration::from_secs(300),
        )
        .await
        .map(|_| ())
    }

    /// Uploads a blob by streaming the file that holds it.
    pub async fn put_blob_file(&self, sha256: &str, file: &std::path::Path) -> Result<(), ClientError> {
        let path = routes::runner::blob(sha256);
        self.call::<serde_json::Value>(
            Method::PUT,
            &path,
            None,
            Payload::File(file.to_path_buf()),
            Duration::from_secs(600),
        )
        .await
        .map(|_| ())
    }

    /// Sends a bundle of small blobs (a `jamstack_proto::blob_bundle`
    /// body), retried as a whole: storing a blob twice is harmless.
    pub async fn post_blob_bundle(&self, body: Vec<u8>) -> Result<BundleResponse, ClientError> {
        self.call(
            Method::POST,
            routes::runner::BLOB_BUNDLES,
            None,
            Payload::Bytes(Bytes::from(body)),
            Duration::from_secs(600),
        )
        .await?
        .ok_or_else(|| ClientError::Unreachable("empty answer to a blob bundle".into()))
    }

    pub async fn finalize(&self, lease: &JobLease) -> Result<FinalizeResponse, ClientError> {
        let path = routes::runner::finalize(lease.job_id);
        // Finalizing makes the compressed variants of new files: allow it
        // the time a large deploy needs.
        self.call(
            Method::POST,
            &path,
            Some(&lease.lease_id),
            Payload::None,
            Duration::from_secs(600),
        )
        .await?
        .ok_or_else(|| ClientError::Unreachable("empty finalize answer".into()))
    }

    /// Hands the job back to the queue (the runner is shutting down). Tried
    /// briefly: the runner is on its way out, and if the controller cannot
    /// be reached the lease runs out and the reaper requeues the job.
    pub async fn hand_back(&self, lease: &JobLease) -> Result<(), ClientError> {
        let path = routes::runner::hand_back(lease.job_id);
        let brief = ControllerClient {
            retry_for: HAND_BACK_RETRY_FOR,
            patient_until: None,
            ..self.clone()
        };
        brief
            .call::<serde_json::Value>(
                Method::POST,
                &path,
                Some(&lease.lease_id),
                Payload::None,
                Self::SHORT,
            )
            .await
            .map(|_| ())
    }

    /// Reports how the job ended, with the timings of the steps it ran.
    pub async fn complete(
        &self,
        lease: &JobLease,
        outcome: &JobOutcome,
        step_timings: &[StepTiming],
    ) -> Result<(), ClientError> {
        let path = routes::runner::complete(lease.job_id);
        let completion = JobCompletion {
            outcome: outcome.clone(),
            step_timings: step_timings.to_vec(),
        };
        self.call::<serde_json::Value>(
            Method::POST,
            &path,
            Some(&lease.lease_id),
            Self::json(&completion),
            Self::SHORT,
        )
        .await
        .map(|_| ())
    }
}
