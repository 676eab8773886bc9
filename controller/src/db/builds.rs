//! Builds and the job queue.
//!
//! A build is one attempt to build one commit in one context; its job is what
//! a runner leases. A claim reads the queue and leases a job in one
//! transaction: on SQLite under its one writer lock (claims arriving together
//! share one transaction), on PostgreSQL with the job's row locked, so two
//! runners can never claim the same job. Every lease carries a fresh id (the
//! fencing token); each call about the job must present it.

use super::logs::append_in_tx;
use super::runners::{RunnerRecord, labels_satisfy};
use super::{Backend, Database, now_millis, placeholders, value_rows};
use jamstack_proto::{BuildContext, StepTiming};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BuildState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Nothing was built on purpose (`[skip ci]`, the `ignore` command).
    Skipped,
}

impl BuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Queued => "queued",
            BuildState::Running => "running",
            BuildState::Succeeded => "succeeded",
            BuildState::Failed => "failed",
            BuildState::Cancelled => "cancelled",
            BuildState::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "queued" => BuildState::Queued,
            "running" => BuildState::Running,
            "succeeded" => BuildState::Succeeded,
            "cancelled" => BuildState::Cancelled,
            "skipped" => BuildState::Skipped,
            _ => BuildState::Failed,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BuildState::Succeeded | BuildState::Failed | BuildState::Cancelled | BuildState::Skipped
        )
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Build {
    pub id: i64,
    pub site_id: i64,
    pub site: String,
    pub context: BuildContext,
    pub branch: String,
    pub commit_sha: String,
    pub commit_message: Option<String>,
    pub author: Option<String>,
    pub pr_number: Option<i64>,
    /// A pull request from a fork: code from outside the repository.
    pub from_fork: bool,
    /// A commit picked by hand with a `builds` token, not (yet) reported
    /// reachable from `branch` by a runner: built without secrets and
    /// never published to production.
    pub commit_unverified: bool,
    pub trigger: String,
    /// Why it was asked for, in words: a build hook's or a schedule's title.
    pub trigger_title: Option<String>,
    /// The body a build hook's caller POSTed, as text; for a scheduled
    /// build, `{"schedule_id": …, "tick": "<RFC 3339, UTC>"}`.
    pub trigger_payload: Option<String>,
    pub state: BuildState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    /// Why a skipped build built nothing.
    pub skip_reason: Option<String>,
    pub deploy_id: Option<String>,
    /// The number of times the job was leased; each attempt has its own log.
    pub attempts: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// How long each step of the finished attempt took, in order, as its
    /// runner reported them; empty while the build runs, and for runners
    /// that report none (protocol 9) or builds that never ran.
    pub step_timings: Vec<StepTiming>,
    /// Why a queued build has not started, when something keeps it: no
    /// registered runner has its labels, or it has waited past the
    /// controller's `--queued-warning-seconds`. Worked out when read (see
    /// [`crate::waiting`]), never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewBuild {
    pub site_id: i64,
    pub context: BuildContext,
    pub branch: String,
    pub commit_sha: String,
    pub commit_message: Option<String>,
    pub author: Option<String>,
    pub pr_number: Option<i64>,
    pub from_fork: bool,
    /// See [`Build::commit_unverified`].
    pub commit_unverified: bool,
    pub trigger: &'static str,
    /// See [`Build::trigger_title`].
    pub trigger_title: Option<String>,
    /// See [`Build::trigger_payload`].
    pub trigger_payload: Option<String>,
}

/// A queued or running build, for the queue view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct QueueEntry {
    pub build_id: i64,
    pub site: String,
    pub context: String,
    pub branch: String,
    pub commit_sha: String,
    pub state: String,
    pub runner: Option<String>,
    pub attempt: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    /// See [`Build::waiting_reason`].
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
}

/// A queued job, with what decides which runner may take it and when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedJob {
    pub build_id: i64,
    pub site_id: i64,
    pub site: String,
    /// As stored: sorted, joined by commas.
    pub required_labels: String,
    /// When the job was queued (again, after a lost runner).
    pub queued_at: i64,
    /// The site's builds running at once; 0 for no limit.
    pub site_limit: i64,
    pub site_running: i64,
}

/// One lease of a build's job, with its own log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Attempt {
    pub attempt: i64,
    pub runner: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// `None` while running; a build state, `lost` or `timed-out` after.
    pub outcome: Option<String>,
}

/// Advisory lock keys (PostgreSQL) serializing claims per site and for the
/// global limit; the high bits keep them apart from anyone else's keys.
const ADVISORY_SITE: i64 = 0x4a53_0001 << 32;
const ADVISORY_GLOBAL: i64 = 0x4a53_0002 << 32;
/// Per team: the key plus the team's id, as for sites.
const ADVISORY_TEAM: i64 = 0x4a53_0004 << 32;

async fn try_advisory_lock(tx: &mut sqlx::Transaction<'_, sqlx::Any>, key: i64) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_xact_lock($1)")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// How a runner says a job ended (see [`Database::finish_job`]).
#[derive(Debug, Clone, Copy)]
pub struct FinishedAs<'a> {
    pub state: BuildState,
    pub exit_code: Option<i64>,
    /// The failure's message, or a skipped build's reason.
    pub error: Option<&'a str>,
    pub deploy_id: Option<&'a str>,
    pub step_timings: &'a [StepTiming],
}

/// A runner saying how the job it holds under `lease_id` ended (see
/// [`Database::finish_jobs`]).
#[derive(Debug, Clone, Copy)]
pub struct JobFinish<'a> {
    pub job_id: i64,
    pub lease_id: &'a str,
    pub how: FinishedAs<'a>,
}

/// A build whose job a runner just finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedJob {
    pub build_id: i64,
    pub site_id: i64,
    pub started_at: Option<i64>,
    pub finished_at: i64,
}

/// A job just claimed by a runner.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub job_id: i64,
    pub build_id: i64,
    pub attempt: i64,
    pub lease_id: String,
}

const BUILD_SELECT: &str = "SELECT b.id, b.site_id, s.name AS site, b.context, b.branch, b.commit_sha, \
     b.commit_message, b.author, b.pr_number, b.from_fork, b.commit_unverified, b.trigger, b.trigger_title, b.trigger_payload, b.state, b.exit_code, b.error, \
     b.skip_reason, b.deploy_id, j.attempt, b.created_at, b.started_at, b.finished_at, b.step_timings \
     FROM builds b JOIN sites s ON s.id = b.site_id JOIN jobs j ON j.build_id = b.id";

/// A row of [`BUILD_SELECT`]: flags are stored as 0 or 1, the step
/// timings as a JSON array.
#[derive(sqlx::FromRow)]
struct BuildRow {
    id: i64,
    site_id: i64,
    site: String,
    context: String,
    branch: String,
    commit_sha: String,
    commit_message: Option<String>,
    author: Option<String>,
    pr_number: Option<i64>,
    from_fork: i64,
    commit_unverified: i64,
    trigger: String,
    trigger_title: Option<String>,
    trigger_payload: Option<String>,
    state: String,
    exit_code: Option<i64>,
    error: Option<String>,
    skip_reason: Option<String>,
    deploy_id: Option<String>,
    attempt: i64,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    step_timings: Option<String>,
}

