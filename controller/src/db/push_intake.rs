//! Group commit of push deliveries: many deliveries, the builds they queue
//! and the builds those supersede, recorded in one transaction of a handful
//! of statements, however many deliveries it holds.
//!
//! Recording a delivery one at a time takes eight statements on the one
//! writer connection (claim, begin, build, job, supersede, cancel, commit,
//! finish); under a burst of webhooks those round trips, not the work, set
//! the pace. Here a batch claims every delivery with its final record in
//! one `INSERT … ON CONFLICT`, inserts every build and every job in one
//! statement each, and supersedes older builds of all the pushed branches
//! at once. The result is the one-at-a-time result: a delivery id already
//! handled is not claimed again, each new build supersedes the queued
//! builds of its branch, a site that says so cancels the running one.

use super::deliveries::{ABANDONED_AFTER_MS, join_ids};
use super::{Backend, Database, NewBuild, NewDelivery, now_millis, value_rows};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A build a delivery asks for.
#[derive(Debug, Clone)]
pub struct BatchedBuild {
    pub build: NewBuild,
    /// Recorded as skipped, with this reason, instead of queued.
    pub skip_reason: Option<String>,
    /// The hostname alias this build brings back (its branch or pull
    /// request had been taken down).
    pub revives_alias: Option<String>,
}

/// What a delivery's record says once its builds have ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub outcome: &'static str,
    pub message: String,
}

/// Says what to record of a delivery given the ids of its builds (in the
/// order of [`PushDelivery::builds`]).
pub type Describe = Arc<dyn Fn(&[i64]) -> DeliveryRecord + Send + Sync>;

/// One delivery of a batch. Its `delivery_id` must be set: without one a
/// delivery cannot be recognised again, and is recorded one at a time.
#[derive(Clone)]
pub struct PushDelivery {
    pub delivery: NewDelivery,
    /// The App installation it came through and the repository it names:
    /// noted, so the App can reach the repository without waiting for an
    /// installation event.
    pub installation: Option<(i64, String)>,
    pub builds: Vec<BatchedBuild>,
    pub describe: Describe,
}

impl std::fmt::Debug for PushDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushDelivery")
            .field("delivery", &self.delivery)
            .field("builds", &self.builds)
            .finish_non_exhaustive()
    }
}

/// What became of one delivery of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushRecorded {
    /// Claimed and recorded with its builds.
    Recorded {
        delivery: i64,
        /// The new builds, in the order they were asked for.
        builds: Vec<i64>,
        record: DeliveryRecord,
    },
    /// Its delivery id was handled before (or is being handled): nothing
    /// was recorded for it.
    Claimed,
}

/// A build a newer push of its branch took the place of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupersededBuild {
    pub build_id: i64,
    pub site_id: i64,
    /// Cancelled at once (it was queued); otherwise it runs and was asked
    /// to stop.
    pub cancelled: bool,
    /// When it first started (a build queued again after its runner was
    /// lost has), and when it was superseded.
    pub started_at: Option<i64>,
    pub superseded_at: i64,
}

/// What a site's branch built before, as far as a push of it needs to
/// know (builds of pull requests are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchHistory {
    /// The newest build of the branch: its id and commit.
    pub last: Option<(i64, String)>,
    /// The newest build of the pushed commit on the branch.
    pub commit_built: Option<i64>,
}

/// A branch of a site pushed to a commit, whose history a push needs
/// (see [`Database::branch_histories`]).
#[derive(Debug, Clone, Copy)]
pub struct BranchPushed<'a> {
    pub site_id: i64,
    pub branch: &'a str,
    pub commit: &'a str,
}

/// Branches whose history one statement reads at most (four parameters
/// each, well under SQLite's limit of 32,766).
const HISTORIES_AT_ONCE: usize = 256;

