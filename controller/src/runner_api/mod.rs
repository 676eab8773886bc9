//! The runner protocol's server side (see `jamstack_proto` for the flow).
//!
//! Every handler but `connect` and `lease` works on one job and is fenced by
//! its lease: a call whose lease is not the job's live lease gets 409 and
//! changes nothing, so a runner that lost its lease cannot log, upload into
//! or publish a build that now belongs to another runner.

use crate::auth::{Runner, random_hex};
use crate::db::{Build, BuildState, FinalizeOutcome};
use crate::deploys::{self, blob_store::PutError};
use crate::error::{AppError, AppResult, bad_request, conflict, not_found};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jamstack_proto::{
    BuildContext, CacheRef, CommitInfo, ConnectRequest, ConnectResponse, DeployManifest, EnvVar,
    FinalizeResponse, HeartbeatResponse, JobLease, JobOutcome, LEASE_HEADER, LeaseRequest, LogAppendResponse,
    ManifestResponse, PROTOCOL_VERSION, SiteBuildSettings,
};
use serde::Deserialize;
use std::time::Duration;

/// The largest log batch one call may append.
pub const MAX_LOG_BATCH: usize = 4 * 1024 * 1024;
/// The largest single file a deploy may hold.
pub const MAX_BLOB_SIZE: usize = 256 * 1024 * 1024;

pub async fn connect(_: Runner, Json(request): Json<ConnectRequest>) -> Json<ConnectResponse> {
    tracing::info!(runner = %request.runner_name, "runner connected");
    Json(ConnectResponse {
        protocol_version: PROTOCOL_VERSION,
        heartbeat_seconds: 0,
    })
}

/// `connect`, with the heartbeat interval the controller is configured for.
pub async fn connect_with_state(
    State(state): State<AppState>,
    runner: Runner,
    request: Json<ConnectRequest>,
) -> Json<ConnectResponse> {
    let Json(mut answer) = connect(runner, request).await;
    answer.heartbeat_seconds = state.config.heartbeat_interval.as_secs().max(1);
    Json(answer)
}

