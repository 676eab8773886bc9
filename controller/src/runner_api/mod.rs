//! The runner protocol's server side (see `jamstack_proto` for the flow).
//!
//! Every handler but `connect` and `lease` works on one job and is fenced by
//! its lease: a call whose lease is not the job's live lease gets 409 and
//! changes nothing, so a runner that lost its lease cannot log, upload into
//! or publish a build that now belongs to another runner.

use crate::auth::Auth;
use crate::auth::{Runner, SpeaksProtocol, hash_token, new_token, random_hex};
use crate::builds::Queue;
use crate::config::Config;
use crate::db::Database;
use crate::db::TokenKind;
use crate::db::{Build, BuildState, FinalizeOutcome, FinishedAs};
use crate::deploys::Deploys;
use crate::deploys::events::DeployEvent;
use crate::deploys::{self, intake};
use crate::error::unauthorized;
use crate::error::{AppError, AppResult, bad_request, conflict, not_found};
use crate::events::BuildTiming;
use crate::state::AppState;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jamstack_proto::{
    BuildContext, CacheRef, CommitInfo, ConnectRequest, ConnectResponse, DeployManifest, EnvVar,
    FinalizeResponse, HeartbeatResponse, JobCompletion, JobLease, JobOutcome, LEASE_HEADER, LeaseRequest,
    LogAppendResponse, ManifestResponse, PROTOCOL_VERSION, RegisterRequest, RegisterResponse,
    SiteBuildSettings,
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
async fn read_registration(state: &AppState, request: Request) -> AppResult<RegisterRequest> {
    let limit = state.config.http.body_read_timeout;
    let read = tokio::time::timeout(limit, Bytes::from_request(request, state))
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
    State(state): State<AppState>,
    _: SpeaksProtocol,
    body: Request,
) -> AppResult<(StatusCode, Json<RegisterResponse>)> {
    let request = read_registration(&state, body).await?;
    let valid = state
        .db
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
    let runner = state
        .db
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
    State(state): State<AppState>,
    Runner(runner): Runner,
    Json(request): Json<LeaseRequest>,
) -> AppResult<Response> {
    let wait = Duration::from_secs(request.wait_seconds).min(state.config.max_lease_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let lease_millis = state.config.lease_duration.as_millis() as i64;
    if let Some(at) = state.db.touch_runner(&runner).await? {
        state.auth.known_runners.seen(runner.id, at);
    }
    loop {
        // Listen before looking, so a job queued in between still wakes us.
        let notified = state.queue.jobs_available.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let lease_id = random_hex(16);
        if let Some(job) = state
            .db
            .claim_next_job(
                &runner,
                &lease_id,
                lease_millis,
                state.config.max_concurrent_builds,
            )
            .await?
        {
            let build = state
                .db
                .build(job.build_id)
                .await?
                .ok_or_else(|| not_found("leased build vanished"))?;
            tracing::Span::current().record("build_id", build.id);
            let site = state
                .db
                .site_by_id(build.site_id)
                .await?
                .ok_or_else(|| not_found("site vanished"))?;
            tracing::info!(job = job.job_id, build = build.id, runner = %runner.name, attempt = job.attempt, "job leased");
            if let Some(started_at) = build.started_at {
                state.queue.events.build_changed_at(
                    build.id,
                    site.id,
                    BuildState::Running,
                    BuildTiming::Started {
                        queued_at: build.created_at,
                        started_at,
                        attempt: job.attempt,
                    },
                );
            } else {
                state
                    .queue
                    .events
                    .build_changed(build.id, site.id, BuildState::Running);
            }
            let git_token = crate::github::clone_token_for(&state.github, &site).await;
            let settings = lease_settings(&state, site.id).await?;
            let trusted = is_trusted(&build);
            let verify_reachable_from = build.commit_unverified.then(|| build.branch.clone());
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
                honour_skip_ci: crate::builds::honours_skip_markers(&build.trigger),
                trusted,
                verify_reachable_from,
                settings,
                // A GitHub App installation token or the site's access
                // token, for private repositories; `None` for public ones.
                git_token,
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

/// Whether a build's code may see the site's secrets and production cache:
/// everything but pull requests from forks, whose code nobody with access
/// to the repository wrote.
fn is_trusted(build: &Build) -> bool {
    !build.from_fork
}

/// A secret variable's value for a build. One that no longer opens (the
/// key file was replaced) reaches the build empty, and the error says how
/// to mend it; values stored before variables were sealed are used as they
/// are until startup seals them.
fn open_env_var(state: &AppState, site_id: i64, name: &str, stored: &str) -> String {
    if !crate::secrets::looks_sealed(stored) {
        return stored.to_owned();
    }
    match state
        .secrets
        .open(&crate::secrets::env_var_purpose(site_id, name), stored)
    {
        Ok(value) => value,
        Err(e) => {
            tracing::error!(site_id, variable = name, error = %e, "a secret variable does not open; set it again");
            String::new()
        }
    }
}

/// The site's build settings as a lease carries them.
async fn lease_settings(state: &AppState, site_id: i64) -> AppResult<SiteBuildSettings> {
    let settings = state.db.site_build_settings(site_id).await?;
    let environment = state
        .db
        .site_env_vars(site_id)
        .await?
        .into_iter()
        .map(|var| {
            let value = if var.secret {
                open_env_var(state, site_id, &var.name, &var.value)
            } else {
                var.value
            };
            EnvVar {
                name: var.name,
                value,
                secret: var.secret,
            }
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
            key: state.installation.cache_key(site_id),
            generation: u64::try_from(settings.cache_generation).unwrap_or(0),
        },
        network: settings.network.mode,
        private_hosts: settings.network.private_hosts,
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
    let (build_id, attempt) = state
        .db
        .check_lease(job_id, lease_id)
        .await?
        .ok_or_else(|| stale_lease(job_id))?;
    // The handler's span carries the build from here on.
    tracing::Span::current().record("build_id", build_id);
    Ok((build_id, attempt))
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
    State(config): State<Arc<Config>>,
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: Runner,
    Path(job_id): Path<i64>,
    Query(query): Query<HeartbeatQuery>,
    headers: HeaderMap,
) -> AppResult<Json<HeartbeatResponse>> {
    let lease_id = lease_header(&headers)?;
    let lease_millis = config.lease_duration.as_millis() as i64;
    let cancel = db
        .extend_lease(job_id, lease_id, lease_millis)
        .await?
        .ok_or_else(|| stale_lease(job_id))?;
    let wait = Duration::from_secs(query.wait_seconds).min(config.heartbeat_interval);
    let deadline = tokio::time::Instant::now() + wait;
    if cancel {
        return Ok(Json(HeartbeatResponse { cancel }));
    }
    loop {
        // Listen before looking, so a cancel in between still wakes us.
        let notified = queue.cancellations.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Json(HeartbeatResponse { cancel: false }));
        }
        // Look again every second or so in case another controller on the
        // same database took the cancel.
        let _ = tokio::time::timeout((deadline - now).min(Duration::from_secs(1)), notified).await;
        match db.cancel_requested(job_id, lease_id).await? {
            Some(true) => return Ok(Json(HeartbeatResponse { cancel: true })),
            Some(false) => {}
            None => return Err(stale_lease(job_id)),
        }
    }
}

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
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
    if info.reachable == Some(true) {
        state.db.mark_commit_verified(build_id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct LogOffset {
    pub offset: i64,
}

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
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
    state.queue.log_activity.notify_waiters();
    Ok(Json(LogAppendResponse {
        stored_length: stored as u64,
    }))
}

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn create_deploy(
    State(state): State<AppState>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(manifest): Json<DeployManifest>,
) -> AppResult<Json<ManifestResponse>> {
    let (build_id, _) = live_lease(&state, job_id, &headers).await?;
    let config_rules = intake::check_manifest(&state.deploys, &manifest)?;
    let build = state
        .db
        .build(build_id)
        .await?
        .ok_or_else(|| not_found("build vanished"))?;
    let deploy = state
        .db
        .upsert_build_deploy(&deploys::new_deploy_id(), &build, &manifest.files)
        .await?;
    intake::keep_config_rules(&state.deploys, &deploy, &config_rules).await?;
    let missing = intake::required_blobs(&state.deploys, &deploy).await?;
    state
        .metrics
        .record_manifest(crate::metrics::ManifestFigures::of(&manifest.files, &missing));
    tracing::info!(build = build_id, deploy = %deploy.id, files = manifest.files.len(), missing = missing.len(), "manifest received");
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

#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
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
    if deploy.state != "ready" {
        intake::prepare_for_serving(&state.deploys, &deploy.id).await?;
    }
    let context = BuildContext::parse(&deploy.context).unwrap_or(BuildContext::Production);
    let mut alias = deploys::alias_for(context, &deploy.branch, deploy.pr_number);
    if let Some(name) = &alias
        && state.db.is_alias_retired(deploy.site_id, name).await?
    {
        // Its pull request closed or its branch was deleted while it built:
        // the deploy is kept (permalink) but the hostname stays down.
        alias = None;
    }
    match state
        .db
        .finalize_deploy(&deploy.id, job_id, lease_id, alias.as_deref())
        .await?
    {
        FinalizeOutcome::Ready { published } => {
            intake::after_ready(&state.deploys, &deploy.id);
            state
                .deploys
                .announce(DeployEvent::SiteChanged {
                    site_id: deploy.site_id,
                })
                .await;
            let site = state
                .db
                .site_by_id(deploy.site_id)
                .await?
                .ok_or_else(|| not_found("site vanished"))?;
            tracing::info!(build = build_id, deploy = %deploy.id, published, "deploy ready");
            if published {
                crate::notifications::deploy_changed(
                    &state.notifications,
                    deploy.site_id,
                    crate::notifications::DeployChange::Published,
                    Some(&deploy.id),
                )
                .await;
            }
            Ok(Json(FinalizeResponse {
                permalink: state.urls.site_url(&format!("{}--{}", deploy.id, site.name)),
                alias_url: alias.map(|a| state.urls.site_url(&format!("{a}--{}", site.name))),
                deploy_id: deploy.id,
                published,
            }))
        }
        FinalizeOutcome::MissingBlobs(count) => Err(intake::missing_blobs(count).into()),
        FinalizeOutcome::StaleLease => Err(stale_lease(job_id)),
        FinalizeOutcome::NotFound => Err(not_found("deploy vanished")),
    }
}

pub async fn complete(
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
    Json(JobCompletion {
        outcome,
        step_timings,
    }): Json<JobCompletion>,
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
        JobOutcome::Skipped { reason } => (BuildState::Skipped, None, Some(reason.as_str()), None),
    };
    let finished = db
        .finish_job(
            job_id,
            lease_id,
            FinishedAs {
                state: state_after,
                exit_code,
                error,
                deploy_id,
                step_timings: &step_timings,
            },
        )
        .await?
        .ok_or_else(|| stale_lease(job_id))?;
    tracing::Span::current().record("build_id", finished.build_id);
    tracing::info!(job = job_id, outcome = state_after.as_str(), "job finished");
    queue.events.build_changed_at(
        finished.build_id,
        finished.site_id,
        state_after,
        BuildTiming::Ended {
            started_at: finished.started_at,
            finished_at: finished.finished_at,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Puts the job back in the queue at once: the runner is shutting down
/// mid-build. The next runner to lease it starts a new attempt; this one's
/// log is kept and says what happened.
#[tracing::instrument(name = "job", skip_all, fields(job_id, build_id = tracing::field::Empty))]
pub async fn hand_back(
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: Runner,
    Path(job_id): Path<i64>,
    headers: HeaderMap,
) -> AppResult<StatusCode> {
    let lease_id = lease_header(&headers)?;
    let (build_id, site_id) = db
        .hand_back_job(job_id, lease_id)
        .await?
        .ok_or_else(|| stale_lease(job_id))?;
    tracing::Span::current().record("build_id", build_id);
    tracing::info!(job = job_id, "job handed back by its runner");
    queue.events.build_changed(build_id, site_id, BuildState::Queued);
    // A runner may be waiting for work right now.
    queue.jobs_available.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}
