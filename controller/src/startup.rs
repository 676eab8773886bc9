//! Building and running the controller: bind first (port 0 works), then
//! serve. Tests and the binary start it the same way.

use crate::auth::{hash_token, new_token, random_hex};
use crate::config::{BlobStoreConfig, Config};
use crate::db::{Database, TokenKind};
use crate::deploys::events::DeployEvents;
use crate::deploys::s3::S3BlobStore;
use crate::deploys::{BlobStore, LocalBlobStore};
use crate::edge::EdgeCache;
use crate::router::router;
use crate::state::AppState;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Set when this start made the admin token (first start): the only
    /// time it can be shown.
    pub new_admin_token: Option<String>,
    /// Set when this start made the first runner token.
    pub new_runner_token: Option<String>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
        let db = Database::open_sqlite(&config.database_path()).await?;
        let new_admin_token = first_token(&db, TokenKind::Admin, "admin").await?;
        let new_runner_token = first_token(&db, TokenKind::Runner, "default").await?;
        let webhook_secret = match &config.webhook_secret {
            Some(secret) => secret.clone(),
            None => {
                db.setting_or_insert("github_webhook_secret", &random_hex(20))
                    .await?
            }
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}; is another controller running there?", config.listen))?;
        let addr = listener.local_addr()?;
        let blobs: Arc<dyn BlobStore> = match &config.blob_store {
            BlobStoreConfig::Local => Arc::new(LocalBlobStore::new(config.blob_dir())),
            BlobStoreConfig::S3(s3) => Arc::new(S3BlobStore::connect(s3).await?),
        };
        tracing::info!(store = %blobs.describe(), "blob store ready");
        let state = AppState {
            db,
            blobs,
            edge: Arc::new(EdgeCache::new(config.edge)),
            events: DeployEvents::default(),
            config: Arc::new(config),
            jobs_available: Arc::new(Notify::new()),
            webhook_secret: webhook_secret.into(),
            base_url: format!("http://{addr}").into(),
        };
        Ok(Application {
            listener,
            state,
            new_admin_token,
            new_runner_token,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    pub fn webhook_secret(&self) -> &str {
        &self.state.webhook_secret
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A fresh token for a runner started in this process; earlier tokens of
    /// the embedded runner are revoked.
    pub async fn embedded_runner_token(&self) -> anyhow::Result<String> {
        self.state
            .db
            .revoke_tokens_named(TokenKind::Runner, "embedded")
            .await?;
        let token = new_token(TokenKind::Runner);
        self.state
            .db
            .insert_token(TokenKind::Runner, "embedded", &hash_token(&token))
            .await?;
        Ok(token)
    }

    /// Serves until the process ends, with the lease reaper, the garbage
    /// collector and the edge's event listener beside it.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tokio::spawn(crate::builds::reap_expired_leases(self.state.clone()));
        tokio::spawn(crate::deploys::retention::collect_periodically(
            self.state.clone(),
        ));
        tokio::spawn(forget_on_events(self.state.clone()));
        let app = router(self.state);
        axum::serve(self.listener, app).await.context("serving HTTP")
    }
}

/// The edge forgets what every event makes stale, also events relayed from
/// other controllers (this process's own were applied when announced).
async fn forget_on_events(state: AppState) {
    let mut events = state.events.subscribe();
    loop {
        match events.recv().await {
            Ok((event, _origin)) => state.edge.forget(&event),
            // Missed some: forget everything rather than serve stale.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                state
                    .edge
                    .forget(&crate::deploys::events::DeployEvent::Everything);
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn first_token(db: &Database, kind: TokenKind, name: &str) -> anyhow::Result<Option<String>> {
    if db.count_tokens(kind).await? > 0 {
        return Ok(None);
    }
    let token = new_token(kind);
    db.insert_token(kind, name, &hash_token(&token)).await?;
    Ok(Some(token))
}

/// Makes a new token of `kind` (for the `token` command), revoking earlier
/// ones of the same name.
pub async fn mint_token(config: &Config, kind: TokenKind, name: &str) -> anyhow::Result<String> {
    let db = Database::open_sqlite(&config.database_path()).await?;
    db.revoke_tokens_named(kind, name).await?;
    let token = new_token(kind);
    db.insert_token(kind, name, &hash_token(&token)).await?;
    Ok(token)
}
