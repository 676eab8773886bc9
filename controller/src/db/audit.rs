//! The audit log: appended to, read a page at a time, pruned by age.
//! Nothing here changes a row once written.

use super::{Database, now_millis, placeholders, value_rows};
use std::collections::HashMap;

/// Entries one statement appends at most (eight parameters each).
const AUDIT_ROWS_AT_ONCE: usize = 500;

/// Whose a build is, as its audit entry names it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BuildOwner {
    pub build_id: i64,
    pub site_id: i64,
    pub site: String,
    pub team_id: Option<i64>,
}

/// One change, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// When, in Unix milliseconds.
    pub at: i64,
    /// `admin`, `token:<id>` or `user:<id>`.
    pub actor: String,
    /// The operation's id, e.g. `lock_site`.
    pub action: String,
    /// The site it was about, if any.
    pub site: Option<String>,
    /// The team of that site (or the team named), if any.
    pub team_id: Option<i64>,
    /// The path it was called on.
    pub target: String,
    /// The client's address.
    pub ip: Option<String>,
    /// The answer's status.
    pub status: i64,
}

/// An entry to append (`id` and `at` are the database's).
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub site: Option<String>,
    pub team_id: Option<i64>,
    pub target: String,
    pub ip: Option<String>,
    pub status: i64,
}

/// Which entries a read wants; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub site: Option<String>,
    /// Only entries of these teams' sites and teams (`None`: all).
    pub team: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Database {
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> anyhow::Result<()> {
        self.append_audits(std::slice::from_ref(entry)).await
    }

    /// Appends `entries`, in one statement per [`AUDIT_ROWS_AT_ONCE`].
    pub async fn append_audits(&self, entries: &[NewAuditEntry]) -> anyhow::Result<()> {
        let at = now_millis();
        for chunk in entries.chunks(AUDIT_ROWS_AT_ONCE) {
            let sql = format!(
                "INSERT INTO audit_log (at, actor, action, site, team_id, target, ip, status) VALUES {}",
                value_rows(chunk.len(), 8, 1)
            );
            let mut insert = sqlx::query(&sql);
            for entry in chunk {
                insert = insert
                    .bind(at)
                    .bind(&entry.actor)
                    .bind(&entry.action)
                    .bind(&entry.site)
                    .bind(entry.team_id)
                    .bind(&entry.target)
                    .bind(&entry.ip)
                    .bind(entry.status);
            }
            insert.execute(self.writer()).await?;
        }
        Ok(())
    }

    /// The site (id and name) and team of each of `builds` that exists.
    pub async fn owners_of_builds(&self, builds: &[i64]) -> anyhow::Result<HashMap<i64, BuildOwner>> {
        let mut owners = HashMap::new();
        for chunk in builds.chunks(AUDIT_ROWS_AT_ONCE) {
            let sql = format!(
                "SELECT b.id AS build_id, s.id AS site_id, s.name AS site, s.team_id FROM builds b \
                 JOIN sites s ON s.id = b.site_id WHERE b.id IN ({})",
                placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query_as::<_, BuildOwner>(&sql);
            for build in chunk {
                query = query.bind(*build);
            }
            owners.extend(
                query
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(|o| (o.build_id, o)),
            );
        }
        Ok(owners)
    }

    /// One page of the entries `filter` matches, newest first.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        // Every condition is written out and switched off by a NULL, so the
        // statement is the same whatever is filtered.
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, site, team_id, target, ip, status FROM audit_log \
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
             AND ($3 IS NULL OR site = $3) AND ($4 IS NULL OR team_id = $4) \
             AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
             ORDER BY id DESC LIMIT $7 OFFSET $8",
        )
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(&filter.site)
        .bind(filter.team)
        .bind(filter.since)
        .bind(filter.until)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes the entries older than `before`; how many went.
    pub async fn prune_audit(&self, before: i64) -> anyhow::Result<u64> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
