//! The runner protocol's server side (see `jamstack_proto` for the flow).
//!
//! Every handler but `connect` and `lease` works on one job and is fenced by
//! its lease: a call whose lease is not the job's live lease gets 409 and
//! changes nothing, so a runner that lost its lease cannot log, upload into
//! or publish a build that now belongs to another runner. What a lease is
//! and how it is held is `crate::leases`; this is its HTTP side.

use crate::auth::Auth;
use crate::auth::{Runner, SpeaksProtocol, hash_token, new_token};
use crate::builds::Queue;
use crate::config::Config;
use crate::db::Database;
use crate::db::TokenKind;
use crate::deploys::Deploys;
use crate::deploys::intake::{self, BuildDeployFinalized};
use crate::error::unauthorized;
use crate::error::{AppError, AppResult, bad_request};
use crate::github::GitHubService;
use crate::leases::{self, LeaseError, LiveLease};
use crate::metrics::Metrics;
use crate::notifications::Notifications;
use crate::secrets::SecretBox;
use crate::state::Installation;
use crate::urls::Urls;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jamstack_proto::{
    BundleResponse, CommitInfo, ConnectRequest, ConnectResponse, DeployManifest, FinalizeResponse,
    HeartbeatResponse, JobCompletion, LEASE_HEADER, LeaseRequest, LogAppendResponse, ManifestResponse,
    PROTOCOL_VERSION, RegisterRequest, RegisterResponse,
};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The largest log batch one call may append.
pub const MAX_LOG_BATCH: usize = 4 * 1024 * 1024;

/// The largest registration body: a name, labels, a slot count and the
/// registration token fit in far less. It is read before anything is
/// authenticated, so anyone can send one.
pub const MAX_REGISTER_BODY: usize = 16 * 1024;

/// Reads a registration: at most [`MAX_REGISTER_BODY`] bytes (the route's
/// limit) within the listener's body timeout.
async fn read_registration(limit: Duration, request: Request) -> AppResult<RegisterRequest> {
    let read = tokio::time::timeout(limit, Bytes::from_request(request, &()))
        .await
        .map_err(|_| {
            AppError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the registration did not arrive within {} seconds; send it at once",
                    limit.as_secs()
                ),
            )
        })?;
    let body = read.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a registration is at most {} KiB of JSON (name, labels, slots, registration token); \
                     this one is larger",
                    MAX_REGISTER_BODY / 1024
                ),
            )
        } else {
            AppError::new(rejection.status(), rejection.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "the registration is not the protocol's JSON (name, labels, slots, registration_token): {e}"
        ))
    })
}

/// Exchanges a registration token for the runner's own token.
pub async fn register(
    State(config): State<Arc<Config>>,
    State(db): State<Database>,
    _: SpeaksProtocol,
    body: Request,
) -> AppResult<(StatusCode, Json<RegisterResponse>)> {
    let request = read_registration(config.http.body_read_timeout, body).await?;
    let valid = db
        .token_name(TokenKind::Registration, &hash_token(&request.registration_token))
        .await?
        .is_some();
    if !valid {
        return Err(unauthorized(
            "the registration token is unknown or was replaced; \
             `jamstack-controller token registration` prints a new one",
        ));
    }
    let name = request.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(bad_request("a runner needs a name of 1 to 100 characters"));
    }
    if !(1..=64).contains(&request.slots) {
        return Err(bad_request("slots must be between 1 and 64"));
    }
    let token = new_token(TokenKind::Runner);
    let runner = db
        .register_runner(
            name,
            &request.labels,
            i64::from(request.slots),
            &hash_token(&token),
        )
        .await?;
    tracing::info!(runner = %runner.name, id = runner.id, labels = ?runner.labels, "runner registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            runner_id: runner.id,
            token,
        }),
    ))
}

pub async fn connect(
    State(auth): State<Auth>,
    State(config): State<Arc<Config>>,
    State(db): State<Database>,
    Runner(runner): Runner,
    Json(request): Json<ConnectRequest>,
) -> AppResult<Json<ConnectResponse>> {
    tracing::info!(runner = %runner.name, id = runner.id, version = request.protocol_version, "runner connected");
    if let Some(at) = db.touch_runner(&runner).await? {
        auth.known_runners.seen(runner.id, at);
    }
    Ok(Json(ConnectResponse {
        protocol_version: PROTOCOL_VERSION,
        heartbeat_seconds: config.heartbeat_interval.as_secs().max(1),
    }))
}

/// Long-polls for a job: answers 200 with a lease as soon as one this runner
/// may run is queued, or 204 when none came within the wait.
#[tracing::instrument(name = "lease", skip_all, fields(runner = %runner.name, build_id = tracing::field::Empty))]
pub async fn lease(
    State(auth): State<Auth>,
    State(github): State<GitHubService>,
    State(installation): State<Installation>,
    State(queue): State<Queue>,
    State(secrets): State<Arc<SecretBox>>,
    Runner(runner): Runner,
    Json(request): Json<LeaseRequest>,
) -> AppResult<Response> {
    let wait = Duration::from_secs(request.wait_seconds).min(queue.config.max_lease_wait);
    let deadline = tokio::time::Instant::now() + wait;
    if let Some(at) = queue.db.touch_runner(&runner).await? {
        auth.known_runners.seen(runner.id, at);
    }
    let Some(claimed) = leases::wait_for_job(&queue, &runner, deadline).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let git_token = crate::github::clone_token_for(&github, &claimed.site).await;
    let site_id = claimed.site.id;
    let settings =
        leases::build_settings(&queue.db, &secrets, site_id, installation.cache_key(site_id)).await?;
    let cached_commit = leases::cached_commit(&queue.db, &claimed).await?;
    let lease = claimed.into_lease(queue.config.lease_duration, settings, git_token, cached_commit);
    Ok(Json(lease).into_response())
}