impl From<BuildRow> for Build {
    fn from(row: BuildRow) -> Self {
        Build {
            id: row.id,
            site_id: row.site_id,
            site: row.site,
            context: BuildContext::parse(&row.context).unwrap_or(BuildContext::Production),
            branch: row.branch,
            commit_sha: row.commit_sha,
            commit_message: row.commit_message,
            author: row.author,
            pr_number: row.pr_number,
            from_fork: row.from_fork != 0,
            commit_unverified: row.commit_unverified != 0,
            trigger: row.trigger,
            trigger_title: row.trigger_title,
            trigger_payload: row.trigger_payload,
            state: BuildState::parse(&row.state),
            exit_code: row.exit_code,
            error: row.error,
            skip_reason: row.skip_reason,
            deploy_id: row.deploy_id,
            attempts: row.attempt,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            step_timings: row
                .step_timings
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
            waiting_reason: None,
        }
    }
}

/// A job of `jobs` and the attempt it is on (`id, build_id, attempt`).
#[derive(sqlx::FromRow)]
struct JobAttempt {
    id: i64,
    build_id: i64,
    attempt: i64,
}

impl JobAttempt {
    fn leased(self, lease_id: &str) -> LeasedJob {
        LeasedJob {
            job_id: self.id,
            build_id: self.build_id,
            attempt: self.attempt,
            lease_id: lease_id.to_owned(),
        }
    }
}

/// A build a finished job just ended (`id, site_id, started_at`).
#[derive(Clone, Copy, sqlx::FromRow)]
struct EndedBuild {
    id: i64,
    site_id: i64,
    started_at: Option<i64>,
}

impl EndedBuild {
    fn finished_job_at(self, now: i64) -> FinishedJob {
        FinishedJob {
            build_id: self.id,
            site_id: self.site_id,
            started_at: self.started_at,
            finished_at: now,
        }
    }
}

/// Leases job `$6` if it is still queued: `$1` lease id, `$2` runner name,
/// `$3` runner id, `$4` expiry, `$5` now.
const CLAIM_JOB_BY_ID: &str = "UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_id = $1, \
     runner_name = $2, runner_id = $3, lease_expires_at = $4, leased_at = $5 \
     WHERE id = $6 AND state = 'queued' RETURNING id, build_id, attempt";

/// PostgreSQL: after a `claimed` CTE (`id, build_id, attempt`), marks the
/// build running and records the attempt in the same statement.
const START_CLAIMED_CTES: &str = "started AS (UPDATE builds SET state = 'running', \
     started_at = COALESCE(started_at, $5) WHERE id IN (SELECT build_id FROM claimed)), \
     attempted AS (INSERT INTO attempts (build_id, attempt, runner_name, started_at) \
     SELECT build_id, attempt, $2, $5 FROM claimed)";

/// Ends a build (the `WHERE` follows) in state `$1`: `$2` exit code, `$3`
/// error or skip reason, `$4` deploy id, `$5` now.
const FINISH_BUILD: &str = "UPDATE builds SET state = $1, exit_code = $2, \
     error = CASE WHEN $1 = 'skipped' THEN NULL ELSE $3 END, \
     skip_reason = CASE WHEN $1 = 'skipped' THEN $3 ELSE NULL END, \
     deploy_id = COALESCE($4, deploy_id), finished_at = $5";

/// [`FINISH_BUILD`] for many builds at once, each with its own ending:
/// after an `ended (id, state, exit_code, error, deploy_id, step_timings)`
/// table, with `$1` now.
const FINISH_BUILDS_FROM_ENDED: &str = "UPDATE builds SET state = ended.state, exit_code = ended.exit_code, \
     error = CASE WHEN ended.state = 'skipped' THEN NULL ELSE ended.error END, \
     skip_reason = CASE WHEN ended.state = 'skipped' THEN ended.error ELSE NULL END, \
     deploy_id = COALESCE(ended.deploy_id, builds.deploy_id), finished_at = $1, \
     step_timings = ended.step_timings FROM ended WHERE builds.id = ended.id";

/// The step timings a runner reported, as the `step_timings` column keeps
/// them (a JSON array), or NULL for none.
fn step_timings_column(steps: &[StepTiming]) -> Option<String> {
    (!steps.is_empty()).then(|| serde_json::to_string(steps).expect("step timings serialize"))
}

/// How many of the oldest queued jobs a claim on PostgreSQL looks at
/// before it searches the whole queue (see `claim_unlimited_in_one_statement`).
/// More than the runners that usually claim at the same moment, so the
/// search rarely goes further.
const CLAIM_HEAD: i64 = 64;

/// How many of the oldest queued jobs a claim reads as candidates, beyond
/// one for each claim made together: enough to pass over jobs whose labels
/// the runner lacks or whose team is full.
const CLAIM_CANDIDATES: usize = 50;

/// A runner asking for a job under a new lease (see
/// [`Database::claim_next_jobs`]).
#[derive(Debug, Clone, Copy)]
pub struct JobClaim<'a> {
    pub runner: &'a RunnerRecord,
    pub lease_id: &'a str,
}

/// A queued job a claim may take, with what limits it.
#[derive(sqlx::FromRow)]
struct Candidate {
    job_id: i64,
    required_labels: String,
    site_id: i64,
    site_limit: i64,
    team_id: i64,
    team_limit: i64,
}

/// The oldest `limit` queued jobs whose site and team have room, locked
/// with `lock` (PostgreSQL). Sites and teams already at their limit are
/// left out here, so a long queue of one busy site or team cannot hide
/// others' jobs; a claim counts again, under its lock, before it takes one.
fn candidates_sql(limit: usize, lock: &str) -> String {
    format!(
        "SELECT j.id AS job_id, j.required_labels, b.site_id, s.max_concurrent_builds AS site_limit, \
         COALESCE(t.id, 0) AS team_id, COALESCE(t.max_concurrent_builds, 0) AS team_limit \
         FROM jobs j JOIN builds b ON b.id = j.build_id JOIN sites s ON s.id = b.site_id \
         LEFT JOIN teams t ON t.id = s.team_id \
         WHERE j.state = 'queued' AND (s.max_concurrent_builds = 0 OR s.max_concurrent_builds > \
         (SELECT COUNT(*) FROM jobs j2 JOIN builds b2 ON b2.id = j2.build_id \
          WHERE j2.state = 'leased' AND b2.site_id = b.site_id)) \
         AND {TEAM_HAS_ROOM} \
         ORDER BY j.id LIMIT {limit}{lock}"
    )
}

/// What [`leased_per`] counts by.
enum LeasedPer {
    Site,
    Team,
}

/// How many jobs are leased for each of the sites or teams `ids` (those
/// with none are left out), in one statement.
async fn leased_per(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    per: LeasedPer,
    ids: &[i64],
) -> anyhow::Result<HashMap<i64, i64>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (key, join) = match per {
        LeasedPer::Site => ("b.site_id", ""),
        LeasedPer::Team => ("s.team_id", " JOIN sites s ON s.id = b.site_id"),
    };
    let sql = format!(
        "SELECT {key}, COUNT(*) FROM jobs j JOIN builds b ON b.id = j.build_id{join} \
         WHERE j.state = 'leased' AND {key} IN ({}) GROUP BY {key}",
        placeholders(ids.len(), 1)
    );
    let mut query = sqlx::query_as::<_, (i64, i64)>(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(&mut **tx).await?.into_iter().collect())
}

