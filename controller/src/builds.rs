//! Starting builds, whatever asked for one: a webhook, the API, the demo.

use crate::config::Config;
use crate::db::Database;
use crate::db::{Build, BuildState, NewBuild, Site};
use crate::deploys::alias_for;
use crate::events::Events;
use crate::lease_writes::LeaseWrites;

use jamstack_proto::BuildContext;
use std::sync::Arc;
use tokio::sync::Notify;

/// The build queue as a service: builds and jobs in the database, the
/// events their changes make, and the waiters to wake.
#[derive(Clone)]
pub struct Queue {
    pub db: Database,
    pub config: Arc<Config>,
    /// Build state changes and removed hostnames, for whoever listens.
    pub events: Events,
    /// Woken whenever a job becomes leasable, so long-polling runners pick
    /// it up at once instead of at their next poll.
    pub jobs_available: Arc<Notify>,
    /// Woken whenever a batch of log lands, so live log watchers read it.
    pub log_activity: Arc<Notify>,
    /// Woken whenever a build is asked to stop, so heartbeats waiting on
    /// their job answer at once.
    pub cancellations: Arc<Notify>,
    /// Leases taken and jobs finished, written together when they arrive
    /// together.
    pub lease_writes: LeaseWrites,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context: BuildContext,
    pub branch: String,
    /// The exact commit; empty means "the branch's head when the runner
    /// fetches", which the runner resolves and reports back.
    pub commit_sha: String,
    pub commit_message: Option<String>,
    pub author: Option<String>,
    /// The pull request a deploy preview builds.
    pub pr_number: Option<i64>,
    /// A pull request from a fork: its code comes from outside the repository.
    pub from_fork: bool,
    /// A commit picked by hand with a token that may not change the site:
    /// checked by the runner before the build gets any secret.
    pub commit_unverified: bool,
    /// What asked: `webhook` (GitHub), `generic-webhook`, `api`,
    /// `build_hook`, `schedule`, `demo`.
    pub trigger: &'static str,
    /// See [`Build::trigger_title`].
    pub trigger_title: Option<String>,
    /// See [`Build::trigger_payload`].
    pub trigger_payload: Option<String>,
}

impl BuildRequest {
    fn into_new_build(self, site: &Site) -> NewBuild {
        self.for_site(site.id)
    }

    /// The build to record for site `site_id`.
    pub fn for_site(self, site_id: i64) -> NewBuild {
        NewBuild {
            site_id,
            context: self.context,
            branch: self.branch,
            commit_sha: self.commit_sha,
            commit_message: self.commit_message,
            author: self.author,
            pr_number: self.pr_number,
            from_fork: self.from_fork,
            commit_unverified: self.commit_unverified,
            trigger: self.trigger,
            trigger_title: self.trigger_title,
            trigger_payload: self.trigger_payload,
        }
    }
}

/// Whether a build started by `trigger` is skipped when its commit message
/// carries a skip marker such as `[skip ci]`: builds started by a push or a
/// pull request are, builds asked for by hand are not.
pub fn honours_skip_markers(trigger: &str) -> bool {
    matches!(trigger, "webhook" | "generic-webhook")
}

/// A build asked of a site made for direct deploys, which has no
/// repository to build from. The API answers it with its message.
#[derive(Debug)]
pub struct NoRepository {
    pub site: String,
}

impl std::fmt::Display for NoRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let site = &self.site;
        write!(
            f,
            "site `{site}` has no repository; connect one with `jamstack sites update {site} --repo-url ...` \
             or deploy directly with `jamstack deploy`"
        )
    }
}

impl std::error::Error for NoRepository {}

