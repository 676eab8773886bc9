//! Runners and the queue, as operators see them.

use super::pagination::PageParams;
use super::pagination::{Paged, Pagination};
use crate::auth::Auth;
use crate::auth::{Admin, CanRead};
use crate::config::Config;
use crate::db::Database;
use crate::db::{QueueEntry, RunnerRecord};
use crate::error::{AppResult, not_found};
use crate::waiting::Thresholds;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::ErrorBody;
use serde::Serialize;
use std::sync::Arc;

/// Registered runners, oldest first, a page at a time.
#[utoipa::path(
    get,
    operation_id = "list_runners",
    path = "/api/v1/runners",
    tag = "admin",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the runners, oldest first", body = Vec<RunnerRecord>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn list(State(db): State<Database>, _: Admin, page: Pagination) -> AppResult<Paged<RunnerRecord>> {
    let runners = db.runners_page(page.fetch_limit(), page.offset()).await?;
    Ok(page.answer(runners))
}

/// Revokes a runner: its next call is refused and it stops. Its running
/// job, if any, is requeued once the lease expires.
#[utoipa::path(
    delete,
    operation_id = "revoke_runner",
    path = "/api/v1/runners/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "The runner's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn revoke(
    State(auth): State<Auth>,
    State(db): State<Database>,
    _: Admin,
    Path(id): Path<i64>,
) -> AppResult<StatusCode> {
    let revoked = db.revoke_runner(id).await?;
    // Refused from the next call on, not when the remembered token expires.
    auth.known_runners.forget(|runner| runner.id == id);
    if !revoked {
        return Err(not_found(format!("no live runner {id}")));
    }
    tracing::info!(runner = id, "runner revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub queued: Vec<QueueEntry>,
    pub running: Vec<QueueEntry>,
}

/// Everything queued and running across sites, oldest first.
#[utoipa::path(
    get,
    operation_id = "show_queue",
    path = "/api/v1/queue",
    tag = "builds",
    responses(
        (status = 200, description = "Queued and running builds across sites, oldest first", body = QueueView),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn queue(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    _: CanRead,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
) -> AppResult<Json<QueueView>> {
    let mut entries = db.queue_overview().await?;
    let filter = principal.team_filter();
    if filter != crate::db::TeamFilter::All {
        // Only the sites of the asker's teams: other teams' names stay unseen.
        let visible = db.site_names_of(filter).await?;
        entries.retain(|entry| visible.contains(&entry.site));
    }
    crate::waiting::explain_queue(&db, Thresholds::of(&config), &mut entries).await?;
    let (running, queued) = entries.into_iter().partition(|entry| entry.state == "running");
    Ok(Json(QueueView { queued, running }))
}
