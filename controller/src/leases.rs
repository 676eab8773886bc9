//! Leases: how a runner comes to hold a job and lets go of it.
//!
//! A runner waits for a job it may run and holds it under a lease it
//! extends with heartbeats; it completes the job or hands it back. Every
//! call about a held job names its lease, and one that is not the job's
//! live lease is refused with [`LeaseError::LeaseLost`] and changes nothing,
//! so a runner that lost its lease cannot act on a build that now belongs
//! to another runner. The runner protocol's HTTP side is `runner_api`;
//! `crate::error` says how each [`LeaseError`] is answered.

use crate::builds::Queue;
use crate::db::{Build, BuildState, Database, LeasedJob, RunnerRecord, Site};
use crate::events::BuildTiming;
use crate::lease_writes::finished_as;
use crate::secrets::{SecretBox, random_hex};
use jamstack_proto::{CacheRef, EnvVar, IncomingHook, JobCompletion, JobLease, Secret, SiteBuildSettings};
use std::time::Duration;
use tokio::time::Instant;

/// Why a call about a leased job was refused.
#[derive(Debug)]
pub enum LeaseError {
    /// The caller's lease on the job is no longer live: it expired, the job
    /// was leased again to another runner, or it finished.
    LeaseLost {
        job_id: i64,
    },
    /// What the job works on (its build, site or deploy) was deleted
    /// meanwhile; says which.
    Vanished(&'static str),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for LeaseError {
    fn from(error: anyhow::Error) -> Self {
        LeaseError::Internal(error)
    }
}

pub type LeaseResult<T> = Result<T, LeaseError>;

/// A job just leased to a runner, with what it builds.
pub struct Claimed {
    pub job: LeasedJob,
    pub build: Build,
    pub site: Site,
}

/// Waits until `deadline` for a job `runner` may run and leases it to the
/// runner; `None` when none came in time.
pub async fn wait_for_job(
    queue: &Queue,
    runner: &RunnerRecord,
    deadline: Instant,
) -> LeaseResult<Option<Claimed>> {
    loop {
        // Listen before looking, so a job queued in between still wakes us.
        let notified = queue.jobs_available.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let lease_id = new_lease_id();
        if let Some(job) = queue.lease_writes.claim(runner, &lease_id).await? {
            let build = queue
                .db
                .build(job.build_id)
                .await?
                .ok_or(LeaseError::Vanished("leased build"))?;
            // The caller's span carries the build from here on.
            tracing::Span::current().record("build_id", build.id);
            let site = queue
                .db
                .site_by_id(build.site_id)
                .await?
                .ok_or(LeaseError::Vanished("site"))?;
            tracing::info!(job = job.job_id, build = build.id, runner = %runner.name, attempt = job.attempt, "job leased");
            if let Some(started_at) = build.started_at {
                queue.events.build_changed_at(
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
                queue.events.build_changed(build.id, site.id, BuildState::Running);
            }
            return Ok(Some(Claimed { job, build, site }));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        // Wake on a new job, or look again after a while in case another
        // controller on the same database queued one.
        let _ = tokio::time::timeout((deadline - now).min(Duration::from_secs(2)), notified).await;
    }
}

/// A lease's id: whoever knows it acts on the job, so it is random.
fn new_lease_id() -> String {
    random_hex(16)
}

impl Claimed {
    /// The lease as the runner is given it. `git_token` is a GitHub App
    /// installation token or the site's access token, for private
    /// repositories; `None` for public ones.
    pub fn into_lease(
        self,
        lease_duration: Duration,
        settings: SiteBuildSettings,
        git_token: Option<Secret>,
        cached_commit: Option<String>,
    ) -> JobLease {
        let Claimed { job, build, site } = self;
        let incoming_hook = incoming_hook(&build);
        JobLease {
            job_id: job.job_id,
            lease_id: job.lease_id,
            build_id: build.id,
            attempt: job.attempt as u32,
            site: site.name,
            // Builds are queued only for sites with a repository (see
            // `queue_build`), and a connected repository cannot be removed.
            repo_url: site.repo_url.unwrap_or_default(),
            trusted: is_trusted(&build),
            verify_reachable_from: build.commit_unverified.then(|| build.branch.clone()),
            cached_commit,
            honour_skip_ci: crate::builds::honours_skip_markers(&build.trigger),
            commit_sha: build.commit_sha,
            branch: build.branch,
            context: build.context,
            pr_number: build.pr_number.map(|n| n as u64),
            lease_seconds: lease_duration.as_secs(),
            settings,
            git_token,
            incoming_hook,
        }
    }
}

/// What started `build`, when a build hook did: its title and body reach
/// the build as Netlify's `INCOMING_HOOK_TITLE` and `INCOMING_HOOK_BODY`.
fn incoming_hook(build: &Build) -> Option<IncomingHook> {
    (build.trigger == crate::build_hooks::TRIGGER).then(|| IncomingHook {
        title: build.trigger_title.clone().unwrap_or_default(),
        body: build.trigger_payload.clone().unwrap_or_default(),
    })
}

/// The commit a build is compared with: that of the site's last successful
/// build of the same context (the same branch or pull request), so a
/// force-push or a push of several commits is measured against what was
/// last built, not against the push's own parent.
pub async fn cached_commit(db: &Database, claimed: &Claimed) -> anyhow::Result<Option<String>> {
    let build = &claimed.build;
    db.last_successful_commit(build.site_id, build.context, &build.branch, build.pr_number)
        .await
}

/// Whether a build's code may see the site's secrets and production cache:
/// everything but pull requests from forks, whose code nobody with access
/// to the repository wrote.
fn is_trusted(build: &Build) -> bool {
    !build.from_fork
}

/// The site's build settings as a lease carries them, its build cache
/// under `cache_key`.
pub async fn build_settings(
    db: &Database,
    secrets: &SecretBox,
    site_id: i64,
    cache_key: String,
) -> anyhow::Result<SiteBuildSettings> {
    let settings = db.site_build_settings(site_id).await?;
    let environment = db
        .site_env_vars(site_id)
        .await?
        .into_iter()
        .map(|var| {
            let value = if var.secret {
                open_env_var(secrets, site_id, &var.name, &var.value)
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
            key: cache_key,
            generation: u64::try_from(settings.cache_generation).unwrap_or(0),
        },
        network: settings.network.mode,
        private_hosts: settings.network.private_hosts,
        base: Some(settings.paths.base).filter(|base| !base.is_empty()),
        watch_paths: settings.paths.watch_paths,
    })
}

/// A secret variable's value for a build. One that no longer opens (the
/// key file was replaced) reaches the build empty, and the error says how
/// to mend it; values stored before variables were sealed are used as they
/// are until startup seals them.
fn open_env_var(secrets: &SecretBox, site_id: i64, name: &str, stored: &str) -> String {
    if !crate::secrets::looks_sealed(stored) {
        return stored.to_owned();
    }
    match secrets.open(&crate::secrets::env_var_purpose(site_id, name), stored) {
        Ok(value) => value,
        Err(e) => {
            tracing::error!(site_id, variable = name, error = %e, "a secret variable does not open; set it again");
            String::new()
        }
    }
}

/// The build and attempt a live lease works on.
#[derive(Debug, Clone, Copy)]
pub struct LiveLease {
    pub build_id: i64,
    pub attempt: i64,
}

/// The job's build and attempt, if `lease_id` is the job's live lease.
pub async fn check(db: &Database, job_id: i64, lease_id: &str) -> LeaseResult<LiveLease> {
    let (build_id, attempt) = db
        .check_lease(job_id, lease_id)
        .await?
        .ok_or(LeaseError::LeaseLost { job_id })?;
    // The caller's span carries the build from here on.
    tracing::Span::current().record("build_id", build_id);
    Ok(LiveLease { build_id, attempt })
}

/// Extends the lease, then waits (up to `wait`, at most the heartbeat
/// interval) and answers as soon as the build is cancelled: whether the
/// runner is to stop it.
pub async fn heartbeat(queue: &Queue, job_id: i64, lease_id: &str, wait: Duration) -> LeaseResult<bool> {
    let lease_millis = queue.config.lease_duration.as_millis() as i64;
    let cancel = queue
        .db
        .extend_lease(job_id, lease_id, lease_millis)
        .await?
        .ok_or(LeaseError::LeaseLost { job_id })?;
    let deadline = Instant::now() + wait.min(queue.config.heartbeat_interval);
    if cancel {
        return Ok(true);
    }
    loop {
        // Listen before looking, so a cancel in between still wakes us.
        let notified = queue.cancellations.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        // Look again every second or so in case another controller on the
        // same database took the cancel.
        let _ = tokio::time::timeout((deadline - now).min(Duration::from_secs(1)), notified).await;
        match queue.db.cancel_requested(job_id, lease_id).await? {
            Some(true) => return Ok(true),
            Some(false) => {}
            None => return Err(LeaseError::LeaseLost { job_id }),
        }
    }
}

/// Records how the job ended, as its runner reports it, and tells who
/// follows the build.
pub async fn complete(
    queue: &Queue,
    job_id: i64,
    lease_id: &str,
    completion: &JobCompletion,
) -> LeaseResult<()> {
    let state_after = finished_as(completion).state;
    let finished = queue
        .lease_writes
        .finish(job_id, lease_id, completion)
        .await?
        .ok_or(LeaseError::LeaseLost { job_id })?;
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
    Ok(())
}

/// Puts the job back in the queue at once: its runner is shutting down
/// mid-build. The next runner to lease it starts a new attempt; this one's
/// log is kept and says what happened.
pub async fn hand_back(queue: &Queue, job_id: i64, lease_id: &str) -> LeaseResult<()> {
    let (build_id, site_id) = queue
        .db
        .hand_back_job(job_id, lease_id)
        .await?
        .ok_or(LeaseError::LeaseLost { job_id })?;
    tracing::Span::current().record("build_id", build_id);
    tracing::info!(job = job_id, "job handed back by its runner");
    queue.events.build_changed(build_id, site_id, BuildState::Queued);
    // A runner may be waiting for work right now.
    queue.jobs_available.notify_waiters();
    Ok(())
}
