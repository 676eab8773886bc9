//! The REST API under `/api/v1` and the webhook endpoints. Handlers live by
//! resource; every route is declared in `router.rs`.

pub mod builds;
pub mod deliveries;
pub mod deploys;
pub mod github;
pub mod log_stream;
pub mod pagination;
pub mod runners;
pub mod site_settings;
pub mod sites;
pub mod tokens;
pub mod webhooks;

use crate::db::Site;
use crate::error::{AppResult, not_found};
use crate::state::AppState;

/// The site named in a path, or a 404 that names it.
pub async fn find_site(state: &AppState, name: &str) -> AppResult<Site> {
    state.db.site_by_name(name).await?.ok_or_else(|| {
        not_found(format!(
            "no site named `{name}`; list sites with GET /api/v1/sites"
        ))
    })
}
