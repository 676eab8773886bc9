//! Runners and the queue, as operators see them.

use super::pagination::{Paged, Pagination};
use crate::auth::{Admin, CanRead};
use crate::db::{QueueEntry, RunnerRecord};
use crate::error::{AppResult, not_found};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

/// Registered runners, oldest first, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    page: Pagination,
) -> AppResult<Paged<RunnerRecord>> {
    let runners = state.db.runners_page(page.fetch_limit(), page.offset()).await?;
    Ok(page.answer(runners))
}

/// Revokes a runner: its next call is refused and it stops. Its running
/// job, if any, is requeued once the lease expires.
pub async fn revoke(State(state): State<AppState>, _: Admin, Path(id): Path<i64>) -> AppResult<StatusCode> {
    if !state.db.revoke_runner(id).await? {
        return Err(not_found(format!("no live runner {id}")));
    }
    tracing::info!(runner = id, "runner revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct QueueView {
    pub queued: Vec<QueueEntry>,
    pub running: Vec<QueueEntry>,
}

/// Everything queued and running across sites, oldest first.
pub async fn queue(State(state): State<AppState>, _: CanRead) -> AppResult<Json<QueueView>> {
    let (running, queued) = state
        .db
        .queue_overview()
        .await?
        .into_iter()
        .partition(|entry| entry.state == "running");
    Ok(Json(QueueView { queued, running }))
}
