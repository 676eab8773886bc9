//! The router's state: the services a controller is made of, each built
//! once in `startup.rs`. Handlers take only the ones they use
//! (`State<Database>`, `State<Edge>`, ...), which axum projects from this
//! struct (`FromRef`); domain code takes the services, never this struct.

use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::build_hooks::BuildHookLimiter;
use crate::builds::Queue;
use crate::config::Config;
use crate::db::Database;
use crate::deploys::Deploys;
use crate::edge::Edge;
use crate::edge::protection::SiteAccess;
use crate::github::GitHubService;
use crate::metrics::Metrics;
use crate::notifications::Notifications;
use crate::push_batches::PushBatches;
use crate::schedules::Schedules;
use crate::secrets::SecretBox;
use crate::tls::Certificates;
use crate::triggers::Triggers;
use crate::urls::Urls;
use axum::extract::FromRef;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;

/// The `/api/v1` routes with their OpenAPI documentation (`api::routes`),
/// before the router is given its state.
pub type ApiRouter = OpenApiRouter<AppState>;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: Database,
    pub config: Arc<Config>,
    pub urls: Urls,
    /// Tokens, sessions, runners found by their token, sign-in throttle.
    pub auth: Auth,
    /// Builds and jobs: queueing, leasing, cancelling, and who to wake.
    pub queue: Queue,
    /// Records concurrent push deliveries together (group commit).
    pub push_batches: PushBatches,
    /// The deploy store: intake, compressed variants, retention, events.
    pub deploys: Deploys,
    /// The edge's memory, and what it serves from.
    pub edge: Edge,
    /// GitHub's API and the site credentials for it.
    pub github: GitHubService,
    pub notifications: Notifications,
    /// The audit log, and the hooks its entries are shipped to.
    pub audit: AuditLog,
    /// Counters and histograms served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Seals and opens stored secrets (access tokens, webhook secrets).
    pub secrets: Arc<SecretBox>,
    /// Signs and checks access to protected site hostnames (share links).
    pub site_access: Arc<SiteAccess>,
    /// What acting on a push or pull request needs.
    pub triggers: Triggers,
    /// How many builds each build hook may still start.
    pub build_hook_limiter: Arc<BuildHookLimiter>,
    /// Scheduled builds, and the worker to wake when they change.
    pub schedules: Schedules,
    /// Custom domains: adding, removing, proving control.
    pub domains: crate::domains::Domains,
    pub installation: Installation,
    /// The certificates the HTTPS listener serves, loaded from the database.
    pub certificates: Certificates,
    /// The OpenID Connect provider people may sign in through, if any.
    pub oidc: crate::auth::oidc::OidcSignIn,
}

/// What is this controller's own, apart from the services: who it is among
/// controllers, and the secret GitHub signs its deliveries with.
#[derive(Clone)]
pub struct Installation {
    /// Made on first start and kept: it keeps the build caches of sites of
    /// different controllers apart on a Docker engine they share.
    pub id: Arc<str>,
    /// The configured secret, or one made on first start and kept; it signs
    /// the deliveries to `/webhooks/github`.
    pub webhook_secret: Arc<str>,
}

impl Installation {
    /// The key of a site's build cache, unique across controllers.
    pub fn cache_key(&self, site_id: i64) -> String {
        format!("{}-{site_id}", self.id)
    }
}
