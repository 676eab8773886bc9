//! Builds and the job queue.
//!
//! A build is one attempt to build one commit in one context; its job is what
//! a runner leases. Claiming a job is a single `UPDATE … RETURNING` statement,
//! which SQLite runs under its one writer lock, so two runners can never
//! claim the same job. Every lease carries a fresh id (the fencing token);
//! each call about the job must present it.

use super::{Database, now_millis};
use jamstack_proto::BuildContext;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Queued => "queued",
            BuildState::Running => "running",
            BuildState::Succeeded => "succeeded",
            BuildState::Failed => "failed",
            BuildState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "queued" => BuildState::Queued,
            "running" => BuildState::Running,
            "succeeded" => BuildState::Succeeded,
            "cancelled" => BuildState::Cancelled,
            _ => BuildState::Failed,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BuildState::Succeeded | BuildState::Failed | BuildState::Cancelled
        )
    }
}

#[derive(Debug, Clone, Serialize)]
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
    pub trigger: String,
    pub state: BuildState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub deploy_id: Option<String>,
    /// The number of times the job was leased; each attempt has its own log.
    pub attempts: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
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
    pub trigger: &'static str,
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
     b.commit_message, b.author, b.pr_number, b.trigger, b.state, b.exit_code, b.error, b.deploy_id, \
     j.attempt, b.created_at, b.started_at, b.finished_at \
     FROM builds b JOIN sites s ON s.id = b.site_id JOIN jobs j ON j.build_id = b.id";

fn build_from_row(row: &AnyRow) -> Build {
    let context: String = row.get("context");
    Build {
        id: row.get("id"),
        site_id: row.get("site_id"),
        site: row.get("site"),
        context: BuildContext::parse(&context).unwrap_or(BuildContext::Production),
        branch: row.get("branch"),
        commit_sha: row.get("commit_sha"),
        commit_message: row.get("commit_message"),
        author: row.get("author"),
        pr_number: row.get("pr_number"),
        trigger: row.get("trigger"),
        state: BuildState::parse(&row.get::<String, _>("state")),
        exit_code: row.get("exit_code"),
        error: row.get("error"),
        deploy_id: row.get("deploy_id"),
        attempts: row.get("attempt"),
        created_at: row.get("created_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
    }
}

impl Database {
    /// Records a build and queues its job, in one transaction.
    pub async fn enqueue_build(&self, build: &NewBuild) -> anyhow::Result<i64> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO builds (site_id, context, branch, commit_sha, commit_message, author, \
             trigger, state, created_at, pr_number) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9) RETURNING id",
        )
        .bind(build.site_id)
        .bind(build.context.as_str())
        .bind(&build.branch)
        .bind(&build.commit_sha)
        .bind(&build.commit_message)
        .bind(&build.author)
        .bind(build.trigger)
        .bind(now)
        .bind(build.pr_number)
        .fetch_one(&mut *tx)
        .await?;
        let build_id: i64 = row.get(0);
        sqlx::query("INSERT INTO jobs (build_id, state, created_at) VALUES ($1, 'queued', $2)")
            .bind(build_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(build_id)
    }

    pub async fn build(&self, build_id: i64) -> anyhow::Result<Option<Build>> {
        let row = sqlx::query(&format!("{BUILD_SELECT} WHERE b.id = $1"))
            .bind(build_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(build_from_row))
    }

    pub async fn builds_of_site(&self, site_id: i64, limit: i64) -> anyhow::Result<Vec<Build>> {
        let rows = sqlx::query(&format!(
            "{BUILD_SELECT} WHERE b.site_id = $1 ORDER BY b.id DESC LIMIT $2"
        ))
        .bind(site_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(build_from_row).collect())
    }

    /// Claims the oldest queued job for `runner_name`, or `None` if the queue
    /// is empty. The claim is one statement, so it is atomic.
    pub async fn claim_next_job(
        &self,
        runner_name: &str,
        lease_id: &str,
        lease_millis: i64,
    ) -> anyhow::Result<Option<LeasedJob>> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_id = $1, \
             runner_name = $2, lease_expires_at = $3 \
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1) \
             AND state = 'queued' RETURNING id, build_id, attempt",
        )
        .bind(lease_id)
        .bind(runner_name)
        .bind(now + lease_millis)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = LeasedJob {
            job_id: row.get(0),
            build_id: row.get(1),
            attempt: row.get(2),
            lease_id: lease_id.to_owned(),
        };
        sqlx::query(
            "UPDATE builds SET state = 'running', started_at = COALESCE(started_at, $1) WHERE id = $2",
        )
        .bind(now)
        .bind(job.build_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    /// The job's build and attempt if `lease_id` is its live lease.
    pub async fn check_lease(&self, job_id: i64, lease_id: &str) -> anyhow::Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT build_id, attempt FROM jobs WHERE id = $1 AND lease_id = $2 \
             AND state = 'leased' AND lease_expires_at > $3",
        )
        .bind(job_id)
        .bind(lease_id)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
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
        let row = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_id = $3 \
             AND state = 'leased' AND lease_expires_at > $4 RETURNING cancel_requested",
        )
        .bind(now + lease_millis)
        .bind(job_id)
        .bind(lease_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) != 0))
    }

    /// Whether cancellation was asked for the job, or `None` when
    /// `lease_id` is not its live lease. A read: heartbeats that wait for a
    /// cancel look often.
    pub async fn cancel_requested(&self, job_id: i64, lease_id: &str) -> anyhow::Result<Option<bool>> {
        let row = sqlx::query(
            "SELECT cancel_requested FROM jobs WHERE id = $1 AND lease_id = $2 \
             AND state = 'leased' AND lease_expires_at > $3",
        )
        .bind(job_id)
        .bind(lease_id)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) != 0))
    }

    /// Ends a job under its lease and records how the build ended. Returns
    /// false when the lease was not live (nothing is written then).
    pub async fn finish_job(
        &self,
        job_id: i64,
        lease_id: &str,
        state: BuildState,
        exit_code: Option<i64>,
        error: Option<&str>,
        deploy_id: Option<&str>,
    ) -> anyhow::Result<bool> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_expires_at = NULL WHERE id = $1 AND lease_id = $2 \
             AND state = 'leased' RETURNING build_id",
        )
        .bind(job_id)
        .bind(lease_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let build_id: i64 = row.get(0);
        sqlx::query(
            "UPDATE builds SET state = $1, exit_code = $2, error = $3, \
             deploy_id = COALESCE($4, deploy_id), finished_at = $5 WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(exit_code)
        .bind(error)
        .bind(deploy_id)
        .bind(now)
        .bind(build_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
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
    /// after `max_attempts`. Returns how many jobs were requeued and failed.
    pub async fn reap_expired_leases(&self, max_attempts: i64) -> anyhow::Result<(u64, u64)> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;
        let failed_builds: Vec<i64> = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_expires_at = NULL \
             WHERE state = 'leased' AND lease_expires_at <= $1 AND attempt >= $2 RETURNING build_id",
        )
        .bind(now)
        .bind(max_attempts)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        for build_id in &failed_builds {
            sqlx::query("UPDATE builds SET state = 'failed', finished_at = $1, error = $2 WHERE id = $3")
                .bind(now)
                .bind(format!(
                    "the runner stopped answering {max_attempts} times in a row; \
                 check that a runner is up and retry the build"
                ))
                .bind(build_id)
                .execute(&mut *tx)
                .await?;
        }
        let requeued = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_id = NULL, lease_expires_at = NULL \
             WHERE state = 'leased' AND lease_expires_at <= $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((requeued, failed_builds.len() as u64))
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
