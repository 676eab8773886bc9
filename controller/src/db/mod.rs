//! The database: the only module that holds SQL.
//!
//! One [`Database`] handle wraps a pool of sqlx's `Any` driver, so the same
//! queries run on the embedded SQLite file (the default) and, later, on
//! PostgreSQL chosen by the URL. Queries are split by aggregate, one file
//! each: sites, builds and jobs (the queue), logs, deploys and blobs, tokens
//! and settings, sites' build settings (`site_settings`). Timestamps are
//! Unix milliseconds.

mod builds;
mod deploys;
mod logs;
mod settings;
mod site_settings;
mod sites;

pub use builds::{Build, BuildState, LeasedJob, NewBuild};
pub use deploys::{Deploy, DeployFile, FinalizeOutcome};
pub use settings::TokenKind;
pub use site_settings::{SiteBuildSettings, SiteEnvVar, SiteLimits};
pub use sites::{NewSite, Site};

use anyhow::Context as _;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if needed) the SQLite database at `path` and brings its
    /// schema up to date.
    pub async fn open_sqlite(path: &Path) -> anyhow::Result<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connects by URL and runs the embedded migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        install_default_drivers();
        if !url.starts_with("sqlite:") {
            anyhow::bail!(
                "unsupported database URL `{url}`: this build supports `sqlite://PATH`; \
                 PostgreSQL support is planned"
            );
        }
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets the edge read while a build writes; the busy
                    // timeout turns writer contention into waiting, not errors.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .with_context(|| format!("opening the database at {url}"))?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .context("bringing the database schema up to date")?;
        Ok(Database { pool })
    }
}

impl Database {
    /// Begins a transaction that writes. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so a read-then-write transaction waits for
    /// other writers instead of failing when it upgrades its lock.
    async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

/// The current time in Unix milliseconds, the unit of every stored timestamp.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
