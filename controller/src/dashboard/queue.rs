//! Everything queued and running across sites, and the runners.

use super::{Chrome, PageResult, Session, ago, render, short_sha};
use crate::config::Config;
use crate::db::Database;
use crate::db::QueueEntry;
use crate::waiting::Thresholds;
use askama::Template;
use axum::extract::State;
use std::sync::Arc;

pub struct QueueRow {
    pub build_id: i64,
    pub site: String,
    pub context: String,
    pub branch: String,
    pub sha: String,
    pub runner: String,
    pub attempt: i64,
    pub when: String,
    /// Why a queued build has not started, if something keeps it.
    pub waiting_reason: Option<String>,
}

pub struct RunnerRow {
    pub name: String,
    pub labels: String,
    pub slots: i64,
    pub seen: String,
    pub revoked: bool,
    /// The builds it runs now.
    pub jobs: Vec<i64>,
}

#[derive(Template)]
#[template(path = "dashboard/queue.html")]
struct QueuePage {
    chrome: Chrome,
    running: Vec<QueueRow>,
    queued: Vec<QueueRow>,
    runners: Vec<RunnerRow>,
}

fn row(entry: &QueueEntry) -> QueueRow {
    QueueRow {
        build_id: entry.build_id,
        site: entry.site.clone(),
        context: entry.context.clone(),
        branch: entry.branch.clone(),
        sha: short_sha(&entry.commit_sha),
        runner: entry.runner.clone().unwrap_or_default(),
        attempt: entry.attempt,
        when: ago(entry.started_at.unwrap_or(entry.created_at)),
        waiting_reason: entry.waiting_reason.clone(),
    }
}

pub async fn show(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    session: Session,
) -> PageResult {
    let mut entries = db.queue_overview().await?;
    crate::waiting::explain_queue(&db, Thresholds::of(&config), &mut entries).await?;
    let (running, queued): (Vec<_>, Vec<_>) = entries.iter().partition(|e| e.state == "running");
    let runners = db
        .list_runners()
        .await?
        .into_iter()
        .map(|r| RunnerRow {
            jobs: running
                .iter()
                .filter(|e| e.runner.as_deref() == Some(r.name.as_str()))
                .map(|e| e.build_id)
                .collect(),
            labels: r.labels.join(", "),
            slots: r.slots,
            seen: r.last_seen_at.map(ago).unwrap_or_else(|| "never".to_owned()),
            revoked: r.revoked_at.is_some(),
            name: r.name,
        })
        .collect();
    Ok(render(&QueuePage {
        chrome: Chrome::new(&session, "queue"),
        running: running.into_iter().map(row).collect(),
        queued: queued.into_iter().map(row).collect(),
        runners,
    }))
}
