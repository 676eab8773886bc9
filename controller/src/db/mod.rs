//! The database: the only module that holds SQL.
//!
//! One [`Database`] handle wraps a pool of sqlx's `Any` driver, so the same
//! queries run on the embedded SQLite file (the default) and on PostgreSQL,
//! chosen by the URL. Each backend has its own migrations folder with the
//! same numbered steps. Queries are split by aggregate, one file
//! each: sites, builds and jobs (the queue), logs, deploys and blobs, tokens
//! and settings, sites' build settings (`site_settings`), webhook
//! deliveries, build hooks and schedules, custom domains, sites' token keys (`identity`), ACME
//! accounts and orders, GitHub (installations and what was reported back), and users, teams,
//! memberships and invitations.
//! Timestamps are Unix milliseconds.

mod acme;
mod aliases;
mod audit;
mod blobs;
mod build_hooks;
mod builds;
mod certificates;
mod deliveries;
mod deploy_index;
mod deploys;
mod domains;
mod file_lists;
mod github;
mod identities;
mod identity;
mod invitations;
mod logs;
mod notifications;
mod ops;
mod protection;
mod push_intake;
#[cfg(test)]
mod query_plans;
mod relay;
mod retention;
mod runners;
mod schedules;
mod sessions;
mod settings;
mod site_settings;
mod sites;
mod teams;

pub use acme::{AcmeIssued, AcmeOrder};
pub use audit::{AuditEntry, AuditFilter, BuildOwner, NewAuditEntry};
pub use blobs::{BlobToCompress, RecordedBlob, StoredBlob};
pub use build_hooks::{BuildHook, NewBuildHook};
pub use builds::{
    Attempt, Build, BuildState, FinishedAs, FinishedJob, JobClaim, JobFinish, LeasedJob, NewBuild,
    QueueEntry, QueuedJob,
};
pub use certificates::{CertificateSource, SiteTransport, StoredCertificate};
pub use deliveries::{Claim, Delivery, NewDelivery};
pub use deploy_index::{DeployContents, IndexedFile, IndexedVariant};
pub use deploys::{Deploy, DeployFile, FinalizeOutcome};
pub use domains::{AddRefused, Domain, NewDomain, VerifiedBy, VerifiedHostname};
pub use file_lists::{BaseRefused, NewFileList, ResolvedChanges, StoredFileList};
pub use github::{BuildReport, Installation};
pub use identities::{AutoMembership, ExternalIdentity, LinkedIdentity};
pub use identity::IdentityKey;
pub use invitations::{Acceptance, Invitation, InvitationState, NewInvitation};
pub use notifications::{
    AttemptResult, DueDelivery, NewNotificationHook, NotificationDelivery, NotificationHook,
    NotificationKind, host_only,
};
pub use ops::QueueFigures;
pub use protection::{Access, ContextAccess, SiteProtection};
pub use push_intake::{
    BatchedBuild, BranchHistory, BranchPushed, DeliveryRecord, Describe, PushDelivery, PushRecorded,
    RecordedBatch, SupersededBuild,
};
pub use relay::{DEPLOY_EVENTS_CHANNEL, Heard, Listener};
pub use retention::AliasedDeploy;
pub use runners::{RunnerLoad, RunnerRecord, labels_satisfy, normalize_labels, split_labels};
pub use schedules::{BuildSchedule, NewBuildSchedule};
pub use settings::{ApiToken, TokenGrant, TokenKind};
pub use site_settings::{SiteBuildSettings, SiteEnvVar, SiteLimits, SiteNetwork, SitePaths};
pub use sites::{DEFAULT_BRANCH_UNTIL_KNOWN, NewSite, SchedulingSettings, Site, SiteSettings};
pub use teams::{Member, MembershipChange, Role, Team, TeamFilter, User, UserSession};

use anyhow::Context as _;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// Connections to PostgreSQL per controller: enough for 50 runners and a
/// burst of webhooks to keep the server busy, few enough that several
/// controllers stay well under its default limit of 100.
const POSTGRES_CONNECTIONS: u32 = 16;

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database server is behind the pool. A few statements differ
/// (locking while claiming jobs, how a writing transaction begins); the
/// rest of the SQL is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    /// Where writes go. On SQLite a pool of one connection: SQLite takes one
    /// writer at a time anyway, and writers that queue here wait their turn
    /// in order instead of sleeping in SQLite's busy handler (which backs
    /// off up to 100 ms a try and starves throughput under contention).
    /// On PostgreSQL the same pool as reads.
    writer: AnyPool,
    backend: Backend,
    /// The URL, kept for connections outside the pool (LISTEN).
    url: Arc<str>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if needed) the SQLite database at `path` and brings its
    /// schema up to date.
    pub async fn open_sqlite(path: &Path) -> anyhow::Result<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connects by URL (`sqlite://PATH` or `postgres://…`) and runs the
    /// embedded migrations of that backend.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!(
                "unsupported database URL `{}`: use `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`",
                redact(url)
            );
        };
        let sqlite_options = || {
            AnyPoolOptions::new().after_connect(|conn, _meta| {
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
        };
        let options = match backend {
            Backend::Sqlite => sqlite_options().max_connections(8),
            Backend::Postgres => AnyPoolOptions::new().max_connections(POSTGRES_CONNECTIONS),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .with_context(|| format!("opening the database at {}", redact(url)))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .context("bringing the database schema up to date")?;
        let writer = match backend {
            Backend::Sqlite => sqlite_options()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await
                .with_context(|| format!("opening the database at {}", redact(url)))?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Database {
            pool,
            writer,
            backend,
            url: url.into(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers, for readiness checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A database URL fit for messages: the password, if any, is hidden.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Database {
    /// Begins a transaction that writes. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so a read-then-write transaction waits for
    /// other writers instead of failing when it upgrades its lock.
    async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }

    /// The pool a statement that writes runs on (see [`Database::writer`]).
    fn writer(&self) -> &AnyPool {
        &self.writer
    }
}

/// `($1, $2, …), ($k+1, …)`: `rows` groups of `width` numbered
/// placeholders, the first numbered `first`.
pub(crate) fn value_rows(rows: usize, width: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + row * width + column).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `$first, $first+1, …`: `count` numbered placeholders, for an `IN` list.
pub(crate) fn placeholders(count: usize, first: usize) -> String {
    value_rows(1, count, first)
        .trim_start_matches('(')
        .trim_end_matches(')')
        .to_owned()
}

/// The current time in Unix milliseconds, the unit of every stored timestamp.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{placeholders, value_rows};

    #[test]
    fn value_rows_number_placeholders_row_by_row() {
        assert_eq!(value_rows(2, 3, 2), "($2, $3, $4), ($5, $6, $7)");
        assert_eq!(value_rows(1, 1, 1), "($1)");
        assert_eq!(placeholders(3, 2), "$2, $3, $4");
    }
}
