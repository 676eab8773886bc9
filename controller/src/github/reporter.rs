//! Reporting back to GitHub: a commit status for every build, a GitHub
//! Deployment with its statuses, and one pull-request comment per site and
//! pull request, edited in place on every new commit.
//!
//! The reporter listens to build state changes ([`crate::events`]) and
//! works in the background: nothing here can slow a webhook down or fail a
//! build. For each build it reads the build's current state and sends what
//! GitHub has not been told yet, as recorded in `github_build_reports`, so
//! every report goes out once, a burst of changes to one build is sent as
//! its latest state, and a restarted controller catches up on what it
//! still owes (builds of the last day). Each call is retried with backoff
//! ([`super::client`]); a report that still fails is logged and given up.

use super::GitHubService;
use super::client::{CommitStatus, DeploymentStatus, NewDeployment, Repo};
use crate::db::{Build, BuildReport, BuildState, Site};
use crate::deploys::alias_for;
use crate::events::Event;
use crate::waiting::{Thresholds, WaitingReason, WaitingReasons};
use jamstack_proto::BuildContext;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;

/// Builds reported at the same time; more wait their turn.
const CONCURRENT_REPORTS: usize = 8;
/// How far back a restarted controller looks for reports it still owes.
const CATCH_UP_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a site found to have no way to GitHub (no App installation, no
/// access token) is taken at its word without being read again. A busy
/// queue then costs such sites one read a second instead of one per build
/// event; credentials given to a site reach the reports of its builds'
/// next changes at most this late.
const SILENT_SITE_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// How often queued builds are looked at again for a waiting reason that
/// appeared or went (a build passing the queued-too-long threshold, a
/// runner with the labels registering). A status is sent only when its
/// description changed, so a quiet queue costs reads, not GitHub calls.
const WAITING_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Makes the reporter. It subscribes at once, so no change made after this
/// call is missed; when run, it catches up on older ones first.
pub fn start(state: GitHubService) -> impl std::future::Future<Output = ()> + Send + 'static {
    let events = state.events.subscribe();
    let reporter = Arc::new(Reporter {
        state,
        in_flight: Mutex::new(HashMap::new()),
        comment_locks: Mutex::new(HashMap::new()),
        permits: Semaphore::new(CONCURRENT_REPORTS),
        silent_sites: Mutex::new(HashMap::new()),
    });
    reporter.run(events)
}

type CommentLock = Arc<tokio::sync::Mutex<()>>;

struct Reporter {
    state: GitHubService,
    /// Builds being reported; `true` when the build changed again meanwhile
    /// and must be looked at once more.
    in_flight: Mutex<HashMap<i64, bool>>,
    /// One lock per (site, pull request), so two builds of one pull request
    /// never both create its comment.
    comment_locks: Mutex<HashMap<(i64, i64), CommentLock>>,
    permits: Semaphore,
    /// Sites found without a way to GitHub, and when (see [`SILENT_SITE_FOR`]).
    silent_sites: Mutex<HashMap<i64, std::time::Instant>>,
}

impl Reporter {
    async fn run(self: Arc<Self>, mut events: tokio::sync::broadcast::Receiver<Event>) {
        self.catch_up().await;
        let mut waiting_check = tokio::time::interval(WAITING_CHECK_EVERY);
        waiting_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                _ = waiting_check.tick() => {
                    self.recheck_queued().await;
                    continue;
                }
            };
            match received {
                Ok(Event::Build {
                    build_id, site_id, ..
                }) => self.schedule(build_id, Some(site_id)),
                Ok(Event::AliasRemoved { site_id, alias }) => {
                    let reporter = self.clone();
                    tokio::spawn(async move { reporter.retire_alias(site_id, &alias).await });
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "the GitHub reporter fell behind; catching up from the database"
                    );
                    self.catch_up().await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Reports the queued builds again, so a waiting reason that appeared
    /// or went reaches their pending status (sent only when changed).
    async fn recheck_queued(self: &Arc<Self>) {
        match self.state.db.queued_jobs(None).await {
            Ok(jobs) => jobs
                .into_iter()
                .for_each(|job| self.schedule(job.build_id, Some(job.site_id))),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "finding queued builds to report to GitHub"
            ),
        }
    }