/// Queues a build of `site` and wakes a waiting runner. Returns the build
/// id; a site without a repository is refused with [`NoRepository`].
#[tracing::instrument(skip_all, fields(site = %site.name, build_id = tracing::field::Empty))]
pub async fn queue_build(state: &Queue, site: &Site, request: BuildRequest) -> anyhow::Result<i64> {
    if site.repo_url.is_none() {
        return Err(NoRepository {
            site: site.name.clone(),
        }
        .into());
    }
    // A new build of a closed-then-reopened pull request or a re-created
    // branch may bring its hostname back.
    if let Some(alias) = alias_for(request.context, &request.branch, request.pr_number) {
        state.db.revive_alias(site.id, &alias).await?;
    }
    let (build_id, superseded) = state.db.enqueue_build(&request.into_new_build(site)).await?;
    tracing::Span::current().record("build_id", build_id);
    tracing::info!(build_id, site = %site.name, ?superseded, "build queued");
    state.events.build_changed(build_id, site.id, BuildState::Queued);
    for old in superseded {
        state.events.build_changed(old, site.id, BuildState::Cancelled);
    }
    state.jobs_available.notify_waiters();
    Ok(build_id)
}

/// Queues a new build of the same site, commit, branch and context as
/// `build` (a retry, from the dashboard or the API). Returns the new build's id.
pub async fn retry_build(state: &Queue, site: &Site, build: Build) -> anyhow::Result<i64> {
    queue_build(
        state,
        site,
        BuildRequest {
            context: build.context,
            branch: build.branch,
            commit_sha: build.commit_sha,
            commit_message: build.commit_message,
            author: build.author,
            pr_number: build.pr_number,
            from_fork: build.from_fork,
            commit_unverified: build.commit_unverified,
            trigger: "retry",
            trigger_title: build.trigger_title,
            trigger_payload: build.trigger_payload,
        },
    )
    .await
}

/// Records a build that is not run, with the reason (for example the
/// `[skip ci]` its commit message carries). Returns the build id.
pub async fn record_skipped_build(
    state: &Queue,
    site: &Site,
    request: BuildRequest,
    reason: &str,
) -> anyhow::Result<i64> {
    let build_id = state
        .db
        .insert_skipped_build(&request.into_new_build(site), reason)
        .await?;
    tracing::info!(build_id, site = %site.name, reason, "build skipped");
    state.events.build_changed(build_id, site.id, BuildState::Skipped);
    Ok(build_id)
}

/// Asks for builds to stop (see `Database::request_cancel`) and tells
/// listeners about those that ended at once.
pub async fn cancel_builds(state: &Queue, site_id: i64, build_ids: &[i64]) -> anyhow::Result<()> {
    for &build_id in build_ids {
        if state.db.request_cancel(build_id).await? == Some(BuildState::Cancelled) {
            state
                .events
                .build_changed(build_id, site_id, BuildState::Cancelled);
        }
    }
    Ok(())
}

/// Requeues jobs whose runner went silent and fails builds that ran too
/// long, forever, every few seconds. With several controllers each runs
/// one; the statements are idempotent, so they do not step on each other.
pub async fn reap_expired_leases(state: Queue) {
    // Runners retry a failed call at least every 10 s; a lease that lapsed
    // while no controller was up gets one lease and that long to be renewed.
    let grace = state.config.lease_duration + std::time::Duration::from_secs(15);
    match state.db.renew_leases_after_start(grace.as_millis() as i64).await {
        Ok(0) => {}
        Ok(renewed) => tracing::info!(renewed, "leases renewed after the controller started"),
        Err(error) => tracing::error!(error = format!("{error:#}"), "renewing leases after start failed"),
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let max_build = state.config.max_build_duration.as_millis() as i64;
        match state
            .db
            .reap_expired_leases(state.config.max_attempts, max_build)
            .await
        {
            Ok((0, failed)) if failed.is_empty() => {}
            Ok((requeued, failed)) => {
                tracing::warn!(requeued, failed = failed.len(), "leases expired");
                for build_id in failed {
                    if let Ok(Some(build)) = state.db.build(build_id).await {
                        state.events.build_changed(build_id, build.site_id, build.state);
                    }
                }
                state.jobs_available.notify_waiters();
            }
            Err(error) => tracing::error!(error = format!("{error:#}"), "reaping leases failed"),
        }
    }
}