/// Long-polls for a job: answers 200 with a lease as soon as one is queued,
/// or 204 when none came within the wait.
pub async fn lease(
    State(state): State<AppState>,
    runner: Runner,
    Json(request): Json<LeaseRequest>,
) -> AppResult<Response> {
    let wait = Duration::from_secs(request.wait_seconds).min(state.config.max_lease_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let lease_millis = state.config.lease_duration.as_millis() as i64;
    loop {
        // Listen before looking, so a job queued in between still wakes us.
        let notified = state.jobs_available.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let lease_id = random_hex(16);
        if let Some(job) = state
            .db
            .claim_next_job(&request.runner_name, &lease_id, lease_millis)
            .await?
        {
            let build = state
                .db
                .build(job.build_id)
                .await?
                .ok_or_else(|| not_found("leased build vanished"))?;
            let site = state
                .db
                .site_by_id(build.site_id)
                .await?
                .ok_or_else(|| not_found("site vanished"))?;
            tracing::info!(job = job.job_id, build = build.id, runner = %request.runner_name, token = %runner.token_name, attempt = job.attempt, "job leased");
            let settings = lease_settings(&state, site.id).await?;
            let trusted = is_trusted(&build);
            let lease = JobLease {
                job_id: job.job_id,
                lease_id: job.lease_id,
                build_id: build.id,
                attempt: job.attempt as u32,
                site: site.name,
                repo_url: site.repo_url,
                commit_sha: build.commit_sha,
                branch: build.branch,
                context: build.context,
                pr_number: build.pr_number.map(|n| n as u64),
                lease_seconds: state.config.lease_duration.as_secs(),
                trusted,
                settings,
                // Filled by the GitHub App integration for private
                // repositories; sites cloned from public URLs need none.
                git_token: None,
            };
            return Ok(Json(lease).into_response());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        // Wake on a new job, or look again after a while in case another
        // controller on the same database queued one.
        let _ = tokio::time::timeout((deadline - now).min(Duration::from_secs(2)), notified).await;
    }
}

/// Whether a build's code may see the site's secrets and production cache.
/// Deploy previews count as untrusted until pull requests say whether they
/// come from a fork, so a fork's code never sees a secret by default.
fn is_trusted(build: &Build) -> bool {
    build.context != BuildContext::DeployPreview
}

/// The site's build settings as a lease carries them.
async fn lease_settings(state: &AppState, site_id: i64) -> AppResult<SiteBuildSettings> {
    let settings = state.db.site_build_settings(site_id).await?;
    let environment = state
        .db
        .site_env_vars(site_id)
        .await?
        .into_iter()
        .map(|var| EnvVar {
            name: var.name,
            value: var.value,
            secret: var.secret,
        })
        .collect();
    let limits = settings.limits;
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(SiteBuildSettings {
        timeout_seconds: positive(limits.timeout_seconds),
        memory_mib: positive(limits.memory_mib),
        cpus: limits.cpu_millis.map(|m| m as f64 / 1000.0),
        pids: positive(limits.pids),
        environment,
        cache: CacheRef {
            key: state.cache_key(site_id),
            generation: u64::try_from(settings.cache_generation).unwrap_or(0),
        },
    })
}

fn lease_header(headers: &HeaderMap) -> AppResult<&str> {
    headers
        .get(LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_request(format!("missing {LEASE_HEADER} header")))
}

fn stale_lease(job_id: i64) -> AppError {
    conflict(format!(
        "the lease on job {job_id} is no longer live (expired, reassigned or finished); stop working on it"
    ))
}

/// The job's build and attempt, if the request holds the live lease.
async fn live_lease(state: &AppState, job_id: i64, headers: &HeaderMap) -> AppResult<(i64, i64)> {
    let lease_id = lease_header(headers)?;
    state
        .db
        .check_lease(job_id, lease_id)
        .await?
        .ok_or_else(|| stale_lease(job_id))
}

#[derive(Debug, Default, Deserialize)]
pub struct HeartbeatQuery {
    /// Hold the answer this long unless the build is cancelled meanwhile.
    #[serde(default)]
    pub wait_seconds: u64,
}

/// Extends the lease, then waits (up to `wait_seconds`, at most the
/// heartbeat interval) and answers as soon as the build is cancelled.
pub async fn heartbeat(
    State(state): State<AppState>,
    _: Runner,
    Path(job_id): Path<i64>,
    Query(query): Query<HeartbeatQuery>,
    headers: HeaderMap,
) -> AppResult<Json<HeartbeatResponse>> {
    let lease_id = lease_header(&headers)?;
    let lease_millis = state.config.lease_duration.as_millis() as i64;
    let cancel = state
        .db
        .extend_lease(job_id, lease_id, lease_millis)
        .await?
        .ok_or_else(|| stale_lease(job_id))?;
    let wait = Duration::from_secs(query.wait_seconds).min(state.config.heartbeat_interval);
    let deadline = tokio::time::Instant::now() + wait;
    if cancel {
        return Ok(Json(HeartbeatResponse { cancel }));
    }
    loop {
        // Listen before looking, so a cancel in between still wakes us.
        let notified = state.cancellations.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Json(HeartbeatResponse { cancel: false }));
        }
        // Look again every second or so in case another controller on the
        // same database took the cancel.
        let _ = tokio::time::timeout((deadline - now).min(Duration::from_secs(1)), notified).await;
        match state.db.cancel_requested(job_id, lease_id).await? {
            Some(true) => return Ok(Json(HeartbeatResponse { cancel: true })),
            Some(false) => {}
            None => return Err(stale_lease(job_id)),
        }
    }
}

