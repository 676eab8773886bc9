//! What every handler shares.

use crate::config::Config;
use crate::dashboard::login::SignInThrottle;
use crate::db::Database;
use crate::deploys::BlobStore;
use crate::deploys::compress::VariantQueue;
use crate::deploys::events::{DeployEvent, DeployEvents};
use crate::edge::EdgeCache;
use crate::events::Events;
use crate::github::client::GitHub;
use crate::metrics::Metrics;
use crate::secrets::SecretBox;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    /// Records concurrent push deliveries together (group commit).
    pub push_batches: crate::push_batches::PushBatches,
    pub blobs: Arc<dyn BlobStore>,
    pub config: Arc<Config>,
    /// Woken whenever a job becomes leasable, so long-polling runners pick
    /// it up at once instead of at their next poll.
    pub jobs_available: Arc<Notify>,
    /// Woken whenever a batch of log lands, so live log watchers read it.
    pub log_activity: Arc<Notify>,
    /// Woken whenever a build is asked to stop, so heartbeats waiting on
    /// their job answer at once.
    pub cancellations: Arc<Notify>,
    /// Made on first start and kept: it keeps the build caches of sites of
    /// different controllers apart on a Docker engine they share.
    pub installation_id: Arc<str>,
    pub webhook_secret: Arc<str>,
    /// The base URL of the API, e.g. `http://127.0.0.1:8080`.
    pub base_url: Arc<str>,
    /// The controller's address as the world reaches it (links sent to
    /// GitHub, registered webhooks): `Config::public_url`, else `base_url`.
    pub public_url: Arc<str>,
    /// Build state changes and removed hostnames, for whoever listens.
    pub events: Events,
    pub github: Arc<GitHub>,
    /// Seals and opens stored secrets (access tokens, webhook secrets).
    pub secrets: Arc<SecretBox>,
    /// The edge's memory of pointers, deploy indexes and hot files.
    pub edge: Arc<EdgeCache>,
    /// Publishes, alias moves and removals, for whoever listens (the edge's
    /// memory; on PostgreSQL, other controllers).
    pub deploy_events: DeployEvents,
    /// Slows failed dashboard sign-ins down.
    pub sign_in: Arc<SignInThrottle>,
    /// Counters and histograms served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Woken when a notification delivery is queued, so it goes out at once.
    pub notifications_queued: Arc<Notify>,
    /// Ready deploys whose compressed variants are still to be made.
    pub variants: Arc<VariantQueue>,
    /// Runners recently found by their token.
    pub known_runners: Arc<crate::auth::KnownRunners>,
}

impl AppState {
    /// Tells everyone that what a hostname serves has changed: the edge of
    /// this process forgets it before this returns (so the next request
    /// sees the change), then the event goes out to listeners.
    pub async fn announce(&self, event: DeployEvent) {
        self.edge.apply(&event).await;
        self.deploy_events.send_here(event);
    }

    /// The key of a site's build cache, unique across controllers.
    pub fn cache_key(&self, site_id: i64) -> String {
        format!("{}-{site_id}", self.installation_id)
    }

    /// `http://<host>.<domain>:<port>/`: where a hostname label is served.
    pub fn site_url(&self, label: &str) -> String {
        let port = self
            .base_url
            .rsplit_once(':')
            .map(|(_, port)| port.trim_end_matches('/'))
            .unwrap_or("80");
        format!("http://{label}.{}:{port}/", self.config.domain)
    }
}
