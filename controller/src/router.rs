//! Every route of the controller, in one place.
//!
//! One listener serves five audiences, told apart by `Host` and path:
//! site visitors (`<site>.<domain>`, answered by the edge before routing),
//! the REST API (`/api/v1`), webhooks (`/webhooks/github` and
//! `/webhooks/generic/{site}`), runners (`/runner/v1`, see
//! `jamstack_proto`) and people (the dashboard, every other path).

use crate::api::{self, webhooks::MAX_WEBHOOK_BODY};
use crate::dashboard;
use crate::edge;
use crate::error::not_found;
use crate::runner_api::{self, MAX_LOG_BATCH};
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use tower_http::trace::TraceLayer;

/// Ready when the database answers (and, through it, the controller can
/// queue, lease and publish); 503 with the reason otherwise.
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.db.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database does not answer: {e}\n"),
        )
            .into_response(),
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/sites", get(api::sites::list).post(api::sites::create))
        .route(
            "/api/v1/sites/{site}",
            get(api::sites::show).patch(api::sites::update),
        )
        .route(
            "/api/v1/sites/{site}/github-webhook",
            post(api::sites::register_github_webhook),
        )
        .route(
            "/api/v1/sites/{site}/generic-webhook",
            post(api::sites::create_generic_webhook),
        )
        .route("/api/v1/sites/{site}/lock", post(api::sites::lock))
        .route("/api/v1/sites/{site}/unlock", post(api::sites::unlock))
        .route(
            "/api/v1/sites/{site}/build-settings",
            get(api::site_settings::show).put(api::site_settings::update),
        )
        .route(
            "/api/v1/sites/{site}/cache/clear",
            post(api::site_settings::clear_cache),
        )
        .route("/api/v1/sites/{site}/env", get(api::site_settings::list_env))
        .route(
            "/api/v1/sites/{site}/env/{name}",
            put(api::site_settings::set_env).delete(api::site_settings::delete_env),
        )
        .route(
            "/api/v1/sites/{site}/builds",
            get(api::builds::list_for_site).post(api::builds::trigger),
        )
        .route("/api/v1/sites/{site}/deploys", get(api::deploys::list_for_site))
        .route(
            "/api/v1/sites/{site}/deploys/{deploy}/publish",
            post(api::deploys::publish),
        )
        .route(
            "/api/v1/sites/{site}/aliases/{alias}",
            delete(api::deploys::remove_alias),
        )
        .route("/api/v1/builds/{id}", get(api::builds::show))
        .route("/api/v1/builds/{id}/log", get(api::builds::log))
        .route("/api/v1/builds/{id}/log/stream", get(api::log_stream::stream))
        .route("/api/v1/builds/{id}/attempts", get(api::builds::attempts))
        .route("/api/v1/queue", get(api::runners::queue))
        .route("/api/v1/runners", get(api::runners::list))
        .route(
            "/api/v1/runners/{id}",
            axum::routing::delete(api::runners::revoke),
        )
        .route("/api/v1/builds/{id}/cancel", post(api::builds::cancel))
        .route("/api/v1/webhook-deliveries", get(api::deliveries::list))
        .route("/api/v1/webhook-deliveries/{id}", get(api::deliveries::show))
        .route("/api/v1/github/installations", get(api::github::installations))
        .route("/api/v1/gc", post(api::deploys::collect_garbage));

    let webhooks = Router::new()
        .route("/webhooks/github", post(api::webhooks::github))
        .route("/webhooks/generic/{site}", post(api::webhooks::generic))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY));

    let runners = Router::new()
        .route("/runner/v1/register", post(runner_api::register))
        .route("/runner/v1/connect", post(runner_api::connect))
        .route("/runner/v1/jobs/lease", post(runner_api::lease))
        .route("/runner/v1/jobs/{job}/heartbeat", post(runner_api::heartbeat))
        .route("/runner/v1/jobs/{job}/commit", post(runner_api::commit))
        .route(
            "/runner/v1/jobs/{job}/log",
            post(runner_api::append_log).layer(DefaultBodyLimit::max(MAX_LOG_BATCH)),
        )
        .route("/runner/v1/jobs/{job}/deploy", post(runner_api::create_deploy))
        .route(
            "/runner/v1/jobs/{job}/deploy/finalize",
            post(runner_api::finalize_deploy),
        )
        .route("/runner/v1/jobs/{job}/complete", post(runner_api::complete))
        .route(
            "/runner/v1/blobs/{sha256}",
            // Streamed to disk; the handler enforces the file size limit.
            put(runner_api::put_blob).layer(DefaultBodyLimit::disable()),
        )
        // Manifests of large sites are large JSON documents.
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024));

    // Server-rendered pages; every POST is a form carrying a CSRF token.
    let dashboard = Router::new()
        .route("/", get(dashboard::home))
        .route("/assets/dashboard.css", get(dashboard::stylesheet))
        .route("/assets/build-log.js", get(dashboard::log_script))
        .route(
            "/login",
            get(dashboard::login::show).post(dashboard::login::sign_in),
        )
        .route("/logout", post(dashboard::login::sign_out))
        .route(
            "/sites",
            get(dashboard::sites::list).post(dashboard::sites::create),
        )
        .route("/sites/new", get(dashboard::sites::new_form))
        .route("/sites/{site}", get(dashboard::sites::show))
        .route(
            "/sites/{site}/settings",
            get(dashboard::sites::settings).post(dashboard::sites::save_settings),
        )
        .route("/sites/{site}/builds", post(dashboard::sites::trigger))
        .route("/sites/{site}/lock", post(dashboard::sites::lock))
        .route("/sites/{site}/unlock", post(dashboard::sites::unlock))
        .route("/sites/{site}/deploys/{deploy}", get(dashboard::deploys::show))
        .route(
            "/sites/{site}/deploys/{deploy}/publish",
            post(dashboard::sites::publish),
        )
        .route("/builds/{id}", get(dashboard::builds::show))
        .route("/builds/{id}/cancel", post(dashboard::builds::cancel))
        .route("/builds/{id}/retry", post(dashboard::builds::retry))
        .route("/queue", get(dashboard::queue::show))
        .route("/settings", get(dashboard::settings::show))
        .route("/settings/tokens", post(dashboard::settings::create_token))
        .route(
            "/settings/tokens/{id}/revoke",
            post(dashboard::settings::revoke_token),
        );

    Router::new()
        .merge(api)
        .merge(dashboard)
        .merge(webhooks)
        .merge(runners)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(|| async { not_found("no such route; the API lives under /api/v1") })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The service the listener runs: site hostnames go to the edge first,
/// whatever their path, and skip the API's routing and middleware.
pub fn service(state: AppState) -> edge::SiteHostsFirst {
    edge::SiteHostsFirst::new(state.clone(), router(state))
}
