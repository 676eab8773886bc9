//! `GET /api/v1/github/installations`: the GitHub App's installations and
//! the repositories each one reaches, as installation events told us.

use crate::auth::Admin;
use crate::db::Installation;
use crate::error::AppResult;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;

pub async fn installations(State(state): State<AppState>, _: Admin) -> AppResult<Json<Vec<Installation>>> {
    Ok(Json(state.db.installations().await?))
}