    async fn catch_up(self: &Arc<Self>) {
        let since = crate::db::now_millis() - CATCH_UP_WINDOW_MS;
        let app_configured = self.state.client.has_app();
        match self
            .state
            .db
            .builds_behind_on_reports(since, app_configured)
            .await
        {
            // With its site, so a build whose site lost its way to GitHub
            // since costs no read of its own.
            Ok(builds) => builds
                .into_iter()
                .for_each(|(build_id, site_id)| self.schedule(build_id, Some(site_id))),
            Err(e) => tracing::error!(error = format!("{e:#}"), "finding builds to report to GitHub"),
        }
    }

    fn schedule(self: &Arc<Self>, build_id: i64, site_id: Option<i64>) {
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = in_flight.get_mut(&build_id) {
                *again = true;
                return;
            }
            in_flight.insert(build_id, false);
        }
        let reporter = self.clone();
        tokio::spawn(async move {
            loop {
                {
                    let _permit = reporter.permits.acquire().await;
                    if let Err(e) = reporter.report(build_id, site_id).await {
                        tracing::warn!(
                            build = build_id,
                            error = format!("{e:#}"),
                            "reporting to GitHub failed"
                        );
                    }
                }
                let mut in_flight = reporter.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                match in_flight.get_mut(&build_id) {
                    Some(again) if *again => *again = false,
                    _ => {
                        in_flight.remove(&build_id);
                        return;
                    }
                }
            }
        });
    }

    /// Sends what GitHub has not been told about one build.
    /// `site_id`, when the event said it, saves reading the build of a
    /// site GitHub cannot be told about (no App, no access token).
    async fn report(&self, build_id: i64, site_id: Option<i64>) -> anyhow::Result<()> {
        let db = &self.state.db;
        let mut build = None;
        let site_id = match site_id {
            Some(site_id) => site_id,
            None => {
                let Some(read) = db.build(build_id).await? else {
                    return Ok(());
                };
                build.insert(read).site_id
            }
        };
        if self.known_silent(site_id) {
            return Ok(());
        }
        let Some(site) = db.site_by_id(site_id).await? else {
            return Ok(());
        };
        let Some(repo) = self.repo_of(&site).await? else {
            self.silent_sites
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(site_id, std::time::Instant::now());
            return Ok(());
        };
        let build = match build {
            Some(build) => build,
            None => match db.build(build_id).await? {
                Some(build) => build,
                None => return Ok(()),
            },
        };
        if build.commit_sha.is_empty() {
            // Queued by branch name: the commit is known once a runner
            // fetched it, and reported with the build's end.
            return Ok(());
        }
        let mut report = db.build_report(build_id).await?;
        let before = report.clone();
        let mut complete = true;

        let waiting = match build.state {
            BuildState::Queued => WaitingReasons::of_build(db, Thresholds::of(&self.state.config), build_id)
                .await?
                .of(build_id)
                .map(WaitingReason::summary),
            _ => None,
        };
        let status = commit_status(&self.state, &site, &build, waiting.as_deref());
        let status_key = format!("{}:{}", status.state, status.description);
        if report.status_sent.as_deref() != Some(status_key.as_str()) {
            match repo.set_commit_status(&build.commit_sha, &status).await {
                Ok(()) => report.status_sent = Some(status_key),
                Err(e) => {
                    complete = false;
                    tracing::warn!(build = build_id, error = %e, "commit status not sent");
                }
            }
        }

        if let Err(e) = self.report_deployment(&repo, &site, &build, &mut report).await {
            complete = false;
            tracing::warn!(build = build_id, error = %e, "deployment not reported");
        }

        if let Some(pr_number) = build
            .pr_number
            .filter(|_| build.context == BuildContext::DeployPreview)
            && report.comment_sent.as_deref() != Some(build.state.as_str())
        {
            match self.comment_on_pr(&repo, &site, &build, pr_number).await {
                Ok(()) => report.comment_sent = Some(build.state.as_str().to_owned()),
                Err(e) => {
                    complete = false;
                    tracing::warn!(build = build_id, error = %e, "pull-request comment not written");
                }
            }
        }

        if complete {
            report.build_state = Some(build.state.as_str().to_owned());
        }
        if report != before {
            db.save_build_report(&report).await?;
        }
        Ok(())
    }

    async fn report_deployment(
        &self,
        repo: &Repo,
        site: &Site,
        build: &Build,
        report: &mut BuildReport,
    ) -> Result<(), super::client::CallError> {
        let Some(environment) = environment_of(site, build) else {
            return Ok(());
        };
        let deployment_id = match report.deployment_id {
            Some(id) => id,
            // A build skipped before it started deployed nothing.
            None if build.state == BuildState::Skipped => return Ok(()),
            None => {
                let id = repo
                    .create_deployment(&NewDeployment {
                        sha: build.commit_sha.clone(),
                        environment: environment.clone(),
                        description: format!("{} build {} of {}", build.context, build.id, site.name),
                        production: build.context == BuildContext::Production,
                        payload: json!({ "site": site.name, "build_id": build.id }),
                    })
                    .await?;
                report.deployment_id = Some(id);
                report.environment = Some(environment);
                id
            }
        };
        let status = deployment_status(&self.state, site, build);
        if report.deployment_state.as_deref() != Some(status.state) {
            repo.set_deployment_status(deployment_id, &status).await?;
            report.deployment_state = Some(status.state.to_owned());
        }
        Ok(())
    }

    async fn comment_on_pr(
        &self,
        repo: &Repo,
        site: &Site,
        build: &Build,
        pr_number: i64,
    ) -> anyhow::Result<()> {
        let lock = self.comment_lock(site.id, pr_number);
        let _held = lock.lock().await;
        // An older build ending late must not overwrite a newer one's news.
        if self.state.db.latest_preview_build(site.id, pr_number).await? != Some(build.id) {
            return Ok(());
        }
        let body = preview_comment(&self.state, site, build);
        self.write_comment(repo, site, pr_number, &body, true).await
    }

    async fn write_comment(
        &self,
        repo: &Repo,
        site: &Site,
        pr_number: i64,
        body: &str,
        create: bool,
    ) -> anyhow::Result<()> {
        let known = self.state.db.pr_comment(site.id, pr_number).await?;
        let id = repo
            .upsert_pr_comment(pr_number, known, &comment_marker(site), body, create)
            .await?;
        if let Some(id) = id
            && Some(id) != known
        {
            self.state.db.save_pr_comment(site.id, pr_number, id).await?;
        }
        Ok(())
    }

    fn comment_lock(&self, site_id: i64, pr_number: i64) -> CommentLock {
        let mut locks = self.comment_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry((site_id, pr_number)).or_default().clone()
    }

    /// A preview or branch hostname went away: its deployments become
    /// inactive on GitHub, and a pull request's comment says so.
    async fn retire_alias(&self, site_id: i64, alias: &str) {
        let result = async {
            let Some(site) = self.state.db.site_by_id(site_id).await? else {
                return Ok(());
            };
            let Some(repo) = self.repo_of(&site).await? else {
                return Ok(());
            };
            let pr_number = alias
                .strip_prefix("deploy-preview-")
                .and_then(|n| n.parse::<i64>().ok());
            let environment = match pr_number {
                Some(pr) => preview_environment(&site, pr),
                None => branch_environment(&site, alias),
            };
            for (build_id, deployment_id) in self
                .state
                .db
                .deployments_in_environment(site.id, &environment)
                .await?
            {
                repo.set_deployment_status(
                    deployment_id,
                    &DeploymentStatus {
                        state: "inactive",
                        log_url: build_log_url(&self.state, build_id),
                        environment_url: None,
                        description: format!(
                            "{} was taken down",
                            self.state.urls.site_url(&format!("{alias}--{}", site.name))
                        ),
                        auto_inactive: false,
                    },
                )
                .await?;
                self.state.db.set_deployment_state(build_id, "inactive").await?;
            }
            if let Some(pr) = pr_number {
                let lock = self.comment_lock(site.id, pr);
                let _held = lock.lock().await;
                // The pull request is closed: its lock is not needed again
                // unless it reopens (a new lock is made then).
                self.comment_locks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(site.id, pr));
                let body = format!(
                    "{}\n### Deploy preview of **{}** removed\n\nThe pull request was closed, so \
                     `{}` no longer serves it. Its deploys stay reachable at their permalinks.\n",
                    comment_marker(&site),
                    site.name,
                    self.state.urls.site_url(&format!("{alias}--{}", site.name)),
                );
                self.write_comment(&repo, &site, pr, &body, false).await?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(
                site = site_id,
                alias,
                error = format!("{e:#}"),
                "reporting a removed preview to GitHub failed"
            );
        }
    }

    /// Whether the site was found without a way to GitHub moments ago.
    fn known_silent(&self, site_id: i64) -> bool {
        let mut silent = self.silent_sites.lock().unwrap_or_else(|p| p.into_inner());
        match silent.get(&site_id) {
            Some(seen) if seen.elapsed() < SILENT_SITE_FOR => true,
            Some(_) => {
                silent.remove(&site_id);
                false
            }
            None => false,
        }
    }

    async fn repo_of(&self, site: &Site) -> anyhow::Result<Option<Repo>> {
        let Some(full_name) = &site.github_repo else {
            return Ok(None);
        };
        let Some(credentials) = super::credentials_for(&self.state, site).await? else {
            return Ok(None);
        };
        Ok(Some(self.state.client.repo(&credentials, full_name)?))
    }
}

