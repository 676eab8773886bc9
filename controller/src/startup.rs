//! Building and running the controller: bind first (port 0 works), then
//! serve. Tests and the binary start it the same way.

use crate::auth::{hash_token, new_token, random_hex};
use crate::config::Config;
use crate::db::{Database, TokenKind};
use crate::deploys::LocalBlobStore;
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
        let installation_id = db.setting_or_insert("installation_id", &random_hex(4)).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}; is another controller running there?", config.listen))?;
        let addr = listener.local_addr()?;
        let state = AppState {
            db,
            blobs: Arc::new(LocalBlobStore::new(config.blob_dir())),
            config: Arc::new(config),
            jobs_available: Arc::new(Notify::new()),
            cancellations: Arc::new(Notify::new()),
            installation_id: installation_id.into(),
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

    /// Serves until the process ends, with the lease reaper beside it.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tokio::spawn(crate::builds::reap_expired_leases(self.state.clone()));
        let app = router(self.state);
        axum::serve(self.listener, app).await.context("serving HTTP")
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
