//! Retention and garbage collection, run every `gc_interval` and on
//! `POST /api/v1/gc`.
//!
//! 1. Deploys go when they are older than the newest `keep_deploys` of
//!    their site and context, when they are previews of closed pull requests
//!    or deploys of deleted branches (their hostname alias is gone), or when
//!    they are uploads whose job ended without finalizing. Never removed:
//!    the published deploy (whatever its age, so also a locked site's) and
//!    any deploy a preview or branch hostname serves; the check and the
//!    removal are one transaction (`Database::remove_deploy`).
//! 2. Blobs go when no remaining deploy's files name them (directly or as a
//!    compressed variant) and they are older than `blob_grace`
//!    (`Database::sweep_unreferenced_blobs`). A manifest recorded while the
//!    sweep runs either names a blob before it is removed, which keeps it,
//!    or finds it missing and uploads it again under a new store key; the
//!    sweep deletes only the key of the row it removed.
//! 3. Objects in the store that no row names (an upload that crashed
//!    between writing and recording) go once older than `blob_grace`.

use super::Deploys;
use super::alias_for;
use super::events::DeployEvent;
use crate::db::now_millis;
use jamstack_proto::BuildContext;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// What one collection did.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct GcReport {
    pub deploys_removed: Vec<String>,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub orphans_removed: u64,
}

/// Blobs removed per transaction.
const SWEEP_BATCH: i64 = 1000;

pub async fn collect_garbage(state: &Deploys) -> anyhow::Result<GcReport> {
    let retention = state.config.retention;
    let grace = retention.blob_grace;
    let cutoff = now_millis() - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let db = &state.db;
    let mut report = GcReport::default();

    let mut candidates = BTreeSet::new();
    if retention.keep_deploys > 0 {
        candidates.extend(
            db.deploys_beyond_newest(i64::from(retention.keep_deploys))
                .await?,
        );
    }
    let aliases = db.all_aliases().await?;
    for deploy in db.ready_deploys_off_production().await? {
        let context = BuildContext::parse(&deploy.context).unwrap_or(BuildContext::Production);
        if let Some(alias) = alias_for(context, &deploy.branch, deploy.pr_number)
            && !aliases.contains(&(deploy.site_id, alias))
        {
            candidates.insert(deploy.id);
        }
    }
    candidates.extend(db.abandoned_uploads(cutoff).await?);
    for deploy_id in candidates {
        if db.remove_deploy(&deploy_id).await?.is_some() {
            state
                .announce(DeployEvent::DeployRemoved {
                    deploy_id: deploy_id.clone(),
                })
                .await;
            report.deploys_removed.push(deploy_id);
        }
    }

    loop {
        let swept = db.sweep_unreferenced_blobs(cutoff, SWEEP_BATCH).await?;
        for blob in &swept {
            // A failed delete leaves an object no row names: step 3 of a
            // later run removes it.
            if let Err(e) = state.blobs.delete(&blob.key).await {
                tracing::warn!(blob = %blob.sha256, error = %e, "deleting a collected blob failed");
            }
            report.blobs_removed += 1;
            report.bytes_freed += blob.size as u64;
        }
        if (swept.len() as i64) < SWEEP_BATCH {
            break;
        }
    }

    let before = SystemTime::now() - grace;
    let keys = state.blobs.keys_older_than(before).await?;
    let known = db.known_blob_keys(&keys).await?;
    for key in keys.iter().filter(|k| !known.contains(*k)) {
        state.blobs.delete(key).await?;
        report.orphans_removed += 1;
    }
    remove_old_files(&state.config.staging_dir(), before).await;
    if !report.deploys_removed.is_empty() || report.blobs_removed > 0 || report.orphans_removed > 0 {
        tracing::info!(
            deploys = report.deploys_removed.len(),
            blobs = report.blobs_removed,
            bytes = report.bytes_freed,
            orphans = report.orphans_removed,
            "garbage collected"
        );
    }
    Ok(report)
}

/// Uploads a crash left in the staging directory.
async fn remove_old_files(dir: &std::path::Path, before: SystemTime) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let old = entry
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .is_some_and(|modified| modified < before);
        if old {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

/// Collects garbage every `gc_interval`, forever (never, if it is zero).
pub async fn collect_periodically(state: Deploys) {
    let every = state.config.retention.gc_interval;
    if every == Duration::ZERO {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(error) = collect_garbage(&state).await {
            tracing::error!(error = format!("{error:#}"), "garbage collection failed");
        }
    }
}
