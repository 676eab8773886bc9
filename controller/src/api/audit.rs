//! Reading the audit log: the installation's whole log for the admin, a
//! team's part for its owners, newest first, a page at a time, filtered.

use super::pagination::PageParams;
use super::pagination::{Paged, Pagination};
use crate::db::{AuditEntry, AuditFilter, Database};
use crate::error::{AppResult, not_found};
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// What to show; every filter left out matches everything.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `admin`, `token:<id>` or `user:<id>`.
    pub actor: Option<String>,
    /// An operation's id, e.g. `lock_site`.
    pub action: Option<String>,
    /// A site's name.
    pub site: Option<String>,
    /// From this time on (Unix milliseconds).
    pub since: Option<i64>,
    /// Before this time (Unix milliseconds).
    pub until: Option<i64>,
}

impl AuditQuery {
    fn filter(self, team: Option<i64>) -> AuditFilter {
        AuditFilter {
            actor: self.actor,
            action: self.action,
            site: self.site,
            team,
            since: self.since,
            until: self.until,
        }
    }
}

/// Every change made through the API, newest first.
#[utoipa::path(
    get,
    operation_id = "list_audit_log",
    path = "/api/v1/audit",
    tag = "admin",
    params(AuditQuery, PageParams),
    responses(
        (status = 200, description = "One page of the audit log, newest first", body = Vec<AuditEntry>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn list(
    State(db): State<Database>,
    Query(query): Query<AuditQuery>,
    page: Pagination,
) -> AppResult<Paged<AuditEntry>> {
    let entries = db
        .audit_page(&query.filter(None), page.fetch_limit(), page.offset())
        .await?;
    Ok(page.answer(entries))
}

/// The changes made to a team and its sites, newest first.
#[utoipa::path(
    get,
    operation_id = "list_team_audit_log",
    path = "/api/v1/teams/{team}/audit",
    tag = "teams",
    params(("team" = String, Path, description = "The team's name"), AuditQuery, PageParams),
    responses(
        (status = 200, description = "One page of the team's audit log, newest first", body = Vec<AuditEntry>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn list_for_team(
    State(db): State<Database>,
    Path(team): Path<String>,
    Query(query): Query<AuditQuery>,
    page: Pagination,
) -> AppResult<Paged<AuditEntry>> {
    let team = db
        .team_by_name(&team)
        .await?
        .ok_or_else(|| not_found(format!("no team named `{team}`")))?;
    let entries = db
        .audit_page(&query.filter(Some(team.id)), page.fetch_limit(), page.offset())
        .await?;
    Ok(page.answer(entries))
}
