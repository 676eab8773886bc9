//! Every route of the controller, in one place.
//!
//! One listener serves five audiences, told apart by `Host` and path:
//! site visitors (`<site>.<domain>`, answered by the edge before routing),
//! the REST API (`/api/v1`, declared with its documentation in
//! `api::routes`), webhooks (`/webhooks/github` and
//! `/webhooks/generic/{site}`, and build hooks at `/hooks/build/{id}`), runners (`/runner/v1`, see
//! `jamstack_proto`) and people (the dashboard, every other path).

use crate::api::{self, webhooks::MAX_WEBHOOK_BODY};
use crate::auth::CanRead;
use crate::dashboard;
use crate::db::Database;
use crate::deploys::Deploys;
use crate::edge;
use crate::error::AppResult;
use crate::error::not_found;
use crate::metrics::Metrics;
use crate::runner_api::{self, MAX_LOG_BATCH};
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post, put};
use jamstack_proto::routes::runner;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// The dashboard's Content-Security-Policy. Its one script and its
/// stylesheet are files of its own (`/assets/`), with no inline script or
/// style, and the live log reads `/api/v1` of the same origin; no page may
/// frame it (a site served on a neighbouring domain could otherwise
/// overlay its forms: clickjacking), post a form elsewhere or change the
/// base of its links.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the headers every dashboard page and asset answers with: the CSP,
/// the same refusal to be framed for browsers without CSP level 2
/// (`X-Frame-Options`), no content sniffing, and no dashboard URL (build
/// and deploy ids, site names) in the `Referer` of links to sites.
fn with_dashboard_headers(pages: Router<AppState>) -> Router<AppState> {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    pages
        .layer(set(header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::REFERRER_POLICY, "same-origin"))
}

/// Ready when the database answers and the blob store takes writes (or its
/// bucket answers): then the controller can queue, lease, store and
/// publish. 503 with the reason otherwise.
async fn ready(
    axum::extract::State(db): axum::extract::State<Database>,
    axum::extract::State(deploys): axum::extract::State<Deploys>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let unavailable = |reason: String| {
        tracing::warn!(%reason, "not ready");
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response()
    };
    if let Err(e) = db.ping().await {
        return unavailable(format!("the database does not answer: {e}"));
    }
    if let Err(e) = deploys.blobs.check_reachable().await {
        return unavailable(format!(
            "the blob store ({}) is unreachable: {e}",
            deploys.blobs.describe()
        ));
    }
    "ready\n".into_response()
}

/// `GET /metrics` on the main listener: a token with the `read` scope (or a
/// dashboard session) is needed, as the figures name every site.
pub async fn serve_with_token(
    db: axum::extract::State<Database>,
    metrics: axum::extract::State<Arc<Metrics>>,
    certificates: axum::extract::State<crate::tls::Certificates>,
    _: CanRead,
) -> AppResult<axum::response::Response> {
    serve_open(db, metrics, certificates).await
}

/// `GET /metrics` on the listener of `--metrics-listen`, which is open.
pub async fn serve_open(
    axum::extract::State(db): axum::extract::State<Database>,
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    axum::extract::State(certificates): axum::extract::State<crate::tls::Certificates>,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let queue = db.queue_figures().await?;
    metrics.set_certificate_expiries(&certificates.store.expiries(), crate::db::now_millis());
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        metrics.render(queue),
    )
        .into_response())
}

