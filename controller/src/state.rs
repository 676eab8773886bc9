//! What every handler shares.

use crate::config::Config;
use crate::db::Database;
use crate::deploys::BlobStore;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub blobs: Arc<dyn BlobStore>,
    pub config: Arc<Config>,
    /// Woken whenever a job becomes leasable, so long-polling runners pick
    /// it up at once instead of at their next poll.
    pub jobs_available: Arc<Notify>,
    /// Woken whenever a build is asked to stop, so heartbeats waiting on
    /// their job answer at once.
    pub cancellations: Arc<Notify>,
    /// Made on first start and kept: it keeps the build caches of sites of
    /// different controllers apart on a Docker engine they share.
    pub installation_id: Arc<str>,
    pub webhook_secret: Arc<str>,
    /// The base URL of the API, e.g. `http://127.0.0.1:8080`.
    pub base_url: Arc<str>,
}

impl AppState {
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