/// How many jobs of one site or team are leased.
async fn leased_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    per: LeasedPer,
    id: i64,
) -> anyhow::Result<i64> {
    Ok(leased_per(tx, per, &[id]).await?.get(&id).copied().unwrap_or(0))
}

/// What the one-statement claim on PostgreSQL found.
enum OneStatementClaim {
    Claimed(LeasedJob),
    NothingQueued,
    /// The oldest job this runner may run belongs to a site or a team with
    /// a limit.
    HasLimit,
}

/// Whether the team of site `s` (joined as `t`, possibly none) runs fewer
/// builds than its limit, in a claim's `WHERE`.
const TEAM_HAS_ROOM: &str = "(t.max_concurrent_builds IS NULL OR t.max_concurrent_builds = 0 \
     OR t.max_concurrent_builds > (SELECT COUNT(*) FROM jobs j3 JOIN builds b3 ON b3.id = j3.build_id \
     JOIN sites s3 ON s3.id = b3.site_id WHERE j3.state = 'leased' AND s3.team_id = s.team_id))";

impl Database {
    /// Records a build and queues its job, in one transaction. Older builds
    /// of the same site, context and branch still waiting in the queue are
    /// superseded (cancelled, naming the newer build); running ones are asked
    /// to stop too when the site says so. Returns the new build's id and the
    /// ids of the builds it superseded.
    pub async fn enqueue_build(&self, build: &NewBuild) -> anyhow::Result<(i64, Vec<i64>)> {
        self.insert_build(build, None).await
    }

    /// Records a build that is skipped before it starts (its commit asked
    /// for no build), so the skip is visible with its reason.
    pub async fn insert_skipped_build(&self, build: &NewBuild, reason: &str) -> anyhow::Result<i64> {
        Ok(self.insert_build(build, Some(reason)).await?.0)
    }

    async fn insert_build(
        &self,
        build: &NewBuild,
        skip_reason: Option<&str>,
    ) -> anyhow::Result<(i64, Vec<i64>)> {
        let now = now_millis();
        let (build_state, job_state, finished_at) = match skip_reason {
            None => ("queued", "queued", None),
            Some(_) => ("skipped", "done", Some(now)),
        };
        let mut tx = self.write_tx().await?;
        let build_id: i64 = sqlx::query_scalar(
            "INSERT INTO builds (site_id, context, branch, commit_sha, commit_message, author, \
             trigger, state, created_at, pr_number, from_fork, skip_reason, finished_at, commit_unverified, \
             trigger_title, trigger_payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
        )
        .bind(build.site_id)
        .bind(build.context.as_str())
        .bind(&build.branch)
        .bind(&build.commit_sha)
        .bind(&build.commit_message)
        .bind(&build.author)
        .bind(build.trigger)
        .bind(build_state)
        .bind(now)
        .bind(build.pr_number)
        .bind(i64::from(build.from_fork))
        .bind(skip_reason)
        .bind(finished_at)
        .bind(i64::from(build.commit_unverified))
        .bind(&build.trigger_title)
        .bind(&build.trigger_payload)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (build_id, state, created_at, required_labels) \
             SELECT $1, $2, $3, required_labels FROM sites WHERE id = $4",
        )
        .bind(build_id)
        .bind(job_state)
        .bind(now)
        .bind(build.site_id)
        .execute(&mut *tx)
        .await?;
        if skip_reason.is_some() {
            tx.commit().await?;
            return Ok((build_id, Vec::new()));
        }
        // Live builds only (a live job's build is queued or running): the
        // partial index `builds_branch_live` holds just those, where all
        // builds of a branch grow with its history.
        let same_branch = "SELECT id FROM builds WHERE site_id = $1 AND context = $2 AND branch = $3 AND id < $4 \
             AND state IN ('queued', 'running')";
        // One statement: queued builds of the branch are superseded, and
        // running ones are asked to stop if the site says so (`state` in
        // `SET` is the value before the update, in `RETURNING` after it).
        let stopped: Vec<(i64, String)> = sqlx::query_as(&format!(
            "UPDATE jobs SET state = CASE WHEN state = 'queued' THEN 'done' ELSE state END, \
             cancel_requested = CASE WHEN state = 'leased' THEN 1 ELSE cancel_requested END \
             WHERE state IN ('queued', 'leased') AND build_id IN ({same_branch}) AND (state = 'queued' \
             OR EXISTS (SELECT 1 FROM sites WHERE id = $1 AND cancel_superseded = 1)) \
             RETURNING build_id, state"
        ))
        .bind(build.site_id)
        .bind(build.context.as_str())
        .bind(&build.branch)
        .bind(build_id)
        .fetch_all(&mut *tx)
        .await?;
        let superseded: Vec<i64> = stopped
            .into_iter()
            .filter(|(_, state)| state == "done")
            .map(|(build_id, _)| build_id)
            .collect();
        for old in &superseded {
            sqlx::query("UPDATE builds SET state = 'cancelled', finished_at = $1, error = $2 WHERE id = $3")
                .bind(now)
                .bind(format!(
                    "superseded by build {build_id}, a newer commit of the same branch"
                ))
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }

