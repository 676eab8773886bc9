//! `GET /api/v1/github/installations`: the GitHub App's installations and
//! the repositories each one reaches, as installation events told us.

use crate::auth::Admin;
use crate::db::Database;
use crate::db::Installation;
use crate::error::AppResult;
use axum::Json;
use axum::extract::State;

#[utoipa::path(
    get,
    operation_id = "list_github_installations",
    path = "/api/v1/github/installations",
    tag = "admin",
    responses(
        (status = 200, description = "The GitHub App's installations", body = Vec<Installation>),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn installations(State(db): State<Database>, _: Admin) -> AppResult<Json<Vec<Installation>>> {
    Ok(Json(db.installations().await?))
}
