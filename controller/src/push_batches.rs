//! Group commit of push deliveries (see [`crate::db::PushDelivery`]).
//!
//! Handlers of concurrent push deliveries hand them to one task (a few on
//! PostgreSQL, whose commits overlap), which
//! takes whatever has gathered while the previous batch was being written
//! and handles it as a whole: one read of the sites of every pushed
//! repository, a plan per delivery ([`triggers::plan_push`]), one
//! transaction for all of them; then it tells each handler what became of
//! its delivery. A lone delivery is written at once; under a burst,
//! batches grow and the cost per delivery falls. A batch that fails is
//! written again one delivery at a time, so one bad delivery cannot fail
//! its neighbours.

use crate::audit::{AuditLog, QueuedBuild};
use crate::db::{
    Backend, BatchedBuild, BuildState, Database, NewDelivery, PushDelivery, PushRecorded, RecordedBatch, Site,
};
use crate::deploys::alias_for;
use crate::events::{BuildTiming, Events};
use crate::triggers::{self, Outcome, PushPlan};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

/// Deliveries in one transaction at most.
const MAX_BATCH: usize = 64;
/// Deliveries waiting for the writer at most; more wait to be let in.
const QUEUE: usize = 1024;
/// Batches written at once on PostgreSQL.
const POSTGRES_WRITERS: usize = 4;

/// A push delivery as it arrives, authenticated and read.
#[derive(Debug, Clone)]
pub struct PushArrival {
    /// With its delivery id: without one a delivery cannot be recognised
    /// again, and is handled one at a time.
    pub delivery: NewDelivery,
    /// `owner/name` of the pushed repository.
    pub repository: String,
    /// The App installation it came through, if any.
    pub installation: Option<i64>,
    /// Not a deleted branch: that takes hostnames down, which is handled
    /// one at a time.
    pub push: triggers::Push,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batched {
    /// Recorded (row `delivery`) with what was done.
    Recorded { delivery: i64, outcome: Outcome },
    /// Its delivery id was handled before, or is being handled: nothing
    /// was done; the one-at-a-time path answers it.
    Claimed,
}

type Reply = oneshot::Sender<anyhow::Result<Batched>>;

/// The handle handlers hand deliveries to.
#[derive(Clone)]
pub struct PushBatches {
    sender: mpsc::Sender<(PushArrival, Reply)>,
}

impl PushBatches {
    /// Starts the writing task; it stops when every handle is dropped.
    /// The builds recorded are written to `audit`.
    pub fn start(db: Database, events: Events, jobs_available: Arc<Notify>, audit: AuditLog) -> Self {
        // SQLite has one writer connection: a second batch would only wait
        // for it. PostgreSQL commits concurrent transactions together, so
        // batches overlap there while each waits for its commit.
        let writers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        };
        Self::start_writers(db, events, jobs_available, audit, writers)
    }

    fn start_writers(
        db: Database,
        events: Events,
        jobs_available: Arc<Notify>,
        audit: AuditLog,
        writers: usize,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers {
            let writer = Writer {
                db: db.clone(),
                events: events.clone(),
                jobs_available: jobs_available.clone(),
                audit: audit.clone(),
            };
            tokio::spawn(writer.run(receiver.clone()));
        }
        PushBatches { sender }
    }