/// The hidden line that marks the controller's comment for a site.
pub fn comment_marker(site: &Site) -> String {
    format!("<!-- jamstack:deploy-preview site={} -->", site.name)
}

/// Where a build's log is read.
pub fn build_log_url(state: &GitHubService, build_id: i64) -> String {
    format!("{}/api/v1/builds/{build_id}/log", state.urls.public_url)
}

/// Where a finished build's deploy is served: the site for a published
/// production deploy, the preview or branch hostname, else its permalink.
pub fn deploy_url(state: &GitHubService, site: &Site, build: &Build) -> Option<String> {
    let deploy_id = build.deploy_id.as_ref()?;
    let label = match alias_for(build.context, &build.branch, build.pr_number) {
        Some(alias) => format!("{alias}--{}", site.name),
        None if site.published_deploy_id.as_ref() == Some(deploy_id) => site.name.clone(),
        None => format!("{deploy_id}--{}", site.name),
    };
    Some(state.urls.site_url(&label))
}

fn status_context(site: &Site, build: &Build) -> String {
    format!("jamstack/{}/{}", site.name, build.context)
}

/// The commit status of `build`; a queued build that waits for a reason
/// (see [`crate::waiting`]) says it.
fn commit_status(state: &GitHubService, site: &Site, build: &Build, waiting: Option<&str>) -> CommitStatus {
    let log = build_log_url(state, build.id);
    let (github_state, description, target_url) = match build.state {
        BuildState::Queued => match waiting {
            Some(reason) => ("pending", format!("Build queued, waiting: {reason}"), log),
            None => ("pending", "Build queued".to_owned(), log),
        },
        BuildState::Running => ("pending", "Building".to_owned(), log),
        BuildState::Succeeded => {
            let what = match build.context {
                BuildContext::Production => "Deployed",
                BuildContext::DeployPreview => "Deploy preview ready",
                BuildContext::BranchDeploy => "Branch deploy ready",
            };
            let url = deploy_url(state, site, build).unwrap_or(log);
            ("success", what.to_owned(), url)
        }
        BuildState::Failed => (
            "failure",
            format!(
                "Build failed: {}",
                build.error.as_deref().unwrap_or("see the log")
            ),
            log,
        ),
        BuildState::Cancelled => ("error", "Build cancelled".to_owned(), log),
        BuildState::Skipped => (
            "success",
            format!(
                "Build skipped: {}",
                build.skip_reason.as_deref().unwrap_or("nothing to build")
            ),
            log,
        ),
    };
    CommitStatus {
        state: github_state,
        target_url,
        description,
        context: status_context(site, build),
    }
}