pub async fn commit(
    State(state): State<AppState>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(info): Json<CommitInfo>,
) -> AppResult<StatusCode> {
    let (build_id, _) = live_lease(&state, job_id, &headers).await?;
    if !jamstack_proto::is_full_commit_sha(&info.sha) {
        return Err(bad_request(format!("`{}` is not a full commit id", info.sha)));
    }
    state
        .db
        .record_build_commit(build_id, &info.sha, &info.message, &info.author)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct LogOffset {
    pub offset: i64,
}

pub async fn append_log(
    State(state): State<AppState>,
    _: Runner,
    Path(job_id): Path<i64>,
    Query(LogOffset { offset }): Query<LogOffset>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Json<LogAppendResponse>> {
    let (build_id, attempt) = live_lease(&state, job_id, &headers).await?;
    let stored = state.db.append_log(build_id, attempt, offset, &body).await?;
    Ok(Json(LogAppendResponse {
        stored_length: stored as u64,
    }))
}

pub async fn create_deploy(
    State(state): State<AppState>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(manifest): Json<DeployManifest>,
) -> AppResult<Json<ManifestResponse>> {
    let (build_id, _) = live_lease(&state, job_id, &headers).await?;
    deploys::validate_manifest(&manifest.files).map_err(|e| bad_request(e.to_string()))?;
    let build = state
        .db
        .build(build_id)
        .await?
        .ok_or_else(|| not_found("build vanished"))?;
    let deploy = state
        .db
        .upsert_build_deploy(&deploys::new_deploy_id(), &build, &manifest.files)
        .await?;
    let mut hashes: Vec<String> = manifest.files.iter().map(|f| f.sha256.clone()).collect();
    hashes.sort();
    hashes.dedup();
    let missing = state.db.missing_blobs(&hashes).await?;
    tracing::info!(build = build_id, deploy = %deploy.id, files = manifest.files.len(), missing = missing.len(), "manifest received");
    Ok(Json(ManifestResponse {
        deploy_id: deploy.id,
        missing,
    }))
}

pub async fn put_blob(
    State(state): State<AppState>,
    _: Runner,
    Path(sha256): Path<String>,
    body: Bytes,
) -> AppResult<StatusCode> {
    if !deploys::is_sha256_hex(&sha256) {
        return Err(bad_request(format!("`{sha256}` is not a lowercase hex SHA-256")));
    }
    match state.blobs.put(&sha256, &body).await {
        Ok(()) => {}
        Err(e @ PutError::HashMismatch { .. }) => return Err(bad_request(e.to_string())),
        Err(PutError::Io(e)) => return Err(anyhow::Error::from(e).context("storing a blob").into()),
    }
    state.db.record_blob(&sha256, body.len() as i64).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn finalize_deploy(
    State(state): State<AppState>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
) -> AppResult<Json<FinalizeResponse>> {
    let (build_id, _) = live_lease(&state, job_id, &headers).await?;
    let lease_id = lease_header(&headers)?;
    let deploy = state
        .db
        .deploy_of_build(build_id)
        .await?
        .ok_or_else(|| bad_request("no manifest was sent for this job; send it before finalizing"))?;
    let context = BuildContext::parse(&deploy.context).unwrap_or(BuildContext::Production);
    let alias = deploys::alias_for(context, &deploy.branch, deploy.pr_number);
    match state
        .db
        .finalize_deploy(&deploy.id, job_id, lease_id, alias.as_deref())
        .await?
    {
        FinalizeOutcome::Ready { published } => {
            let site = state
                .db
                .site_by_id(deploy.site_id)
                .await?
                .ok_or_else(|| not_found("site vanished"))?;
            tracing::info!(build = build_id, deploy = %deploy.id, published, "deploy ready");
            Ok(Json(FinalizeResponse {
                permalink: state.site_url(&format!("{}--{}", deploy.id, site.name)),
                alias_url: alias.map(|a| state.site_url(&format!("{a}--{}", site.name))),
                deploy_id: deploy.id,
                published,
            }))
        }
        FinalizeOutcome::MissingBlobs(count) => Err(bad_request(format!(
            "{count} file(s) of the manifest have no uploaded content yet; upload every missing blob, then finalize"
        ))),
        FinalizeOutcome::StaleLease => Err(stale_lease(job_id)),
        FinalizeOutcome::NotFound => Err(not_found("deploy vanished")),
    }
}

pub async fn complete(
    State(state): State<AppState>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(outcome): Json<JobOutcome>,
) -> AppResult<StatusCode> {
    let lease_id = lease_header(&headers)?;
    let (state_after, exit_code, error, deploy_id) = match &outcome {
        JobOutcome::Succeeded { deploy_id } => {
            (BuildState::Succeeded, Some(0), None, Some(deploy_id.as_str()))
        }
        JobOutcome::Failed { exit_code, message } => {
            (BuildState::Failed, *exit_code, Some(message.as_str()), None)
        }
        JobOutcome::Cancelled => (BuildState::Cancelled, None, None, None),
    };
    if !state
        .db
        .finish_job(job_id, lease_id, state_after, exit_code, error, deploy_id)
        .await?
    {
        return Err(stale_lease(job_id));
    }
    tracing::info!(job = job_id, outcome = state_after.as_str(), "job finished");
    Ok(StatusCode::NO_CONTENT)
}