        tx.commit().await?;
        Ok((build_id, superseded))
    }

    /// The newest build of a pull request's deploy preview.
    pub async fn latest_preview_build(&self, site_id: i64, pr_number: i64) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(id) FROM builds WHERE site_id = $1 AND pr_number = $2 AND context = 'deploy-preview'",
        )
        .bind(site_id)
        .bind(pr_number)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The commit of the site's newest successful build in `context`: of
    /// the same branch for a branch deploy, of the same pull request for a
    /// preview, any for production. A commit picked by hand and not found
    /// on its branch is no base to compare with.
    pub async fn last_successful_commit(
        &self,
        site_id: i64,
        context: BuildContext,
        branch: &str,
        pr_number: Option<i64>,
    ) -> anyhow::Result<Option<String>> {
        let (same_branch, same_pr) = match context {
            BuildContext::Production => (None, None),
            BuildContext::BranchDeploy => (Some(branch), None),
            BuildContext::DeployPreview => (None, pr_number),
        };
        Ok(sqlx::query_scalar(
            "SELECT commit_sha FROM builds WHERE site_id = $1 AND context = $2 AND state = 'succeeded' \
             AND commit_sha <> '' AND commit_unverified = 0 \
             AND ($3 IS NULL OR branch = $3) AND ($4 IS NULL OR pr_number = $4) \
             ORDER BY finished_at DESC, id DESC LIMIT 1",
        )
        .bind(site_id)
        .bind(context.as_str())
        .bind(same_branch)
        .bind(same_pr)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Unfinished builds of one branch or pull request of a site, to be
    /// cancelled when the branch is deleted or the pull request closed.
    pub async fn unfinished_builds(
        &self,
        site_id: i64,
        context: BuildContext,
        branch: &str,
        pr_number: Option<i64>,
    ) -> anyhow::Result<Vec<i64>> {
        // A pull request is named by its number, a branch by its name.
        let filter = if pr_number.is_some() {
            "pr_number = $3"
        } else {
            "branch = $3"
        };
        let sql = format!(
            "SELECT id FROM builds WHERE site_id = $1 AND context = $2 \
             AND state IN ('queued', 'running') AND {filter} ORDER BY id"
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(site_id)
            .bind(context.as_str());
        query = match pr_number {
            Some(pr) => query.bind(pr),
            None => query.bind(branch.to_owned()),
        };
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn build(&self, build_id: i64) -> anyhow::Result<Option<Build>> {
        let row: Option<BuildRow> = sqlx::query_as(&format!("{BUILD_SELECT} WHERE b.id = $1"))
            .bind(build_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Build::from))
    }

    pub async fn builds_of_site(&self, site_id: i64, limit: i64) -> anyhow::Result<Vec<Build>> {
        self.builds_of_site_page(site_id, limit, 0).await
    }

    /// One page of a site's builds, newest first.
    pub async fn builds_of_site_page(
        &self,
        site_id: i64,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<Vec<Build>> {
        let rows: Vec<BuildRow> = sqlx::query_as(&format!(
            "{BUILD_SELECT} WHERE b.site_id = $1 ORDER BY b.id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(site_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Build::from).collect())
    }

    /// Claims the oldest queued job `runner` may run: its labels cover the
    /// job's, the job's site runs fewer builds than its limit, the site's
    /// team fewer than the team's, and fewer than `global_limit` jobs run
    /// in all (0: no limit). `None` when there is no such job.
    ///
    /// The claim is atomic: on SQLite the whole transaction holds the one
    /// write lock (see [`Database::claim_next_jobs`]); on PostgreSQL
    /// candidates are locked with `FOR UPDATE SKIP LOCKED` (controllers
    /// never wait on each other's rows) and the per-site, per-team and
    /// global counts are taken under advisory locks, so two controllers
    /// cannot both fill a site's or a team's last slot.
    pub async fn claim_next_job(
        &self,
        runner: &RunnerRecord,
        lease_id: &str,
        lease_millis: i64,
        global_limit: i64,
    ) -> anyhow::Result<Option<LeasedJob>> {
        match self.backend {
            Backend::Sqlite => Ok(self
                .claim_jobs_in_one_transaction(&[JobClaim { runner, lease_id }], lease_millis, global_limit)
                .await?
                .pop()
                .flatten()),
            Backend::Postgres => {
                self.claim_next_job_on_postgres(runner, lease_id, lease_millis, global_limit)
                    .await
            }
        }
    }

    /// Claims a job for each of `claims`, as [`Database::claim_next_job`]
    /// would one after the other, in their order: the answer at each
    /// position is that claim's job, or `None`.
    ///
    /// On SQLite all of them are claimed in one transaction, in a fixed
    /// number of statements whatever their count: every claim waits for the
    /// one writer connection, and each statement is a trip to its thread
    /// and back, so runners asking together are served together. On
    /// PostgreSQL, where claims run side by side, one at a time.
    pub async fn claim_next_jobs(
        &self,
        claims: &[JobClaim<'_>],
        lease_millis: i64,
        global_limit: i64,
    ) -> anyhow::Result<Vec<Option<LeasedJob>>> {
        match self.backend {
            Backend::Sqlite => {
                self.claim_jobs_in_one_transaction(claims, lease_millis, global_limit)
                    .await
            }
            Backend::Postgres => {
                let mut leased = Vec::with_capacity(claims.len());
                for claim in claims {
                    leased.push(
                        self.claim_next_job_on_postgres(
                            claim.runner,
                            claim.lease_id,
                            lease_millis,
                            global_limit,
                        )
                        .await?,
                    );
                }
                Ok(leased)
            }
        }
    }

    /// SQLite: see [`Database::claim_next_jobs`]. The write lock is held
    /// from the first read, so the counts read here stay true until the
    /// commit; the jobs claimed earlier in the same transaction are added
    /// to them as it goes.
    async fn claim_jobs_in_one_transaction(
        &self,
        claims: &[JobClaim<'_>],
        lease_millis: i64,
        global_limit: i64,
    ) -> anyhow::Result<Vec<Option<LeasedJob>>> {
        let now = now_millis();
        let mut leased: Vec<Option<LeasedJob>> = vec![None; claims.len()];
        if claims.is_empty() {
            return Ok(leased);
        }
        let mut tx = self.write_tx().await?;
        let mut global_room = if global_limit > 0 {
            let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'leased'")
                .fetch_one(&mut *tx)
                .await?;
            if running >= global_limit {
                tx.commit().await?;
                return Ok(leased);
            }
            Some(global_limit - running)
        } else {
            None
        };
        let candidates: Vec<Candidate> = sqlx::query_as(&candidates_sql(CLAIM_CANDIDATES + claims.len(), ""))
            .fetch_all(&mut *tx)
            .await?;
        let mut taken = vec![false; candidates.len()];
        let limited = |id: fn(&Candidate) -> (i64, i64)| -> Vec<i64> {
            let mut ids: Vec<i64> = candidates
                .iter()
                .map(id)
                .filter(|(_, limit)| *limit > 0)
                .map(|(id, _)| id)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let mut site_running =
            leased_per(&mut tx, LeasedPer::Site, &limited(|c| (c.site_id, c.site_limit))).await?;
        let mut team_running =
            leased_per(&mut tx, LeasedPer::Team, &limited(|c| (c.team_id, c.team_limit))).await?;
        let full = |running: &HashMap<i64, i64>, id: i64, limit: i64| {
            limit > 0 && running.get(&id).copied().unwrap_or(0) >= limit
        };
        // (claim's position, job) for every claim that found one.
        let mut chosen: Vec<(usize, &Candidate)> = Vec::new();
        for (position, claim) in claims.iter().enumerate() {
            if global_room == Some(0) {
                break;
            }
            for (index, candidate) in candidates.iter().enumerate() {
                if taken[index]
                    || !labels_satisfy(&claim.runner.labels, &candidate.required_labels)
                    || full(&team_running, candidate.team_id, candidate.team_limit)
                    || full(&site_running, candidate.site_id, candidate.site_limit)
                {
                    continue;
                }
                taken[index] = true;
                *team_running.entry(candidate.team_id).or_default() += 1;
                *site_running.entry(candidate.site_id).or_default() += 1;
                global_room = global_room.map(|room| room - 1);
                chosen.push((position, candidate));
                break;
            }
        }
        if chosen.is_empty() {
            tx.commit().await?;
            return Ok(leased);
        }
        // The leases, each with its own id and runner, in one statement.
        let sql = format!(
            "WITH claim (id, lease_id, runner_name, runner_id) AS (VALUES {}) \
             UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_id = claim.lease_id, \
             runner_name = claim.runner_name, runner_id = claim.runner_id, lease_expires_at = $1, \
             leased_at = $2 FROM claim WHERE jobs.id = claim.id AND jobs.state = 'queued' \
             RETURNING jobs.id, jobs.build_id, jobs.attempt",
            value_rows(chosen.len(), 4, 3)
        );
        let mut query = sqlx::query_as::<_, JobAttempt>(&sql)
            .bind(now + lease_millis)
            .bind(now);
        for (position, candidate) in &chosen {
            let claim = &claims[*position];
            query = query
                .bind(candidate.job_id)
                .bind(claim.lease_id)
                .bind(&claim.runner.name)
                .bind(claim.runner.id);
        }
        let claimed: HashMap<i64, JobAttempt> = query
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        // Read under the write lock, every candidate is still queued.
        anyhow::ensure!(
            claimed.len() == chosen.len(),
            "claimed {} of the {} jobs chosen",
            claimed.len(),
            chosen.len()
        );
        let build_ids: Vec<i64> = claimed.values().map(|job| job.build_id).collect();
        let start_sql = format!(
            "UPDATE builds SET state = 'running', started_at = COALESCE(started_at, $1) \
             WHERE id IN ({})",
            placeholders(build_ids.len(), 2)
        );
        let mut start = sqlx::query(&start_sql).bind(now);
        for build_id in &build_ids {
            start = start.bind(*build_id);
        }
        start.execute(&mut *tx).await?;
        let attempts_sql = format!(
            "INSERT INTO attempts (build_id, attempt, runner_name, started_at) VALUES {}",
            value_rows(chosen.len(), 4, 1)
        );
        let mut attempts = sqlx::query(&attempts_sql);
        for (position, candidate) in &chosen {
            let job = &claimed[&candidate.job_id];
            attempts = attempts
                .bind(job.build_id)
                .bind(job.attempt)
                .bind(&claims[*position].runner.name)
                .bind(now);
        }
        attempts.execute(&mut *tx).await?;
        tx.commit().await?;
        for (position, candidate) in chosen {
            let job = &claimed[&candidate.job_id];
            leased[position] = Some(LeasedJob {
                job_id: job.id,
                build_id: job.build_id,
                attempt: job.attempt,
                lease_id: claims[position].lease_id.to_owned(),
            });
        }
        Ok(leased)
    }

    /// PostgreSQL: see [`Database::claim_next_job`].
    async fn claim_next_job_on_postgres(
        &self,
        runner: &RunnerRecord,
        lease_id: &str,
        lease_millis: i64,
        global_limit: i64,
    ) -> anyhow::Result<Option<LeasedJob>> {
        let now = now_millis();
        if global_limit == 0 {
            match self
                .claim_unlimited_in_one_statement(runner, lease_id, lease_millis, now)
                .await?
            {
                OneStatementClaim::Claimed(job) => return Ok(Some(job)),
                OneStatementClaim::NothingQueued => return Ok(None),
                OneStatementClaim::HasLimit => {}
            }
        }
        let mut tx = self.write_tx().await?;
        if global_limit > 0 {
            if !try_advisory_lock(&mut tx, ADVISORY_GLOBAL).await? {
                return Ok(None);
            }
            let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'leased'")
                .fetch_one(&mut *tx)
                .await?;
            if running >= global_limit {
                return Ok(None);
            }
        }
        let candidates: Vec<Candidate> =
            sqlx::query_as(&candidates_sql(CLAIM_CANDIDATES, " FOR UPDATE OF j SKIP LOCKED"))
                .fetch_all(&mut *tx)
                .await?;
        let mut full_sites = HashSet::new();
        let mut full_teams = HashSet::new();
        for Candidate {
            job_id,
            required_labels,
            site_id,
            site_limit,
            team_id,
            team_limit,
        } in candidates
        {
            if !labels_satisfy(&runner.labels, &required_labels)
                || full_sites.contains(&site_id)
                || full_teams.contains(&team_id)
            {
                continue;
            }
            if team_limit > 0
                && (!try_advisory_lock(&mut tx, ADVISORY_TEAM + team_id).await?
                    || leased_of(&mut tx, LeasedPer::Team, team_id).await? >= team_limit)
            {
                full_teams.insert(team_id);
                continue;
            }
            if site_limit > 0
                && (!try_advisory_lock(&mut tx, ADVISORY_SITE + site_id).await?
                    || leased_of(&mut tx, LeasedPer::Site, site_id).await? >= site_limit)
            {
                full_sites.insert(site_id);
                continue;
            }
            // The lease, the build's start and the attempt in one round trip.
            let Some(claimed) = sqlx::query_as::<_, JobAttempt>(&format!(
                "WITH claimed AS ({CLAIM_JOB_BY_ID}), {START_CLAIMED_CTES} \
                 SELECT id, build_id, attempt FROM claimed"
            ))
            .bind(lease_id)
            .bind(&runner.name)
            .bind(runner.id)
            .bind(now + lease_millis)
            .bind(now)
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            tx.commit().await?;
            return Ok(Some(claimed.leased(lease_id)));
        }
        tx.commit().await?;
        Ok(None)
    }
    /// PostgreSQL, no global limit: claims the oldest job `runner` may run
    /// in one statement (candidate under `FOR UPDATE SKIP LOCKED`, lease,
    /// build started, attempt recorded), unless that job's site has a limit
    /// of concurrent builds: its count needs the site's advisory lock first,
    /// which one statement cannot take before its snapshot.
    ///
    /// The candidate is sought among the oldest [`CLAIM_HEAD`] queued jobs
    /// first: with a long queue and statistics that lag behind it (a burst
    /// of pushes), the planner otherwise joins and sorts the whole queue
    /// for every lease (15–20 ms with 5,000 queued, against 1 ms). Only when
    /// all of those are taken or wait for their site is the whole queue
    /// searched.
    async fn claim_unlimited_in_one_statement(
        &self,
        runner: &RunnerRecord,
        lease_id: &str,
        lease_millis: i64,
        now: i64,
    ) -> anyhow::Result<OneStatementClaim> {
        let first = self
            .claim_unlimited_among(runner, lease_id, lease_millis, now, Some(CLAIM_HEAD))
            .await?;
        match first {
            (OneStatementClaim::NothingQueued, looked_at) if looked_at >= CLAIM_HEAD => Ok(self
                .claim_unlimited_among(runner, lease_id, lease_millis, now, None)
                .await?
                .0),
            (claim, _) => Ok(claim),
        }
    }

    /// One claim statement over the oldest `head` queued jobs this runner
    /// may run (all of them with `None`); also says how many it looked at.
    async fn claim_unlimited_among(
        &self,
        runner: &RunnerRecord,
        lease_id: &str,
        lease_millis: i64,
        now: i64,
        head: Option<i64>,
    ) -> anyhow::Result<(OneStatementClaim, i64)> {
        let runnable = "j.state = 'queued' \
             AND array_remove(string_to_array(j.required_labels, ','), '') <@ string_to_array($6, ',')";
        let (head_cte, from, looked_at) = match head {
            Some(head) => (
                format!(
                    "head AS MATERIALIZED (SELECT j.id FROM jobs j WHERE {runnable} ORDER BY j.id LIMIT {head}), "
                ),
                "head h JOIN jobs j ON j.id = h.id",
                "(SELECT COUNT(*) FROM head)",
            ),
            None => (String::new(), "jobs j", "0::BIGINT"),
        };
        #[derive(sqlx::FromRow)]
        struct OneStatementRow {
            job_id: Option<i64>,
            build_id: Option<i64>,
            attempt: Option<i64>,
            looked_at: i64,
        }
        let row: OneStatementRow = sqlx::query_as(&format!(
            "WITH {head_cte}candidate AS (\
               SELECT j.id, s.max_concurrent_builds AS site_limit, \
               COALESCE(t.max_concurrent_builds, 0) AS team_limit \
               FROM {from} JOIN builds b ON b.id = j.build_id JOIN sites s ON s.id = b.site_id \
               LEFT JOIN teams t ON t.id = s.team_id \
               WHERE {runnable} \
               AND (s.max_concurrent_builds = 0 OR s.max_concurrent_builds > \
                 (SELECT COUNT(*) FROM jobs j2 JOIN builds b2 ON b2.id = j2.build_id \
                  WHERE j2.state = 'leased' AND b2.site_id = b.site_id)) \
               AND {TEAM_HAS_ROOM} \
               ORDER BY j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED), \
             claimed AS (UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_id = $1, \
               runner_name = $2, runner_id = $3, lease_expires_at = $4, leased_at = $5 \
               FROM candidate WHERE jobs.id = candidate.id AND candidate.site_limit = 0 \
               AND candidate.team_limit = 0 \
               AND jobs.state = 'queued' RETURNING jobs.id, jobs.build_id, jobs.attempt), \
             {START_CLAIMED_CTES} \
             SELECT candidate.id AS job_id, claimed.build_id, claimed.attempt, {looked_at} AS looked_at \
             FROM (SELECT 1) one LEFT JOIN candidate ON true LEFT JOIN claimed ON claimed.id = candidate.id"
        ))
        .bind(lease_id)
        .bind(&runner.name)
        .bind(runner.id)
        .bind(now + lease_millis)
        .bind(now)
        .bind(runner.labels.join(","))
        .fetch_one(&self.pool)
        .await?;
        let claim = match (row.job_id, row.build_id, row.attempt) {
            (None, _, _) => OneStatementClaim::NothingQueued,
            (Some(job_id), Some(build_id), Some(attempt)) => OneStatementClaim::Claimed(LeasedJob {
                job_id,
                build_id,
                attempt,
                lease_id: lease_id.to_owned(),
            }),
            (Some(_), _, _) => OneStatementClaim::HasLimit,
        };
        Ok((claim, row.looked_at))
    }

    /// The job's build and attempt if `lease_id` is its live lease.
    pub async fn check_lease(&self, job_id: i64, lease_id: &str) -> anyhow::Result<Option<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT build_id, attempt FROM jobs WHERE id = $1 AND lease_id = $2 \
             AND state = 'leased' AND lease_expires_at > $3",
        )
        .bind(job_id)
        .bind(lease_id)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Gives every leased job at least `grace_millis` from now: called as a
    /// controller starts, because while no controller was up no runner
    /// could send a heartbeat, and a runner that kept building through the
    /// outage must not lose its job for it. A runner that really died is
    /// still noticed, one grace later. Returns how many leases were renewed.
    pub async fn renew_leases_after_start(&self, grace_millis: i64) -> anyhow::Result<u64> {
        let until = now_millis() + grace_millis;
        let renewed = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1 WHERE state = 'leased' AND lease_expires_at < $1",
        )
        .bind(until)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(renewed)
    }

    /// Extends a live lease; returns whether cancellation was requested, or
    /// `None` when the lease is no longer live.
    pub async fn extend_lease(
        &self,
        job_id: i64,
        lease_id: &str,
        lease_millis: i64,
    ) -> anyhow::Result<Option<bool>> {
        let now = now_millis();
        let cancel_requested: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_id = $3 \
             AND state = 'leased' AND lease_expires_at > $4 RETURNING cancel_requested",
        )
        .bind(now + lease_millis)
        .bind(job_id)
        .bind(lease_id)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        Ok(cancel_requested.map(|flag| flag != 0))
    }

    /// Whether cancellation was asked for the job, or `None` when
    /// `lease_id` is not its live lease. A read: heartbeats that wait for a
    /// cancel look often.
    pub async fn cancel_requested(&self, job_id: i64, lease_id: &str) -> anyhow::Result<Option<bool>> {
        let cancel_requested: Option<i64> = sqlx::query_scalar(
            "SELECT cancel_requested FROM jobs WHERE id = $1 AND lease_id = $2 \
             AND state = 'leased' AND lease_expires_at > $3",
        )
        .bind(job_id)
        .bind(lease_id)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(cancel_requested.map(|flag| flag != 0))
    }

    /// Ends a job under its lease and records how the build ended: `error`
    /// is the message of a failed build, or the reason of a skipped one.
    /// Returns the build, or `None` when the lease was not live (nothing is
    /// written then).
    pub async fn finish_job(
        &self,
        job_id: i64,
        lease_id: &str,
        how: FinishedAs<'_>,
    ) -> anyhow::Result<Option<FinishedJob>> {
        match self.backend {
            Backend::Sqlite => Ok(self
                .finish_jobs_in_one_transaction(&[JobFinish {
                    job_id,
                    lease_id,
                    how,
                }])
                .await?
                .pop()
                .flatten()),
            Backend::Postgres => self.finish_job_on_postgres(job_id, lease_id, how).await,
        }
    }

    /// Ends each of `finishes` as [`Database::finish_job`] would, one after
    /// the other: the answer at each position is that job's build, or
    /// `None` when its lease was not live. On SQLite all in one transaction
    /// of a fixed number of statements (see [`Database::claim_next_jobs`]);
    /// on PostgreSQL one at a time.
    pub async fn finish_jobs(&self, finishes: &[JobFinish<'_>]) -> anyhow::Result<Vec<Option<FinishedJob>>> {
        match self.backend {
            Backend::Sqlite => self.finish_jobs_in_one_transaction(finishes).await,
            Backend::Postgres => {
                let mut finished = Vec::with_capacity(finishes.len());
                for finish in finishes {
                    finished.push(
                        self.finish_job_on_postgres(finish.job_id, finish.lease_id, finish.how)
                            .await?,
                    );
                }
                Ok(finished)
            }
        }
    }

    /// SQLite: see [`Database::finish_jobs`].
    async fn finish_jobs_in_one_transaction(
        &self,
        finishes: &[JobFinish<'_>],
    ) -> anyhow::Result<Vec<Option<FinishedJob>>> {
        let now = now_millis();
        let mut finished: Vec<Option<FinishedJob>> = vec![None; finishes.len()];
        // A job named again later in the batch finds it already done, as it
        // would one call after the other.
        let mut named = HashSet::new();
        let firsts: Vec<&JobFinish<'_>> = finishes.iter().filter(|f| named.insert(f.job_id)).collect();
        if firsts.is_empty() {
            return Ok(finished);
        }
        let mut tx = self.write_tx().await?;
        let end_jobs_sql = format!(
            "WITH done (id, lease_id) AS (VALUES {}) \
             UPDATE jobs SET state = 'done', lease_expires_at = NULL FROM done \
             WHERE jobs.id = done.id AND jobs.lease_id = done.lease_id AND jobs.state = 'leased' \
             RETURNING jobs.id, jobs.build_id, jobs.attempt",
            value_rows(firsts.len(), 2, 1)
        );
        let mut end_jobs = sqlx::query_as::<_, JobAttempt>(&end_jobs_sql);
        for finish in &firsts {
            end_jobs = end_jobs.bind(finish.job_id).bind(finish.lease_id);
        }
        let ended: HashMap<i64, JobAttempt> = end_jobs
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        if ended.is_empty() {
            return Ok(finished);
        }
        let live: Vec<(&JobFinish<'_>, &JobAttempt)> = firsts
            .iter()
            .filter_map(|finish| Some((*finish, ended.get(&finish.job_id)?)))
            .collect();
        let end_attempts_sql = format!(
            "WITH ended (build_id, attempt, outcome) AS (VALUES {}) \
             UPDATE attempts SET ended_at = $1, outcome = ended.outcome FROM ended \
             WHERE attempts.build_id = ended.build_id AND attempts.attempt = ended.attempt",
            value_rows(live.len(), 3, 2)
        );
        let mut end_attempts = sqlx::query(&end_attempts_sql).bind(now);
        for (finish, job) in &live {
            end_attempts = end_attempts
                .bind(job.build_id)
                .bind(job.attempt)
                .bind(finish.how.state.as_str());
        }
        end_attempts.execute(&mut *tx).await?;
        let end_builds_sql = format!(
            "WITH ended (id, state, exit_code, error, deploy_id, step_timings) AS (VALUES {}) \
             {FINISH_BUILDS_FROM_ENDED} RETURNING builds.id, builds.site_id, builds.started_at",
            value_rows(live.len(), 6, 2)
        );
        let mut end_builds = sqlx::query_as::<_, EndedBuild>(&end_builds_sql).bind(now);
        for (finish, job) in &live {
            let how = finish.how;
            end_builds = end_builds
                .bind(job.build_id)
                .bind(how.state.as_str())
                .bind(how.exit_code)
                .bind(how.error)
                .bind(how.deploy_id)
                .bind(step_timings_column(how.step_timings));
        }
        let built: HashMap<i64, EndedBuild> = end_builds
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|build| (build.id, build))
            .collect();
        tx.commit().await?;
        let mut answered = HashSet::new();
        for (position, finish) in finishes.iter().enumerate() {
            if !answered.insert(finish.job_id) {
                continue;
            }
            finished[position] = ended
                .get(&finish.job_id)
                .and_then(|job| built.get(&job.build_id))
                .map(|build| build.finished_job_at(now));
        }
        Ok(finished)
    }

    /// PostgreSQL: see [`Database::finish_job`]. One round trip: the job,
    /// its attempt and its build together.
    async fn finish_job_on_postgres(
        &self,
        job_id: i64,
        lease_id: &str,
        FinishedAs {
            state,
            exit_code,
            error,
            deploy_id,
            step_timings,
        }: FinishedAs<'_>,
    ) -> anyhow::Result<Option<FinishedJob>> {
        let step_timings = step_timings_column(step_timings);
        let now = now_millis();
        let built: Option<EndedBuild> = sqlx::query_as(&format!(
            "WITH finished AS (UPDATE jobs SET state = 'done', lease_expires_at = NULL \
               WHERE id = $6 AND lease_id = $7 AND state = 'leased' RETURNING build_id, attempt), \
             ended AS (UPDATE attempts SET ended_at = $5, outcome = $1 FROM finished \
               WHERE attempts.build_id = finished.build_id AND attempts.attempt = finished.attempt), \
             built AS ({FINISH_BUILD}, step_timings = $8 WHERE id IN (SELECT build_id FROM finished) \
               RETURNING id, site_id, started_at) \
             SELECT id, site_id, started_at FROM built"
        ))
        .bind(state.as_str())
        .bind(exit_code)
        .bind(error)
        .bind(deploy_id)
        .bind(now)
        .bind(job_id)
        .bind(lease_id)
        .bind(&step_timings)
        .fetch_optional(self.writer())
        .await?;
        Ok(built.map(|build| build.finished_job_at(now)))
    }

    /// Asks for a build to stop. A queued build is cancelled at once; a
    /// running one is told through its next heartbeat. Returns the state the
    /// build is in afterwards.
    pub async fn request_cancel(&self, build_id: i64) -> anyhow::Result<Option<BuildState>> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        let queued = sqlx::query("UPDATE jobs SET state = 'done' WHERE build_id = $1 AND state = 'queued'")
            .bind(build_id)
            .execute(&mut *tx)
            .await?;
        if queued.rows_affected() == 1 {
            sqlx::query("UPDATE builds SET state = 'cancelled', finished_at = $1 WHERE id = $2")
                .bind(now)
                .bind(build_id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE build_id = $1 AND state = 'leased'")
                .bind(build_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(self.build(build_id).await?.map(|b| b.state))
    }

    /// Returns jobs whose lease ran out to the queue, or fails their build
    /// once it lost its runner `max_attempts` times (attempts handed back
    /// do not count); fails builds running longer than
    /// `max_build_millis`. The log of every lost attempt is kept and ends
    /// with a line saying what happened. Returns how many jobs were requeued
    /// and the builds that failed.
    pub async fn reap_expired_leases(
        &self,
        max_attempts: i64,
        max_build_millis: i64,
    ) -> anyhow::Result<(u64, Vec<i64>)> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        // On PostgreSQL the jobs are locked first, in id order, as a
        // runner's finish locks its job before its attempt and build: read
        // without a lock, a job finished meanwhile was queued again after
        // its success, and the two transactions, taking the attempt and the
        // job in opposite orders, could deadlock. A job being finished right
        // now is skipped; if it is not finished, the next round reaps it.
        // (SQLite has one writer at a time.)
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        #[derive(sqlx::FromRow)]
        struct ExpiredJob {
            #[sqlx(flatten)]
            job: JobAttempt,
            runner_name: Option<String>,
        }
        let expired: Vec<ExpiredJob> = sqlx::query_as(&format!(
            "SELECT id, build_id, attempt, runner_name FROM jobs WHERE state = 'leased' AND lease_expires_at <= $1 \
             ORDER BY id{lock}"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let (mut requeued, mut failed) = (0, Vec::new());
        for ExpiredJob { job, runner_name } in expired {
            let (job_id, build_id, attempt) = (job.id, job.build_id, job.attempt);
            let runner = runner_name.unwrap_or_else(|| "?".to_owned());
            // Only attempts whose runner was lost count: one a runner handed
            // back on its way down (a restart, an upgrade) is no fault of
            // the build.
            let lost_before: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE build_id = $1 AND outcome = 'lost'")
                    .bind(build_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let give_up = lost_before + 1 >= max_attempts;
            let note = if give_up {
                format!(
                    "\n==> Attempt {attempt} lost its runner `{runner}` (no heartbeat before the lease expired). \
                     The build has now lost its runner {max_attempts} times, the most allowed: it failed.\n"
                )
            } else {
                format!(
                    "\n==> Attempt {attempt} lost its runner `{runner}` (no heartbeat before the lease expired). \
                     The build was queued again as attempt {}.\n",
                    attempt + 1
                )
            };
            append_in_tx(&mut tx, build_id, attempt, note.as_bytes()).await?;
            end_attempt(&mut tx, build_id, attempt, "lost", now).await?;
            if give_up {
                sqlx::query(
                    "UPDATE jobs SET state = 'done', lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
                )
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE builds SET state = 'failed', finished_at = $1, error = $2 WHERE id = $3")
                    .bind(now)
                    .bind(format!(
                        "runners stopped answering {max_attempts} times during this build; \
                         check that a runner is up and retry the build"
                    ))
                    .bind(build_id)
                    .execute(&mut *tx)
                    .await?;
                failed.push(build_id);
            } else {
                requeue(&mut tx, job_id, build_id).await?;
                requeued += 1;
            }
        }
        if max_build_millis > 0 {
            let lock = match self.backend {
                Backend::Postgres => " FOR UPDATE OF j SKIP LOCKED",
                Backend::Sqlite => "",
            };
            let overdue: Vec<JobAttempt> = sqlx::query_as(&format!(
                "SELECT j.id, j.build_id, j.attempt FROM jobs j JOIN builds b ON b.id = j.build_id \
                 WHERE j.state = 'leased' AND b.started_at <= $1 ORDER BY j.id{lock}"
            ))
            .bind(now - max_build_millis)
            .fetch_all(&mut *tx)
            .await?;
            for JobAttempt {
                id: job_id,
                build_id,
                attempt,
            } in overdue
            {
                let reason = format!(
                    "the build ran longer than the controller's limit of {} minutes and was stopped",
                    max_build_millis / 60_000
                );
                append_in_tx(
                    &mut tx,
                    build_id,
                    attempt,
                    format!("\n==> {reason}.\n").as_bytes(),
                )
                .await?;
                sqlx::query("UPDATE jobs SET state = 'done', lease_expires_at = NULL WHERE id = $1")
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE attempts SET ended_at = $1, outcome = 'timed-out' WHERE build_id = $2 AND attempt = $3",
                )
                .bind(now)
                .bind(build_id)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE builds SET state = 'failed', finished_at = $1, error = $2 WHERE id = $3")
                    .bind(now)
                    .bind(&reason)
                    .bind(build_id)
                    .execute(&mut *tx)
                    .await?;
                failed.push(build_id);
            }
        }
        tx.commit().await?;
        Ok((requeued, failed))
    }

    /// Puts a job back in the queue at once, under its live lease: a runner
    /// that shuts down mid-build hands its job back instead of letting the
    /// lease run out. The attempt's log gets a closing line and the attempt
    /// is marked `handed-back`; the next runner starts a new attempt.
    /// Returns the build and site, or `None` when the lease was not live
    /// (nothing is written then).
    pub async fn hand_back_job(&self, job_id: i64, lease_id: &str) -> anyhow::Result<Option<(i64, i64)>> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        #[derive(sqlx::FromRow)]
        struct LeasedBuild {
            build_id: i64,
            attempt: i64,
            runner_name: Option<String>,
            site_id: i64,
        }
        let Some(LeasedBuild {
            build_id,
            attempt,
            runner_name,
            site_id,
        }) = sqlx::query_as(
            "SELECT j.build_id, j.attempt, j.runner_name, b.site_id FROM jobs j JOIN builds b ON b.id = j.build_id \
             WHERE j.id = $1 AND j.lease_id = $2 AND j.state = 'leased' AND j.lease_expires_at > $3",
        )
        .bind(job_id)
        .bind(lease_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let note = format!(
            "\n==> Attempt {attempt}: runner `{}` shut down and handed the build back; it was queued again \
             as attempt {}.\n",
            runner_name.unwrap_or_else(|| "?".to_owned()),
            attempt + 1
        );
        append_in_tx(&mut tx, build_id, attempt, note.as_bytes()).await?;
        end_attempt(&mut tx, build_id, attempt, "handed-back", now).await?;
        requeue(&mut tx, job_id, build_id).await?;
        tx.commit().await?;
        Ok(Some((build_id, site_id)))
    }

    /// Everything queued or running, oldest first, across sites.
    pub async fn queue_overview(&self) -> anyhow::Result<Vec<QueueEntry>> {
        Ok(sqlx::query_as(
            "SELECT b.id AS build_id, s.name AS site, b.context, b.branch, b.commit_sha, b.state, \
             j.runner_name AS runner, j.attempt, b.created_at, b.started_at \
             FROM builds b JOIN jobs j ON j.build_id = b.id \
             JOIN sites s ON s.id = b.site_id WHERE j.state IN ('queued', 'leased') ORDER BY b.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The queued jobs (of one build, or all), oldest first, with their
    /// sites' limits and running builds.
    pub async fn queued_jobs(&self, build_id: Option<i64>) -> anyhow::Result<Vec<QueuedJob>> {
        Ok(sqlx::query_as(
            "SELECT b.id AS build_id, b.site_id, s.name AS site, j.required_labels, \
             j.created_at AS queued_at, s.max_concurrent_builds AS site_limit, \
             (SELECT COUNT(*) FROM jobs j2 JOIN builds b2 ON b2.id = j2.build_id \
              WHERE j2.state = 'leased' AND b2.site_id = b.site_id) AS site_running \
             FROM jobs j JOIN builds b ON b.id = j.build_id JOIN sites s ON s.id = b.site_id \
             WHERE j.state = 'queued' AND ($1 IS NULL OR b.id = $1) ORDER BY j.id LIMIT 1000",
        )
        .bind(build_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The attempts of a build, with who ran each and how it ended.
    pub async fn attempts(&self, build_id: i64) -> anyhow::Result<Vec<Attempt>> {
        Ok(sqlx::query_as(
            "SELECT attempt, runner_name AS runner, started_at, ended_at, outcome FROM attempts \
             WHERE build_id = $1 ORDER BY attempt",
        )
        .bind(build_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records the commit a runner checked out. The commit id is only filled
    /// in for builds queued without one; message and author when missing.
    pub async fn record_build_commit(
        &self,
        build_id: i64,
        sha: &str,
        message: &str,
        author: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE builds SET commit_sha = CASE WHEN commit_sha = '' THEN $1 ELSE commit_sha END, \
             commit_message = COALESCE(commit_message, $2), author = COALESCE(author, $3) WHERE id = $4",
        )
        .bind(sha)
        .bind(message)
        .bind(author)
        .bind(build_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// A runner found the build's hand-picked commit reachable from its
    /// branch: the build is the site's code after all.
    pub async fn mark_commit_verified(&self, build_id: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE builds SET commit_unverified = 0 WHERE id = $1")
            .bind(build_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

/// Closes an attempt with how it ended (`lost`, `handed-back`).
async fn end_attempt(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    build_id: i64,
    attempt: i64,
    outcome: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE attempts SET ended_at = $1, outcome = $2 WHERE build_id = $3 AND attempt = $4")
        .bind(now)
        .bind(outcome)
        .bind(build_id)
        .bind(attempt)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Puts a leased job back in the queue, its lease and runner forgotten.
async fn requeue(tx: &mut sqlx::Transaction<'_, sqlx::Any>, job_id: i64, build_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', lease_id = NULL, lease_expires_at = NULL, \
         runner_name = NULL, runner_id = NULL WHERE id = $1",
    )
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE builds SET state = 'queued' WHERE id = $1")
        .bind(build_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