/// The statement of [`Database::branch_histories`] for `rows` branches
/// (`n, site_id, branch, sha` each). Each answer is a lookup by (site,
/// branch) in the builds index; `n` keeps the order.
pub(super) fn branch_histories_sql(rows: usize) -> String {
    let newest = |column: &str, also: &str| {
        format!(
            "(SELECT b.{column} FROM builds b WHERE b.site_id = asked.site_id \
             AND b.branch = asked.branch AND b.pr_number IS NULL{also} ORDER BY b.id DESC LIMIT 1)"
        )
    };
    format!(
        "WITH asked (n, site_id, branch, sha) AS (VALUES {}) \
         SELECT {} AS last_id, {} AS last_commit, {} AS commit_built FROM asked ORDER BY asked.n",
        value_rows(rows, 4, 1),
        newest("id", ""),
        newest("commit_sha", ""),
        newest("id", " AND b.commit_sha = asked.sha"),
    )
}

/// What a batch did.
#[derive(Debug, Clone, Default)]
pub struct RecordedBatch {
    /// One per delivery, in the order given.
    pub deliveries: Vec<PushRecorded>,
    pub superseded: Vec<SupersededBuild>,
}

impl Database {
    /// Records a batch of push deliveries in one transaction (see the
    /// module's documentation). Two deliveries of one batch must not share
    /// a delivery id.
    pub async fn record_push_deliveries(&self, batch: &[PushDelivery]) -> anyhow::Result<RecordedBatch> {
        let now = now_millis();
        let mut tx = self.write_tx().await?;

        // Ids first, so each delivery's record can name its builds in the
        // same statement that claims it.
        let wanted: usize = batch.iter().map(|d| d.builds.len()).sum();
        let mut reserved = self.reserve_build_ids(&mut tx, wanted).await?.into_iter();
        let ids: Vec<Vec<i64>> = batch
            .iter()
            .map(|d| reserved.by_ref().take(d.builds.len()).collect())
            .collect();
        let records: Vec<DeliveryRecord> = batch.iter().zip(&ids).map(|(d, ids)| (d.describe)(ids)).collect();

        // A body claimed before under another delivery id is a replay: not
        // claimed here (the one-at-a-time path answers it as a duplicate).
        // On SQLite the transaction holds the write lock, so this read is
        // current; on PostgreSQL the unique index stops a racing replay.
        let replays = self.replayed_bodies(&mut tx, batch).await?;

        // Claim every delivery with its final record. A delivery id seen
        // before is claimed again only if its handling failed or was
        // abandoned, as one at a time.
        let mut order: Vec<usize> = (0..batch.len()).filter(|i| !replays.contains(i)).collect();
        // One lock order for every batch: two controllers claiming the
        // same ids in different orders would deadlock on PostgreSQL.
        order.sort_by_key(|&i| batch[i].delivery.dedupe_key());
        let sql = format!(
            "INSERT INTO webhook_deliveries (source, delivery_id, dedupe_key, event, action, repository, \
             outcome, message, build_ids, received_at, handled_at, body_key) VALUES {} \
             ON CONFLICT (dedupe_key) DO UPDATE SET outcome = excluded.outcome, message = excluded.message, \
             build_ids = excluded.build_ids, received_at = excluded.received_at, handled_at = excluded.handled_at, \
             body_key = excluded.body_key \
             WHERE webhook_deliveries.outcome = 'failed' \
             OR (webhook_deliveries.outcome = 'processing' AND webhook_deliveries.received_at < $1) \
             RETURNING id, dedupe_key",
            value_rows(order.len(), 12, 2)
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(&sql).bind(now - ABANDONED_AFTER_MS);
        for &i in &order {
            let (delivery, record) = (&batch[i].delivery, &records[i]);
            query = query
                .bind(delivery.source)
                .bind(&delivery.delivery_id)
                .bind(delivery.dedupe_key())
                .bind(&delivery.event)
                .bind(&delivery.action)
                .bind(&delivery.repository)
                .bind(record.outcome)
                .bind(&record.message)
                .bind(join_ids(&ids[i]))
                .bind(now)
                .bind(now)
                .bind(delivery.body_key());
        }
        let claimed: HashMap<String, i64> = if order.is_empty() {
            HashMap::new()
        } else {
            query
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(id, dedupe_key)| (dedupe_key, id))
                .collect()
        };
        let delivery_of = |i: usize| {
            batch[i]
                .delivery
                .dedupe_key()
                .and_then(|key| claimed.get(&key).copied())
        };

        // The builds and jobs of the claimed deliveries.
        let new: Vec<(&BatchedBuild, i64)> = (0..batch.len())
            .filter(|&i| delivery_of(i).is_some())
            .flat_map(|i| batch[i].builds.iter().zip(ids[i].iter().copied()))
            .collect();
        if !new.is_empty() {
            let sql = format!(
                "INSERT INTO builds (id, site_id, context, branch, commit_sha, commit_message, author, \
                 trigger, state, created_at, pr_number, from_fork, skip_reason, finished_at) VALUES {}",
                value_rows(new.len(), 14, 1)
            );
            let mut query = sqlx::query(&sql);
            for (planned, id) in &new {
                let build = &planned.build;
                let skipped = planned.skip_reason.is_some();
                query = query
                    .bind(*id)
                    .bind(build.site_id)
                    .bind(build.context.as_str())
                    .bind(&build.branch)
                    .bind(&build.commit_sha)
                    .bind(&build.commit_message)
                    .bind(&build.author)
                    .bind(build.trigger)
                    .bind(if skipped { "skipped" } else { "queued" })
                    .bind(now)
                    .bind(build.pr_number)
                    .bind(i64::from(build.from_fork))
                    .bind(planned.skip_reason.as_deref())
                    .bind(skipped.then_some(now));
            }
            query.execute(&mut *tx).await?;

            // Jobs in build order: runners lease the oldest first.
            let mut sql =
                String::from("INSERT INTO jobs (build_id, state, created_at, required_labels) VALUES ");
            for row in 0..new.len() {
                let p = row * 4;
                if row > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, (SELECT required_labels FROM sites WHERE id = ${}))",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4
                ));
            }
            let mut query = sqlx::query(&sql);
            for (planned, id) in &new {
                query = query
                    .bind(*id)
                    .bind(if planned.skip_reason.is_some() {
                        "done"
                    } else {
                        "queued"
                    })
                    .bind(now)
                    .bind(planned.build.site_id);
            }
            query.execute(&mut *tx).await?;
        }

        let installations: BTreeMap<(i64, &str), ()> = batch
            .iter()
            .filter_map(|d| d.installation.as_ref())
            .map(|(id, repository)| ((*id, repository.as_str()), ()))
            .collect();
        if !installations.is_empty() {
            let sql = format!(
                "INSERT INTO github_installations (id, account, updated_at) VALUES {} ON CONFLICT (id) DO NOTHING",
                value_rows(installations.len(), 3, 1)
            );
            let mut query = sqlx::query(&sql);
            for (id, repository) in installations.keys() {
                let owner = repository.split('/').next().unwrap_or(repository);
                query = query.bind(*id).bind(owner).bind(now);
            }
            query.execute(&mut *tx).await?;
            let sql = format!(
                "INSERT INTO github_installation_repos (installation_id, full_name) VALUES {} \
                 ON CONFLICT (installation_id, full_name) DO NOTHING",
                value_rows(installations.len(), 2, 1)
            );
            let mut query = sqlx::query(&sql);
            for (id, repository) in installations.keys() {
                query = query.bind(*id).bind(*repository);
            }
            query.execute(&mut *tx).await?;
        }

        // A re-created branch or reopened pull request brings its hostname
        // back.
        let revived: Vec<(i64, &str)> = new
            .iter()
            .filter(|(planned, _)| planned.skip_reason.is_none())
            .filter_map(|(planned, _)| Some((planned.build.site_id, planned.revives_alias.as_deref()?)))
            .collect();
        if !revived.is_empty() {
            let conditions: Vec<String> = (0..revived.len())
                .map(|i| format!("(site_id = ${} AND alias = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!("DELETE FROM retired_aliases WHERE {}", conditions.join(" OR "));
            let mut query = sqlx::query(&sql);
            for (site_id, alias) in &revived {
                query = query.bind(*site_id).bind(*alias);
            }
            query.execute(&mut *tx).await?;
        }

        let superseded = supersede(&mut tx, &new, now).await?;
        tx.commit().await?;

        let deliveries = (0..batch.len())
            .map(|i| match delivery_of(i) {
                Some(delivery) => PushRecorded::Recorded {
                    delivery,
                    builds: ids[i].clone(),
                    record: records[i].clone(),
                },
                None => PushRecorded::Claimed,
            })
            .collect();
        Ok(RecordedBatch {
            deliveries,
            superseded,
        })
    }

    /// What each branch asked (site, branch, pushed commit) built before,
    /// and whether it built the commit: the answers in the same order. One
    /// statement for up to [`HISTORIES_AT_ONCE`] branches, so a batch of
    /// deliveries reads them all in one trip instead of two per delivery.
    pub async fn branch_histories(&self, asked: &[BranchPushed<'_>]) -> anyhow::Result<Vec<BranchHistory>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            last_id: Option<i64>,
            last_commit: Option<String>,
            commit_built: Option<i64>,
        }
        let mut histories = Vec::with_capacity(asked.len());
        for chunk in asked.chunks(HISTORIES_AT_ONCE) {
            let sql = branch_histories_sql(chunk.len());
            let mut query = sqlx::query_as::<_, Row>(&sql);
            for (n, pushed) in chunk.iter().enumerate() {
                query = query
                    .bind(n as i64)
                    .bind(pushed.site_id)
                    .bind(pushed.branch)
                    .bind(pushed.commit);
            }
            let rows = query.fetch_all(&self.pool).await?;
            anyhow::ensure!(rows.len() == chunk.len(), "a branch's history is missing");
            histories.extend(rows.into_iter().map(|row| BranchHistory {
                last: row.last_id.zip(row.last_commit),
                commit_built: row.commit_built,
            }));
        }
        Ok(histories)
    }

    /// The deliveries of `batch` (by index) whose body was claimed before
    /// under another delivery id, or by an earlier delivery of the batch.
    async fn replayed_bodies(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        batch: &[PushDelivery],
    ) -> anyhow::Result<std::collections::HashSet<usize>> {
        let keys: Vec<String> = batch.iter().filter_map(|d| d.delivery.body_key()).collect();
        let mut claimed_by: HashMap<String, Option<String>> = HashMap::new();
        if !keys.is_empty() {
            let sql = format!(
                "SELECT body_key, dedupe_key FROM webhook_deliveries WHERE body_key IN ({})",
                (1..=keys.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query_as::<_, (String, Option<String>)>(&sql);
            for key in &keys {
                query = query.bind(key);
            }
            claimed_by.extend(query.fetch_all(&mut **tx).await?);
        }
        let mut replays = std::collections::HashSet::new();
        for (i, delivery) in batch.iter().enumerate() {
            let Some(body) = delivery.delivery.body_key() else {
                continue;
            };
            let id = delivery.delivery.dedupe_key();
            match claimed_by.get(&body) {
                Some(earlier) if *earlier != id => {
                    replays.insert(i);
                }
                Some(_) => {}
                None => {
                    claimed_by.insert(body, id);
                }
            }
        }
        Ok(replays)
    }

    /// `count` fresh build ids, in increasing order, inside the caller's
    /// writing transaction.
    async fn reserve_build_ids(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        count: usize,
    ) -> anyhow::Result<Vec<i64>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        match self.backend {
            // The transaction holds SQLite's write lock: nobody else takes
            // ids until it ends. `sqlite_sequence` remembers ids of builds
            // since deleted, so none is ever given twice.
            Backend::Sqlite => {
                let last: i64 = sqlx::query_scalar(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'builds'), 0), \
                     COALESCE((SELECT MAX(id) FROM builds), 0))",
                )
                .fetch_one(&mut **tx)
                .await?;
                Ok((1..=count as i64).map(|n| last + n).collect())
            }
            // The sequence hands ids out to every controller at once.
            Backend::Postgres => {
                let mut ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT nextval(pg_get_serial_sequence('builds', 'id')) FROM generate_series(1::BIGINT, $1)",
                )
                .bind(count as i64)
                .fetch_all(&mut **tx)
                .await?;
                ids.sort_unstable();
                Ok(ids)
            }
        }
    }
}