/// The open metrics listener's routes (`--metrics-listen`): `/metrics`
/// without a token, for a scraper on a private network, and nothing else.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(serve_open))
        .fallback(|| async { not_found("this listener serves only /metrics") })
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    // Every route under /api/v1, built with its OpenAPI documentation.
    // Every one is checked against the permission its operation declares.
    let (api_routes, _) = api::routes().split_for_parts();
    let api_routes = api_routes.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        api::access::require_declared_permission,
    ));

    let webhooks = Router::new()
        .route("/webhooks/github", post(api::webhooks::github))
        .route("/webhooks/generic/{site}", post(api::webhooks::generic))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY));
    // Called by a CMS with whatever it sends; the id is the credential.
    let build_hooks = Router::new()
        .route(api::build_hooks::HOOK_PATH, post(api::build_hooks::call))
        .layer(DefaultBodyLimit::max(api::build_hooks::MAX_HOOK_BODY));

    // The runner protocol's paths live in `jamstack_proto::routes`, next to
    // its types, so the runner cannot call a path this router lacks.
    let runners = Router::new()
        .route(
            runner::REGISTER,
            // Read before it is authenticated: a few KB, not a manifest's 64 MiB.
            post(runner_api::register).layer(DefaultBodyLimit::max(runner_api::MAX_REGISTER_BODY)),
        )
        .route(runner::CONNECT, post(runner_api::connect))
        .route(runner::LEASE, post(runner_api::lease))
        .route(runner::HEARTBEAT, post(runner_api::heartbeat))
        .route(runner::COMMIT, post(runner_api::commit))
        .route(
            runner::LOG,
            post(runner_api::append_log).layer(DefaultBodyLimit::max(MAX_LOG_BATCH)),
        )
        .route(runner::DEPLOY, post(runner_api::create_deploy))
        .route(runner::FINALIZE, post(runner_api::finalize_deploy))
        .route(runner::COMPLETE, post(runner_api::complete))
        .route(runner::HAND_BACK, post(runner_api::hand_back))
        .route(
            runner::BLOB,
            // Streamed to disk; the handler enforces the file size limit.
            put(runner_api::put_blob).layer(DefaultBodyLimit::disable()),
        )
        .route(
            runner::BLOB_BUNDLES,
            // Read whole up to the bundle's bound by the handler.
            post(runner_api::post_blob_bundle).layer(DefaultBodyLimit::disable()),
        )
        // Manifests of large sites are large JSON documents.
        .layer(DefaultBodyLimit::max(api::MAX_MANIFEST));

    // Server-rendered pages; every POST is a form carrying a CSRF token.
    let dashboard = with_dashboard_headers(
        Router::new()
            .route("/", get(dashboard::home))
            .route("/assets/dashboard.css", get(dashboard::stylesheet))
            .route("/assets/build-log.js", get(dashboard::log_script))
            .route(
                "/login",
                get(dashboard::login::show).post(dashboard::login::sign_in),
            )
            .route("/login/oidc", get(dashboard::oidc_login::start))
            .route("/login/oidc/callback", get(dashboard::oidc_login::callback))
            .route(
                dashboard::github_login::START_PATH,
                get(dashboard::github_login::start),
            )
            .route(
                dashboard::github_login::CALLBACK_PATH,
                get(dashboard::github_login::callback),
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
                get(dashboard::site_settings::show).post(dashboard::site_settings::save_scheduling),
            )
            .route(
                "/sites/{site}/settings/limits",
                post(dashboard::site_settings::save_limits),
            )
            .route(
                "/sites/{site}/settings/network",
                post(dashboard::site_settings::save_network),
            )
            .route(
                "/sites/{site}/settings/protection",
                post(dashboard::site_settings::save_protection),
            )
            .route(
                "/sites/{site}/settings/identity",
                post(dashboard::site_settings::save_identity),
            )
            .route(
                "/sites/{site}/settings/repository",
                post(dashboard::site_settings::connect_repository),
            )
            .route(
                "/sites/{site}/settings/https",
                post(dashboard::site_settings::save_https),
            )
            .route(
                "/sites/{site}/settings/paths",
                post(dashboard::site_settings::save_paths),
            )
            .route("/sites/{site}/env", post(dashboard::site_settings::set_env))
            .route(
                "/sites/{site}/domains",
                post(dashboard::site_settings::add_domain),
            )
            .route(
                "/sites/{site}/domains/{hostname}/verify",
                post(dashboard::site_settings::verify_domain),
            )
            .route(
                "/sites/{site}/domains/{hostname}/remove",
                post(dashboard::site_settings::remove_domain),
            )
            .route(
                "/sites/{site}/build-hooks",
                post(dashboard::site_settings::create_build_hook),
            )
            .route(
                "/sites/{site}/build-hooks/{id}/revoke",
                post(dashboard::site_settings::revoke_build_hook),
            )
            .route(
                "/sites/{site}/schedules",
                post(dashboard::site_settings::add_schedule),
            )
            .route(
                "/sites/{site}/schedules/{id}/remove",
                post(dashboard::site_settings::remove_schedule),
            )
            .route(
                "/sites/{site}/notifications",
                post(dashboard::site_settings::add_notification),
            )
            .route(
                "/sites/{site}/notifications/{id}/remove",
                post(dashboard::site_settings::remove_notification),
            )
            .route(
                "/sites/{site}/env/{name}/delete",
                post(dashboard::site_settings::delete_env),
            )
            .route("/sites/{site}/builds", post(dashboard::sites::trigger))
            .route(
                "/sites/{site}/clear-cache-and-rebuild",
                post(dashboard::sites::clear_cache_and_rebuild),
            )
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
            .route("/account", get(dashboard::account::show))
            .route(
                "/account/sessions/{session}/revoke",
                post(dashboard::account::revoke_session),
            )
            .route("/teams", get(dashboard::teams::list))
            .route("/teams/{team}", get(dashboard::teams::show))
            .route("/teams/{team}/audit", get(dashboard::teams::audit))
            .route(
                "/teams/{team}/members/{login}/role",
                post(dashboard::teams::set_role),
            )
            .route(
                "/teams/{team}/members/{login}/remove",
                post(dashboard::teams::remove_member),
            )
            .route(
                "/teams/{team}/invitations",
                post(dashboard::teams::invite_someone),
            )
            .route(
                "/teams/{team}/invitations/{id}/revoke",
                post(dashboard::teams::revoke_invitation),
            )
            .route(
                "/invitations/{token}",
                get(dashboard::invitations::show).post(dashboard::invitations::accept),
            )
            .route(
                "/invitations/{token}/account",
                post(dashboard::invitations::create_account),
            )
            .route("/queue", get(dashboard::queue::show))
            .route("/settings", get(dashboard::settings::show))
            .route("/settings/tokens", post(dashboard::settings::create_token))
            .route(
                "/settings/tokens/{id}/revoke",
                post(dashboard::settings::revoke_token),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                state.audit.clone(),
                dashboard::audit_changes,
            )),
    );

    Router::new()
        .merge(api_routes)
        .merge(dashboard)
        .merge(webhooks)
        .merge(build_hooks)
        .merge(runners)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(serve_with_token))
        .fallback(|| async { not_found("no such route; the API lives under /api/v1") })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The service the listener runs: site hostnames go to the edge first,
/// whatever their path, and skip the API's routing and middleware.
pub fn service(state: AppState) -> edge::SiteHostsFirst {
    edge::SiteHostsFirst::new(state.edge.clone(), router(state))
}