fn preview_environment(site: &Site, pr_number: i64) -> String {
    format!("{}/deploy-preview-{pr_number}", site.name)
}

fn branch_environment(site: &Site, label: &str) -> String {
    format!("{}/branch/{label}", site.name)
}

/// The GitHub environment a build deploys to.
fn environment_of(site: &Site, build: &Build) -> Option<String> {
    match build.context {
        BuildContext::Production => Some(format!("{}/production", site.name)),
        BuildContext::DeployPreview => build.pr_number.map(|pr| preview_environment(site, pr)),
        BuildContext::BranchDeploy => {
            crate::deploys::branch_label(&build.branch).map(|label| branch_environment(site, &label))
        }
    }
}

fn deployment_status(state: &GitHubService, site: &Site, build: &Build) -> DeploymentStatus {
    let (github_state, description) = match build.state {
        BuildState::Queued => ("queued", "Build queued".to_owned()),
        BuildState::Running => ("in_progress", "Building".to_owned()),
        BuildState::Succeeded => ("success", "Deployed".to_owned()),
        BuildState::Failed => (
            "failure",
            format!(
                "Build failed: {}",
                build.error.as_deref().unwrap_or("see the log")
            ),
        ),
        BuildState::Cancelled => ("error", "Build cancelled".to_owned()),
        BuildState::Skipped => (
            "inactive",
            format!(
                "Build skipped: {}",
                build.skip_reason.as_deref().unwrap_or("nothing to build")
            ),
        ),
    };
    DeploymentStatus {
        state: github_state,
        log_url: build_log_url(state, build.id),
        environment_url: deploy_url(state, site, build).filter(|_| build.state == BuildState::Succeeded),
        description,
        auto_inactive: build.state == BuildState::Succeeded,
    }
}