/// Each new queued build supersedes the older queued builds of its site,
/// context and branch (new ones of the same batch included), and asks the
/// running one to stop if its site says so. Three statements for the whole
/// batch.
async fn supersede(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    new: &[(&BatchedBuild, i64)],
    now: i64,
) -> anyhow::Result<Vec<SupersededBuild>> {
    // The newest new build of each branch.
    let mut newest: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
    for (planned, id) in new.iter().filter(|(planned, _)| planned.skip_reason.is_none()) {
        let build = &planned.build;
        let entry = newest
            .entry((build.site_id, build.context.as_str(), build.branch.as_str()))
            .or_insert(*id);
        *entry = (*entry).max(*id);
    }
    if newest.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT j.build_id, b.site_id, g.column4, b.started_at FROM jobs j JOIN builds b ON b.id = j.build_id \
         JOIN (VALUES {}) AS g ON b.site_id = g.column1 AND b.context = g.column2 \
         AND b.branch = g.column3 AND b.id < g.column4 AND b.state IN ('queued', 'running') \
         WHERE j.state IN ('queued', 'leased')",
        value_rows(newest.len(), 4, 1)
    );
    let mut query = sqlx::query_as::<_, (i64, i64, i64, Option<i64>)>(&sql);
    for ((site_id, context, branch), id) in &newest {
        query = query.bind(*site_id).bind(*context).bind(*branch).bind(*id);
    }
    let candidates: HashMap<i64, (i64, i64, Option<i64>)> = query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(build_id, site_id, newer, started_at)| (build_id, (site_id, newer, started_at)))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // `state` in `SET` is the value before the update, in `RETURNING`
    // after it.
    let listed: Vec<i64> = candidates.keys().copied().collect();
    let sql = format!(
        "UPDATE jobs SET state = CASE WHEN state = 'queued' THEN 'done' ELSE state END, \
         cancel_requested = CASE WHEN state = 'leased' THEN 1 ELSE cancel_requested END \
         WHERE state IN ('queued', 'leased') AND build_id IN ({}) AND (state = 'queued' \
         OR EXISTS (SELECT 1 FROM builds b JOIN sites s ON s.id = b.site_id \
         WHERE b.id = jobs.build_id AND s.cancel_superseded = 1)) \
         RETURNING build_id, state",
        (1..=listed.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
    for id in &listed {
        query = query.bind(*id);
    }
    let mut superseded: Vec<SupersededBuild> = query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(build_id, state)| {
            let (site_id, _, started_at) = candidates[&build_id];
            SupersededBuild {
                build_id,
                site_id,
                cancelled: state == "done",
                started_at,
                superseded_at: now,
            }
        })
        .collect();
    superseded.sort_by_key(|s| s.build_id);
    let cancelled: Vec<(i64, i64)> = superseded
        .iter()
        .filter(|s| s.cancelled)
        .map(|s| (s.build_id, candidates[&s.build_id].1))
        .collect();
    if !cancelled.is_empty() {
        let cases: Vec<String> = (0..cancelled.len())
            .map(|i| format!("WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3))
            .collect();
        let first_id = 2 * cancelled.len() + 2;
        let sql = format!(
            "UPDATE builds SET state = 'cancelled', finished_at = $1, error = CASE id {} END WHERE id IN ({})",
            cases.join(" "),
            (first_id..first_id + cancelled.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql).bind(now);
        for (old, newer) in &cancelled {
            query = query.bind(*old).bind(format!(
                "superseded by build {newer}, a newer commit of the same branch"
            ));
        }
        for (old, _) in &cancelled {
            query = query.bind(*old);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(superseded)
}
