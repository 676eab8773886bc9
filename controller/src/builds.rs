//! Starting builds, whatever asked for one: a webhook, the API, the demo.

use crate::db::{NewBuild, Site};
use crate::state::AppState;
use jamstack_proto::BuildContext;

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
    pub trigger: &'static str,
}

/// Queues a build of `site` and wakes a waiting runner. Returns the build id.
pub async fn queue_build(state: &AppState, site: &Site, request: BuildRequest) -> anyhow::Result<i64> {
    let (build_id, superseded) = state
        .db
        .enqueue_build(&NewBuild {
            site_id: site.id,
            context: request.context,
            branch: request.branch,
            commit_sha: request.commit_sha,
            commit_message: request.commit_message,
            author: request.author,
            pr_number: request.pr_number,
            trigger: request.trigger,
        })
        .await?;
    tracing::info!(build_id, site = %site.name, ?superseded, "build queued");
    state.jobs_available.notify_waiters();
    Ok(build_id)
}

/// Requeues jobs whose runner went silent and fails builds that ran too
/// long, forever, every few seconds. With several controllers each runs
/// one; the statements are idempotent, so they do not step on each other.
pub async fn reap_expired_leases(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let max_build = state.config.max_build_duration.as_millis() as i64;
        match state
            .db
            .reap_expired_leases(state.config.max_attempts, max_build)
            .await
        {
            Ok((0, 0)) => {}
            Ok((requeued, failed)) => {
                tracing::warn!(requeued, failed, "leases expired");
                state.jobs_available.notify_waiters();
            }
            Err(error) => tracing::error!(error = format!("{error:#}"), "reaping leases failed"),
        }
    }
}
