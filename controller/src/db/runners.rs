//! Registered runners. Only the SHA-256 of a runner's token is stored.

use super::{Database, now_millis};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunnerRecord {
    pub id: i64,
    pub name: String,
    pub labels: Vec<String>,
    pub slots: i64,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Labels as stored: lowercase, trimmed, sorted, without duplicates or
/// empties, joined by commas.
pub fn normalize_labels<S: AsRef<str>>(labels: &[S]) -> String {
    let mut labels: Vec<String> = labels
        .iter()
        .map(|l| l.as_ref().trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    labels.sort();
    labels.dedup();
    labels.join(",")
}

pub fn split_labels(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether a runner with `have` labels may run a job that needs `need`.
pub fn labels_satisfy(have: &[String], need: &str) -> bool {
    split_labels(need).iter().all(|label| have.contains(label))
}

/// A live runner and the jobs it holds now.
#[derive(Debug, Clone)]
pub struct RunnerLoad {
    pub runner: RunnerRecord,
    pub leased: i64,
}

const RUNNER_COLUMNS: &str = "id, name, labels, slots, created_at, last_seen_at, revoked_at";

/// A row of `runners`: labels joined by commas.
#[derive(sqlx::FromRow)]
struct RunnerRow {
    id: i64,
    name: String,
    labels: String,
    slots: i64,
    created_at: i64,
    last_seen_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<RunnerRow> for RunnerRecord {
    fn from(row: RunnerRow) -> Self {
        RunnerRecord {
            id: row.id,
            name: row.name,
            labels: split_labels(&row.labels),
            slots: row.slots,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl Database {
    pub async fn register_runner(
        &self,
        name: &str,
        labels: &[String],
        slots: i64,
        token_hash: &str,
    ) -> anyhow::Result<RunnerRecord> {
        let row: RunnerRow = sqlx::query_as(&format!(
            "INSERT INTO runners (name, token_hash, labels, slots, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING {RUNNER_COLUMNS}"
        ))
        .bind(name)
        .bind(token_hash)
        .bind(normalize_labels(labels))
        .bind(slots)
        .bind(now_millis())
        .fetch_one(self.writer())
        .await?;
        Ok(row.into())
    }

    /// The live (not revoked) runner whose token has this hash.
    pub async fn runner_by_token(&self, token_hash: &str) -> anyhow::Result<Option<RunnerRecord>> {
        let row: Option<RunnerRow> = sqlx::query_as(&format!(
            "SELECT {RUNNER_COLUMNS} FROM runners WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(RunnerRecord::from))
    }

    /// One page of the runners, oldest first.
    pub async fn runners_page(&self, limit: i64, offset: i64) -> anyhow::Result<Vec<RunnerRecord>> {
        let rows: Vec<RunnerRow> = sqlx::query_as(&format!(
            "SELECT {RUNNER_COLUMNS} FROM runners ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(RunnerRecord::from).collect())
    }

    pub async fn list_runners(&self) -> anyhow::Result<Vec<RunnerRecord>> {
        let rows: Vec<RunnerRow> =
            sqlx::query_as(&format!("SELECT {RUNNER_COLUMNS} FROM runners ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(RunnerRecord::from).collect())
    }

    /// The registered (not revoked) runners, oldest first, each with the
    /// jobs it holds leased.
    pub async fn live_runner_loads(&self) -> anyhow::Result<Vec<RunnerLoad>> {
        let rows: Vec<RunnerRow> = sqlx::query_as(&format!(
            "SELECT {RUNNER_COLUMNS} FROM runners WHERE revoked_at IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let leased: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT runner_id, COUNT(*) FROM jobs WHERE state = 'leased' AND runner_id IS NOT NULL \
             GROUP BY runner_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let leased: std::collections::HashMap<i64, i64> = leased.into_iter().collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let runner = RunnerRecord::from(row);
                RunnerLoad {
                    leased: leased.get(&runner.id).copied().unwrap_or(0),
                    runner,
                }
            })
            .collect())
    }

    /// Revokes a runner's token; its next call is refused. Returns false when
    /// there is no such live runner.
    pub async fn revoke_runner(&self, id: i64) -> anyhow::Result<bool> {
        let result = sqlx::query("UPDATE runners SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Revokes every live runner of this name (an embedded runner replaces
    /// the one of its previous start).
    pub async fn revoke_runners_named(&self, name: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE runners SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Notes that a runner was seen; written at most every ten seconds so
    /// busy runners do not turn every lease into a write.
    /// Returns the time stored, if a statement stored one.
    pub async fn touch_runner(&self, runner: &RunnerRecord) -> anyhow::Result<Option<i64>> {
        let now = now_millis();
        if runner.last_seen_at.is_some_and(|seen| seen >= now - 10_000) {
            // Seen moments ago (the record was just read): no statement at all.
            return Ok(None);
        }
        let id = runner.id;
        sqlx::query(
            "UPDATE runners SET last_seen_at = $1 WHERE id = $2 \
             AND (last_seen_at IS NULL OR last_seen_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - 10_000)
        .execute(self.writer())
        .await?;
        Ok(Some(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_a_set_and_a_job_needs_all_of_its() {
        assert_eq!(normalize_labels(&[" GPU", "linux", "gpu", ""]), "gpu,linux");
        let have = split_labels("gpu,linux");
        assert!(labels_satisfy(&have, ""));
        assert!(labels_satisfy(&have, "linux"));
        assert!(labels_satisfy(&have, "gpu,linux"));
        assert!(!labels_satisfy(&have, "arm64"));
        assert!(!labels_satisfy(&[], "linux"));
    }
}