fn preview_comment(state: &GitHubService, site: &Site, build: &Build) -> String {
    let short = &build.commit_sha[..build.commit_sha.len().min(7)];
    let log = build_log_url(state, build.id);
    let preview = build
        .pr_number
        .map(|pr| {
            state
                .urls
                .site_url(&format!("deploy-preview-{pr}--{}", site.name))
        })
        .unwrap_or_default();
    let (headline, details) = match build.state {
        BuildState::Queued | BuildState::Running => (
            format!("🔨 Building the deploy preview of **{}**", site.name),
            format!("It will be served at {preview} when the build ends."),
        ),
        BuildState::Succeeded => (
            format!("✅ The deploy preview of **{}** is ready", site.name),
            format!(
                "Preview: {preview}{}",
                deploy_url(state, site, build)
                    .filter(|url| *url != preview)
                    .map(|url| format!("\nThis deploy: {url}"))
                    .unwrap_or_default()
            ),
        ),
        BuildState::Failed => (
            format!("❌ The deploy preview of **{}** failed to build", site.name),
            build
                .error
                .clone()
                .unwrap_or_else(|| "See the build log.".to_owned()),
        ),
        BuildState::Cancelled => (
            format!("⏹️ The deploy preview build of **{}** was cancelled", site.name),
            "A newer commit or a person stopped it.".to_owned(),
        ),
        BuildState::Skipped => (
            format!("⏭️ The deploy preview of **{}** was not rebuilt", site.name),
            format!(
                "Skipped: {}.",
                build.skip_reason.as_deref().unwrap_or("nothing to build")
            ),
        ),
    };
    format!(
        "{}\n### {headline}\n\n{details}\n\n| | |\n|---|---|\n| Commit | `{short}` |\n| Build | [#{}]({log}) |\n",
        comment_marker(site),
        build.id,
    )
}