fn lease_header(headers: &HeaderMap) -> AppResult<&str> {
    headers
        .get(LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_request(format!("missing {LEASE_HEADER} header")))
}

/// The job's build and attempt, if the request holds the live lease.
async fn live_lease(db: &Database, job_id: i64, headers: &HeaderMap) -> AppResult<LiveLease> {
    Ok(leases::check(db, job_id, lease_header(headers)?).await?)
}

#[derive(Debug, Default, Deserialize)]
pub struct HeartbeatQuery {
    /// Hold the answer this long unless the build is cancelled meanwhile.
    #[serde(default)]
    pub wait_seconds: u64,
}

/// Extends the lease, then waits (up to `wait_seconds`, at most the
/// heartbeat interval) and answers as soon as the build is cancelled.
#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn heartbeat(
    State(queue): State<Queue>,
    _: Runner,
    Path(job_id): Path<i64>,
    Query(query): Query<HeartbeatQuery>,
    headers: HeaderMap,
) -> AppResult<Json<HeartbeatResponse>> {
    let lease_id = lease_header(&headers)?;
    let wait = Duration::from_secs(query.wait_seconds);
    let cancel = leases::heartbeat(&queue, job_id, lease_id, wait).await?;
    Ok(Json(HeartbeatResponse { cancel }))
}

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn commit(
    State(db): State<Database>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(info): Json<CommitInfo>,
) -> AppResult<StatusCode> {
    let LiveLease { build_id, .. } = live_lease(&db, job_id, &headers).await?;
    if !jamstack_proto::is_full_commit_sha(&info.sha) {
        return Err(bad_request(format!("`{}` is not a full commit id", info.sha)));
    }
    db.record_build_commit(build_id, &info.sha, &info.message, &info.author)
        .await?;
    if info.reachable == Some(true) {
        db.mark_commit_verified(build_id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct LogOffset {
    pub offset: i64,
}

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn append_log(
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: Runner,
    Path(job_id): Path<i64>,
    Query(LogOffset { offset }): Query<LogOffset>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Json<LogAppendResponse>> {
    let LiveLease { build_id, attempt } = live_lease(&db, job_id, &headers).await?;
    let stored = db.append_log(build_id, attempt, offset, &body).await?;
    queue.log_activity.notify_waiters();
    Ok(Json(LogAppendResponse {
        stored_length: stored as u64,
    }))
}

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn create_deploy(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(metrics): State<Arc<Metrics>>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(manifest): Json<DeployManifest>,
) -> AppResult<Json<ManifestResponse>> {
    let LiveLease { build_id, .. } = live_lease(&db, job_id, &headers).await?;
    let config_rules = intake::check_manifest(&deploys, &manifest)?;
    let build = db.build(build_id).await?.ok_or(LeaseError::Vanished("build"))?;
    let files = intake::resolve_files(&deploys, build.site_id, &manifest).await?;
    let deploy = db
        .upsert_build_deploy(&crate::deploys::new_deploy_id(), &build, files.as_list())
        .await
        .map_err(intake::recording_failed)?;
    intake::keep_config_rules(&deploys, &deploy, &config_rules).await?;
    let missing = intake::required_blobs(&deploys, &deploy).await?;
    metrics.record_manifest(crate::metrics::ManifestFigures::of(&manifest.files, &missing));
    tracing::info!(build = build_id, deploy = %deploy.id, files = manifest.files.len(), changes_only = manifest.base.is_some(), missing = missing.len(), "manifest received");
    Ok(Json(ManifestResponse {
        deploy_id: deploy.id,
        missing,
    }))
}

/// Receives one blob (see [`intake::receive_blob`]).
pub async fn put_blob(
    State(deploys): State<Deploys>,
    _: Runner,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<StatusCode> {
    intake::receive_blob(&deploys, &sha256, &headers, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Receives a bundle of small blobs (see [`intake::receive_bundle`]).
pub async fn post_blob_bundle(
    State(deploys): State<Deploys>,
    _: Runner,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<BundleResponse>> {
    Ok(Json(intake::receive_bundle(&deploys, &headers, body).await?))
}

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn finalize_deploy(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    State(urls): State<Urls>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
) -> AppResult<Json<FinalizeResponse>> {
    let LiveLease { build_id, .. } = live_lease(&db, job_id, &headers).await?;
    let lease_id = lease_header(&headers)?;
    match intake::finalize_build_deploy(&deploys, &notifications, build_id, job_id, lease_id).await? {
        BuildDeployFinalized::Ready {
            deploy_id,
            site_name,
            alias,
            published,
        } => Ok(Json(FinalizeResponse {
            permalink: urls.site_url(&format!("{deploy_id}--{site_name}")),
            alias_url: alias.map(|a| urls.site_url(&format!("{a}--{site_name}"))),
            deploy_id,
            published,
        })),
        BuildDeployFinalized::StaleLease => Err(LeaseError::LeaseLost { job_id }.into()),
        BuildDeployFinalized::Gone(what) => Err(LeaseError::Vanished(what).into()),
    }
}

pub async fn complete(
    State(queue): State<Queue>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(completion): Json<JobCompletion>,
) -> AppResult<StatusCode> {
    let lease_id = lease_header(&headers)?;
    leases::complete(&queue, job_id, lease_id, &completion).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts the job back in the queue at once: the runner is shutting down
/// mid-build (see [`leases::hand_back`]).
#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn hand_back(
    State(queue): State<Queue>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
) -> AppResult<StatusCode> {
    let lease_id = lease_header(&headers)?;
    leases::hand_back(&queue, job_id, lease_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