    /// Handles `arrival` together with others arriving at the same time,
    /// and announces its builds.
    pub async fn record(&self, arrival: PushArrival) -> anyhow::Result<Batched> {
        anyhow::ensure!(
            arrival.delivery.delivery_id.is_some(),
            "a delivery without an id cannot be recorded in a batch"
        );
        anyhow::ensure!(
            !arrival.push.deleted,
            "a deleted branch is not recorded in a batch"
        );
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((arrival, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the delivery writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the delivery writer stopped before answering"))?
    }
}

struct Writer {
    db: Database,
    events: Events,
    jobs_available: Arc<Notify>,
    audit: AuditLog,
}

/// A delivery of a batch, planned.
struct Planned {
    arrival: PushArrival,
    reply: Reply,
    /// The builds it asks for, or the answer when it asks for none.
    plan: Result<Arc<triggers::BuildPlan>, Outcome>,
}

impl Writer {
    async fn run(self, receiver: Arc<Mutex<mpsc::Receiver<(PushArrival, Reply)>>>) {
        // Deliveries held back from a batch that already has their id:
        // they go in the next one, where they find the first one's record.
        // (Another writer's batch with the same id is told apart by the
        // database: the later claim finds the id taken.)
        let mut held: Vec<(PushArrival, Reply)> = Vec::new();
        loop {
            let mut batch = std::mem::take(&mut held);
            // A writer with deliveries held back must not wait for the
            // receiver: another writer may hold it while waiting for a
            // delivery that never comes, and the held ones (and their
            // handlers) would wait with it. It takes more only when the
            // receiver is free.
            let receiver = if batch.is_empty() {
                Some(receiver.lock().await)
            } else {
                receiver.try_lock().ok()
            };
            if let Some(mut receiver) = receiver {
                if batch.is_empty() {
                    match receiver.recv().await {
                        Some(first) => batch.push(first),
                        None => return,
                    }
                }
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
            }
            let mut keys = HashSet::new();
            let (batch, later): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|(arrival, _)| keys.insert(arrival.delivery.dedupe_key()));
            held = later;
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<(PushArrival, Reply)>) {
        let mut repositories: Vec<String> = batch.iter().map(|(a, _)| a.repository.clone()).collect();
        repositories.sort_unstable();
        repositories.dedup();
        let sites = match self.db.sites_for_github_repos(&repositories).await {
            Ok(sites) => sites,
            Err(error) => {
                let message = format!("{error:#}");
                for (_, reply) in batch {
                    let _ = reply.send(Err(anyhow::anyhow!(
                        "reading the pushed repositories' sites: {message}"
                    )));
                }
                return;
            }
        };
        let connected: Vec<Vec<Site>> = batch
            .iter()
            .map(|(arrival, _)| connected(&sites, arrival))
            .collect();
        let pushes: Vec<(&[Site], &triggers::Push)> = connected
            .iter()
            .zip(&batch)
            .map(|(sites, (arrival, _))| (sites.as_slice(), &arrival.push))
            .collect();
        let histories = match triggers::branch_histories_of_pushes(&self.db, &pushes).await {
            Ok(histories) => histories,
            Err(error) => {
                let message = format!("{error:#}");
                for (_, reply) in batch {
                    let _ = reply.send(Err(anyhow::anyhow!(
                        "reading what the pushed branches built before: {message}"
                    )));
                }
                return;
            }
        };
        let mut planned: Vec<Planned> = Vec::with_capacity(batch.len());
        for (((arrival, reply), connected), histories) in batch.into_iter().zip(&connected).zip(&histories) {
            let plan = plan(connected, &arrival, histories);
            planned.push(Planned { arrival, reply, plan });
        }
        if planned.is_empty() {
            return;
        }
        let deliveries: Vec<PushDelivery> = planned.iter().map(to_record).collect();
        match self.db.record_push_deliveries(&deliveries).await {
            Ok(recorded) => self.answer(planned, &deliveries, recorded).await,
            Err(error) if planned.len() == 1 => {
                let _ = planned.into_iter().next().map(|p| p.reply.send(Err(error)));
            }
            Err(error) => {
                tracing::warn!(
                    deliveries = planned.len(),
                    error = format!("{error:#}"),
                    "recording a batch of deliveries failed; recording them one at a time"
                );
                for (one, delivery) in planned.into_iter().zip(deliveries) {
                    let single = std::slice::from_ref(&delivery);
                    match self.db.record_push_deliveries(single).await {
                        Ok(recorded) => self.answer(vec![one], single, recorded).await,
                        Err(error) => {
                            let _ = one.reply.send(Err(error));
                        }
                    }
                }
            }
        }
    }

    /// Tells listeners about the batch's new and superseded builds, wakes
    /// waiting runners (as queueing one build does), records the builds in
    /// the audit log (all of the batch's in one write), and answers each
    /// handler.
    async fn answer(&self, planned: Vec<Planned>, deliveries: &[PushDelivery], recorded: RecordedBatch) {
        let mut queued = false;
        let mut answers = Vec::with_capacity(planned.len());
        for ((one, delivery), result) in planned.into_iter().zip(deliveries).zip(recorded.deliveries) {
            let PushRecorded::Recorded {
                delivery: row,
                builds,
                ..
            } = result
            else {
                answers.push((one, Batched::Claimed));
                continue;
            };
            for (planned, &build_id) in delivery.builds.iter().zip(&builds) {
                let site_id = planned.build.site_id;
                if let Some(reason) = &planned.skip_reason {
                    tracing::info!(build_id, site_id, reason, "build skipped");
                    self.events.build_changed(build_id, site_id, BuildState::Skipped);
                } else {
                    tracing::info!(build_id, site_id, "build queued");
                    self.events.build_changed(build_id, site_id, BuildState::Queued);
                    queued = true;
                }
            }
            let outcome = match &one.plan {
                Ok(plan) => plan.outcome(&builds),
                Err(outcome) => outcome.clone(),
            };
            answers.push((
                one,
                Batched::Recorded {
                    delivery: row,
                    outcome,
                },
            ));
        }
        for old in recorded.superseded.iter().filter(|s| s.cancelled) {
            self.events.build_changed_at(
                old.build_id,
                old.site_id,
                BuildState::Cancelled,
                BuildTiming::Ended {
                    started_at: old.started_at,
                    finished_at: old.superseded_at,
                },
            );
        }
        if queued {
            self.jobs_available.notify_waiters();
        }
        let actors: Vec<String> = answers
            .iter()
            .map(|(one, _)| format!("webhook:{}", one.arrival.delivery.source))
            .collect();
        let audited: Vec<QueuedBuild<'_>> = answers
            .iter()
            .zip(&actors)
            .filter_map(|((_, answer), actor)| match answer {
                Batched::Recorded { outcome, .. } => Some((outcome, actor)),
                Batched::Claimed => None,
            })
            .flat_map(|(outcome, actor)| {
                let status = i64::from(outcome.status());
                outcome
                    .builds
                    .iter()
                    .map(move |&build| QueuedBuild { actor, build, status })
            })
            .collect();
        self.audit.record_builds_queued(&audited).await;
        for (one, answer) in answers {
            let _ = one.reply.send(Ok(answer));
        }
    }
}

/// The sites of `sites` connected to the repository `arrival` pushed to.
fn connected(sites: &[Site], arrival: &PushArrival) -> Vec<Site> {
    sites
        .iter()
        .filter(|site| {
            site.github_repo
                .as_deref()
                .is_some_and(|repo| repo.eq_ignore_ascii_case(&arrival.repository))
        })
        .cloned()
        .collect()
}

/// What `arrival` asks of `connected`, the sites connected to its
/// repository, given what their pushed branch built before.
fn plan(
    connected: &[Site],
    arrival: &PushArrival,
    histories: &std::collections::HashMap<i64, crate::db::BranchHistory>,
) -> Result<Arc<triggers::BuildPlan>, Outcome> {
    if connected.is_empty() {
        return Err(triggers::no_site(&arrival.repository));
    }
    match triggers::plan_push(connected, &arrival.push, histories) {
        PushPlan::Build(plan) => Ok(Arc::new(plan)),
        PushPlan::Ignored(outcome) => Err(outcome),
        // Refused by `PushBatches::record`.
        PushPlan::BranchDeleted(branch) => Err(Outcome::ignored(format!("branch `{branch}` was deleted"))),
    }
}

/// The record a planned delivery asks for.
fn to_record(planned: &Planned) -> PushDelivery {
    let arrival = &planned.arrival;
    let (builds, describe): (Vec<BatchedBuild>, crate::db::Describe) = match &planned.plan {
        Ok(plan) => {
            let builds = plan
                .builds
                .iter()
                .map(|planned| {
                    let request = planned.request.clone();
                    BatchedBuild {
                        revives_alias: alias_for(request.context, &request.branch, request.pr_number),
                        build: request.for_site(planned.site_id),
                        skip_reason: planned.skip_reason.clone(),
                    }
                })
                .collect();
            let plan = plan.clone();
            (builds, Arc::new(move |ids: &[i64]| plan.outcome(ids).record()))
        }
        Err(outcome) => {
            let record = outcome.clone().record();
            (Vec::new(), Arc::new(move |_: &[i64]| record.clone()))
        }
    };
    PushDelivery {
        delivery: arrival.delivery.clone(),
        installation: arrival.installation.map(|id| (id, arrival.repository.clone())),
        builds,
        describe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(delivery_id: &str) -> PushArrival {
        PushArrival {
            delivery: NewDelivery {
                source: "github",
                delivery_id: Some(delivery_id.to_owned()),
                event: "push".into(),
                action: None,
                repository: Some("octo/nowhere".into()),
                body_sha256: Some("b0d1".into()),
            },
            repository: "octo/nowhere".into(),
            installation: None,
            push: triggers::Push {
                git_ref: "refs/heads/main".into(),
                before: None,
                after: "a".repeat(40),
                deleted: false,
                head_commit_message: None,
                head_commit_author: None,
                trigger: "webhook",
            },
        }
    }

    /// A redelivery arriving with its original is held back for the next
    /// batch; meanwhile another writer waits for new deliveries holding the
    /// receiver. The held one is still answered (it once waited for the
    /// next delivery to arrive, which in a quiet moment was forever).
    #[tokio::test]
    async fn a_redelivery_held_back_is_answered_while_another_writer_waits_for_work() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_sqlite(&dir.path().join("deliveries.db"))
            .await
            .unwrap();
        let audit = AuditLog {
            db: db.clone(),
            notifications: crate::notifications::Notifications {
                db: db.clone(),
                config: Arc::new(crate::config::Config::new(dir.path().to_owned())),
                urls: crate::urls::Urls {
                    base_url: "http://127.0.0.1:8080".into(),
                    public_url: "http://127.0.0.1:8080".into(),
                    domain: "localhost".into(),
                },
                events: Events::default(),
                queued: Arc::default(),
                secrets: Arc::new(crate::secrets::SecretBox::new([7; 32])),
                mailer: None,
            },
        };
        let batches = PushBatches::start_writers(db, Events::default(), Arc::default(), audit, 2);
        let (first, again) = tokio::time::timeout(
            std::time::Duration::from_secs(180),
            futures_util::future::join(batches.record(arrival("d-1")), batches.record(arrival("d-1"))),
        )
        .await
        .expect("both the delivery and its redelivery are answered");
        let mut answers = [first.unwrap(), again.unwrap()];
        answers.sort_by_key(|answer| matches!(answer, Batched::Claimed));
        assert!(
            matches!(answers[0], Batched::Recorded { .. }) && answers[1] == Batched::Claimed,
            "one is recorded, the other found its id taken: {answers:?}"
        );
    }
}
