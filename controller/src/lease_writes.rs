//! Where leases are taken and jobs finished: on SQLite in groups (see
//! [`crate::group_commit`]), on PostgreSQL one at a time. What a lease
//! means, and the calls that use one, are `crate::leases`.

use crate::db::{
    Backend, BuildState, Database, FinishedAs, FinishedJob, JobClaim, JobFinish, LeasedJob, RunnerRecord,
};
use crate::group_commit::{BatchWrite, GroupCommit};
use jamstack_proto::{JobCompletion, JobOutcome};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Where leases are taken and jobs finished. On SQLite, claims arriving
/// together are written in one transaction, and so are finishes (see
/// [`crate::group_commit`] and [`Database::claim_next_jobs`]); on
/// PostgreSQL, whose transactions run side by side, each is written alone.
#[derive(Clone)]
pub struct LeaseWrites {
    db: Database,
    lease_millis: i64,
    global_limit: i64,
    grouped: Option<(GroupCommit<Claims>, GroupCommit<Finishes>)>,
}

impl LeaseWrites {
    /// Starts the writing tasks (SQLite). Leases last `lease_duration`; at
    /// most `global_limit` jobs are leased at once (0: no limit); a job
    /// handed back wakes `jobs_available`.
    pub fn start(
        db: Database,
        lease_duration: Duration,
        global_limit: i64,
        jobs_available: Arc<Notify>,
    ) -> Self {
        let lease_millis = lease_duration.as_millis() as i64;
        let grouped = (db.backend() == Backend::Sqlite).then(|| {
            (
                GroupCommit::start(Claims {
                    db: db.clone(),
                    lease_millis,
                    global_limit,
                    jobs_available,
                }),
                GroupCommit::start(Finishes { db: db.clone() }),
            )
        });
        LeaseWrites {
            db,
            lease_millis,
            global_limit,
            grouped,
        }
    }

    /// Leases `runner` the oldest job it may run, under `lease_id`.
    pub async fn claim(&self, runner: &RunnerRecord, lease_id: &str) -> anyhow::Result<Option<LeasedJob>> {
        match &self.grouped {
            Some((claims, _)) => claims.write((runner.clone(), lease_id.to_owned())).await,
            None => {
                self.db
                    .claim_next_job(runner, lease_id, self.lease_millis, self.global_limit)
                    .await
            }
        }
    }

    /// Ends the job held under `lease_id` as its runner says.
    pub async fn finish(
        &self,
        job_id: i64,
        lease_id: &str,
        completion: &JobCompletion,
    ) -> anyhow::Result<Option<FinishedJob>> {
        match &self.grouped {
            Some((_, finishes)) => {
                finishes
                    .write((job_id, lease_id.to_owned(), completion.clone()))
                    .await
            }
            None => {
                self.db
                    .finish_job(job_id, lease_id, finished_as(completion))
                    .await
            }
        }
    }
}

/// Claims by runners (with their new lease ids), written together.
struct Claims {
    db: Database,
    lease_millis: i64,
    global_limit: i64,
    jobs_available: Arc<Notify>,
}

impl BatchWrite for Claims {
    type Request = (RunnerRecord, String);
    type Answer = Option<LeasedJob>;
    async fn write(&self, requests: &[Self::Request]) -> anyhow::Result<Vec<Self::Answer>> {
        let claims: Vec<JobClaim<'_>> = requests
            .iter()
            .map(|(runner, lease_id)| JobClaim { runner, lease_id })
            .collect();
        self.db
            .claim_next_jobs(&claims, self.lease_millis, self.global_limit)
            .await
    }

    /// A job leased to a runner that hung up before hearing of it goes
    /// back to the queue at once, instead of waiting out its lease.
    async fn unclaimed(&self, job: Option<LeasedJob>) {
        let Some(job) = job else { return };
        match self.db.hand_back_job(job.job_id, &job.lease_id).await {
            Ok(_) => {
                tracing::info!(
                    job = job.job_id,
                    "job leased to a runner that hung up: queued again"
                );
                self.jobs_available.notify_waiters();
            }
            Err(error) => tracing::warn!(
                job = job.job_id,
                error = format!("{error:#}"),
                "a job leased to a runner that hung up waits for its lease to run out"
            ),
        }
    }
}

/// Jobs their runners finished (job, lease id, how), written together.
struct Finishes {
    db: Database,
}

impl BatchWrite for Finishes {
    type Request = (i64, String, JobCompletion);
    type Answer = Option<FinishedJob>;
    async fn write(&self, requests: &[Self::Request]) -> anyhow::Result<Vec<Self::Answer>> {
        let finishes: Vec<JobFinish<'_>> = requests
            .iter()
            .map(|(job_id, lease_id, completion)| JobFinish {
                job_id: *job_id,
                lease_id,
                how: finished_as(completion),
            })
            .collect();
        self.db.finish_jobs(&finishes).await
    }
}

/// How a job ended, as the database records it.
pub fn finished_as(completion: &JobCompletion) -> FinishedAs<'_> {
    let (state, exit_code, error, deploy_id) = match &completion.outcome {
        JobOutcome::Succeeded { deploy_id } => {
            (BuildState::Succeeded, Some(0), None, Some(deploy_id.as_str()))
        }
        JobOutcome::Failed { exit_code, message } => {
            (BuildState::Failed, *exit_code, Some(message.as_str()), None)
        }
        JobOutcome::Cancelled => (BuildState::Cancelled, None, None, None),
        JobOutcome::Skipped { reason } => (BuildState::Skipped, None, Some(reason.as_str()), None),
    };
    FinishedAs {
        state,
        exit_code,
        error,
        deploy_id,
        step_timings: &completion.step_timings,
    }
}
