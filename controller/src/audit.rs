//! The audit log's upkeep. Changes made through the API are recorded by its
//! permission layer (`api::access`); this module records those made without
//! an API call (a webhook queueing a build, a schedule firing, a dashboard
//! action), and removes entries older than `--audit-retention-days`.

use crate::config::Retention;
use crate::db::{Database, NewAuditEntry};
use crate::notifications::Notifications;
use std::time::Duration;

/// How often old entries are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The audit log as a service: where entries are written, and the
/// notifications an entry is shipped to (event `audit`).
#[derive(Clone)]
pub struct AuditLog {
    pub db: Database,
    pub notifications: Notifications,
}

impl AuditLog {
    /// Appends `entry` to the audit log and queues it for the hooks of its
    /// site that subscribe to `audit`. A failure is logged, never passed
    /// on: recording a change never undoes it.
    pub async fn record(&self, entry: NewAuditEntry) {
        if let Err(e) = self.db.append_audit(&entry).await {
            tracing::error!(error = format!("{e:#}"), action = %entry.action, "writing the audit log failed");
        }
        crate::notifications::audit_recorded(&self.notifications, &entry).await;
    }

    /// Records that `actor` (`webhook:github`, `schedule:<id>`, …) queued
    /// each of `builds`; `status` is what the sender was answered (0 when
    /// no one was).
    pub async fn builds_queued(&self, actor: &str, builds: &[i64], status: i64) {
        let queued: Vec<QueuedBuild<'_>> = builds
            .iter()
            .map(|&build| QueuedBuild { actor, build, status })
            .collect();
        self.record_builds_queued(&queued).await;
    }

    /// [`AuditLog::builds_queued`] for builds queued by several senders at
    /// once (a batch of webhook deliveries): one read, one write.
    pub async fn record_builds_queued(&self, queued: &[QueuedBuild<'_>]) {
        if queued.is_empty() {
            return;
        }
        let builds: Vec<i64> = queued.iter().map(|q| q.build).collect();
        let owners = self.db.owners_of_builds(&builds).await.unwrap_or_else(|e| {
            tracing::error!(
                error = format!("{e:#}"),
                "reading the sites of queued builds failed"
            );
            Default::default()
        });
        let rows: Vec<NewAuditEntry> = queued
            .iter()
            .map(|q| {
                let owner = owners.get(&q.build);
                NewAuditEntry {
                    actor: q.actor.to_owned(),
                    action: "queue_build".to_owned(),
                    site: owner.map(|o| o.site.clone()),
                    team_id: owner.and_then(|o| o.team_id),
                    target: format!("/api/v1/builds/{}", q.build),
                    ip: None,
                    status: q.status,
                }
            })
            .collect();
        if let Err(e) = self.db.append_audits(&rows).await {
            tracing::error!(
                error = format!("{e:#}"),
                entries = rows.len(),
                "writing the audit log failed"
            );
        }
        let of_sites: Vec<(i64, &NewAuditEntry)> = queued
            .iter()
            .zip(&rows)
            .filter_map(|(q, entry)| Some((owners.get(&q.build)?.site_id, entry)))
            .collect();
        crate::notifications::audits_recorded(&self.notifications, &of_sites).await;
    }
}

/// A build someone queued, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct QueuedBuild<'a> {
    /// `webhook:github`, `schedule:<id>`, …
    pub actor: &'a str,
    pub build: i64,
    /// What the sender was answered (0 when no one was).
    pub status: i64,
}

/// Removes the entries older than the retention allows at `now` (Unix
/// milliseconds); how many went. Keeps everything when the retention is 0.
pub async fn prune_expired(db: &Database, retention: &Retention, now: i64) -> anyhow::Result<u64> {
    let Some(keep) = retention.audit_log() else {
        return Ok(0);
    };
    let keep = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    db.prune_audit(now.saturating_sub(keep)).await
}

/// Prunes the audit log every hour, forever.
pub async fn prune_periodically(db: Database, retention: Retention) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        match prune_expired(&db, &retention, crate::db::now_millis()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired audit log entries removed"),
            Err(e) => tracing::error!(error = format!("{e:#}"), "pruning the audit log failed"),
        }
    }
}
