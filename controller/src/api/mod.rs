//! The REST API under `/api/v1` and the webhook endpoints. Handlers live by
//! resource; every `/api/v1` route is declared in [`routes`], together with
//! its documentation (see `openapi.rs`); the others in `router.rs`.

pub mod access;
pub mod audit;
pub mod build_hooks;
pub mod builds;
pub mod certificates;
pub mod deliveries;
pub mod deploys;
pub mod domains;
pub mod github;
pub mod identity;
pub mod invitations;
pub mod log_stream;
pub mod notifications;
pub mod openapi;
pub mod pagination;
pub mod protection;
pub mod runners;
pub mod schedules;
pub mod site_https;
pub mod site_settings;
pub mod sites;
pub mod team_settings;
pub mod teams;
pub mod tokens;
pub mod users;
pub mod webhooks;

use crate::db::{Database, Site};
use crate::error::{AppResult, not_found};
use crate::state::ApiRouter;
use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest manifest a runner or a direct deploy may send: manifests of
/// large sites are large JSON documents.
pub const MAX_MANIFEST: usize = 64 * 1024 * 1024;

/// Every route under `/api/v1`, each registered with its OpenAPI
/// documentation: only `routes!` is used here (never a bare `.route`), so
/// nothing is served that the document does not describe.
pub fn routes() -> ApiRouter {
    let documented = openapi::base()
        .routes(routes!(openapi::serve))
        .routes(routes!(sites::list, sites::create))
        .routes(routes!(sites::show, sites::update))
        .routes(routes!(sites::register_github_webhook))
        .routes(routes!(sites::create_generic_webhook))
        .routes(routes!(sites::lock))
        .routes(routes!(sites::unlock))
        .routes(routes!(site_settings::show, site_settings::update))
        .routes(routes!(site_settings::clear_cache))
        .routes(routes!(
            site_settings::show_network,
            site_settings::update_network
        ))
        .routes(routes!(site_settings::show_paths, site_settings::update_paths))
        .routes(routes!(protection::show, protection::update))
        .routes(routes!(protection::create_share_link))
        .routes(routes!(site_https::show, site_https::update))
        .routes(routes!(domains::list, domains::add))
        .routes(routes!(domains::remove))
        .routes(routes!(domains::verify))
        .routes(routes!(identity::show, identity::update, identity::delete))
        .routes(routes!(site_settings::list_env))
        .routes(routes!(site_settings::set_env, site_settings::delete_env))
        .routes(routes!(builds::list_for_site, builds::trigger))
        .routes(routes!(builds::show))
        .routes(routes!(builds::log))
        .routes(routes!(log_stream::stream))
        .routes(routes!(builds::attempts))
        .routes(routes!(builds::cancel))
        .routes(routes!(builds::retry))
        .routes(routes!(deploys::show))
        .routes(routes!(deploys::diff))
        .routes(routes!(deploys::finalize_direct))
        .routes(routes!(deploys::publish))
        .routes(routes!(deploys::remove_alias))
        .routes(routes!(deploys::collect_garbage))
        .routes(routes!(runners::queue))
        .routes(routes!(runners::list))
        .routes(routes!(runners::revoke))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::show))
        .routes(routes!(github::installations))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(teams::create_user))
        .routes(routes!(teams::create_team))
        .routes(routes!(teams::list_members))
        .routes(routes!(teams::set_member_role, teams::remove_member))
        .routes(routes!(teams::create_token))
        .routes(routes!(team_settings::show, team_settings::update))
        .routes(routes!(invitations::list, invitations::create))
        .routes(routes!(invitations::revoke))
        .routes(routes!(teams::set_member_password))
        .routes(routes!(
            teams::list_member_sessions,
            teams::revoke_member_sessions
        ))
        .routes(routes!(users::list_my_sessions))
        .routes(routes!(users::revoke_my_session))
        .routes(routes!(users::set_my_password))
        .routes(routes!(audit::list))
        .routes(routes!(audit::list_for_team))
        .routes(routes!(notifications::list, notifications::create))
        .routes(routes!(notifications::delete))
        .routes(routes!(notifications::deliveries))
        .routes(routes!(build_hooks::list, build_hooks::create))
        .routes(routes!(build_hooks::revoke))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(schedules::delete));
    let certificates = OpenApiRouter::new()
        .routes(routes!(certificates::list))
        .routes(routes!(certificates::upload, certificates::remove))
        .layer(DefaultBodyLimit::max(certificates::MAX_CERTIFICATE_BODY));
    let manifests = OpenApiRouter::new()
        .routes(routes!(deploys::list_for_site, deploys::create_direct))
        .layer(DefaultBodyLimit::max(MAX_MANIFEST));
    // Streamed to disk, or read whole up to a bundle's bound; the handlers
    // enforce the limits.
    let blobs = OpenApiRouter::new()
        .routes(routes!(deploys::put_blob))
        .routes(routes!(deploys::post_blob_bundle))
        .layer(DefaultBodyLimit::disable());
    documented.merge(certificates).merge(manifests).merge(blobs)
}

/// The site named in a path, or a 404 that names it.
pub async fn find_site(db: &Database, name: &str) -> AppResult<Site> {
    db.site_by_name(name).await?.ok_or_else(|| {
        not_found(format!(
            "no site named `{name}`; list sites with GET /api/v1/sites"
        ))
    })
}
