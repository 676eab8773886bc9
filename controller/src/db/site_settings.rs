//! A site's build settings: limits, timeout, cache generation, network,
//! the paths of a site in a monorepo and environment variables. Absent rows mean "the runner's defaults".

use super::{Database, now_millis};
use serde::Serialize;

/// Limits and timeout a site asks for; `None` takes the runner's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SiteLimits {
    pub timeout_seconds: Option<i64>,
    pub memory_mib: Option<i64>,
    /// Thousandths of a CPU, so no floating point is stored.
    pub cpu_millis: Option<i64>,
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteBuildSettings {
    pub limits: SiteLimits,
    /// Moved on by "clear cache": builds of a new generation start with an
    /// empty cache.
    pub cache_generation: i64,
    pub network: SiteNetwork,
    pub paths: SitePaths,
}

/// Where a site lives in its repository, and which changes build it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SitePaths {
    /// The folder the site lives in, relative to the repository root; `""`
    /// for the root.
    pub base: String,
    /// Globs relative to the repository root; empty: `base/**`, or every
    /// change when there is no base.
    pub watch_paths: Vec<String>,
}

/// What a site's builds may reach over the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteNetwork {
    /// `public` (the public internet only) or `off`.
    pub mode: jamstack_proto::BuildNetwork,
    /// Private addresses, CIDR blocks or host names builds may reach all
    /// the same.
    pub private_hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteEnvVar {
    pub name: String,
    pub value: String,
    pub secret: bool,
    pub updated_at: i64,
}

/// A row of `site_build_settings`.
#[derive(sqlx::FromRow)]
struct BuildSettingsRow {
    #[sqlx(flatten)]
    limits: SiteLimits,
    cache_generation: i64,
    network: String,
    /// One host per line.
    private_hosts: String,
    base: String,
    /// One glob per line.
    watch_paths: String,
}

/// The non-empty lines of a column that stores one value per line.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A row of `site_env_vars`.
#[derive(sqlx::FromRow)]
struct EnvVarRow {
    name: String,
    value: String,
    secret: i64,
    updated_at: i64,
}

impl Database {
    pub async fn site_build_settings(&self, site_id: i64) -> anyhow::Result<SiteBuildSettings> {
        let row: Option<BuildSettingsRow> = sqlx::query_as(
            "SELECT timeout_seconds, memory_mib, cpu_millis, pids, cache_generation, network, private_hosts, \
             base, watch_paths FROM site_build_settings WHERE site_id = $1",
        )
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map_or_else(SiteBuildSettings::default, |row| SiteBuildSettings {
                limits: row.limits,
                cache_generation: row.cache_generation,
                network: SiteNetwork {
                    // An unknown word (written by a newer controller) keeps
                    // the safe default rather than opening anything.
                    mode: jamstack_proto::BuildNetwork::parse(&row.network).unwrap_or_default(),
                    private_hosts: lines(&row.private_hosts),
                },
                paths: SitePaths {
                    base: row.base,
                    watch_paths: lines(&row.watch_paths),
                },
            }),
        )
    }

    /// Replaces the site's limits and timeout (the cache generation stays).
    pub async fn set_site_limits(&self, site_id: i64, limits: &SiteLimits) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO site_build_settings \
             (site_id, timeout_seconds, memory_mib, cpu_millis, pids, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (site_id) DO UPDATE SET \
             timeout_seconds = $2, memory_mib = $3, cpu_millis = $4, pids = $5, updated_at = $6",
        )
        .bind(site_id)
        .bind(limits.timeout_seconds)
        .bind(limits.memory_mib)
        .bind(limits.cpu_millis)
        .bind(limits.pids)
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Replaces what the site's builds may reach (limits and cache stay).
    pub async fn set_site_network(&self, site_id: i64, network: &SiteNetwork) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO site_build_settings (site_id, network, private_hosts, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (site_id) DO UPDATE SET \
             network = $2, private_hosts = $3, updated_at = $4",
        )
        .bind(site_id)
        .bind(network.mode.as_str())
        .bind(network.private_hosts.join("\n"))
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Replaces where the site lives in its repository and which changes
    /// build it (limits, network and cache stay).
    pub async fn set_site_paths(&self, site_id: i64, paths: &SitePaths) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO site_build_settings (site_id, base, watch_paths, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (site_id) DO UPDATE SET \
             base = $2, watch_paths = $3, updated_at = $4",
        )
        .bind(site_id)
        .bind(&paths.base)
        .bind(paths.watch_paths.join("\n"))
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Moves the site's cache on to a new, empty generation; returns it.
    pub async fn bump_cache_generation(&self, site_id: i64) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO site_build_settings (site_id, cache_generation, updated_at) \
             VALUES ($1, 1, $2) ON CONFLICT (site_id) DO UPDATE SET \
             cache_generation = site_build_settings.cache_generation + 1, updated_at = $2 \
             RETURNING cache_generation",
        )
        .bind(site_id)
        .bind(now_millis())
        .fetch_one(self.writer())
        .await?)
    }

    /// The site's environment variables in name order, secret values included.
    pub async fn site_env_vars(&self, site_id: i64) -> anyhow::Result<Vec<SiteEnvVar>> {
        let rows: Vec<EnvVarRow> = sqlx::query_as(
            "SELECT name, value, secret, updated_at FROM site_env_vars WHERE site_id = $1 ORDER BY name",
        )
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| SiteEnvVar {
                name: row.name,
                value: row.value,
                secret: row.secret != 0,
                updated_at: row.updated_at,
            })
            .collect())
    }

    /// Sets (adds or replaces) one environment variable of a site.
    pub async fn set_site_env_var(
        &self,
        site_id: i64,
        name: &str,
        value: &str,
        secret: bool,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO site_env_vars (site_id, name, value, secret, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site_id, name) DO UPDATE SET \
             value = $3, secret = $4, updated_at = $5",
        )
        .bind(site_id)
        .bind(name)
        .bind(value)
        .bind(i64::from(secret))
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Every secret variable of every site: (site id, name, stored value).
    pub async fn all_secret_env_vars(&self) -> anyhow::Result<Vec<(i64, String, String)>> {
        Ok(
            sqlx::query_as("SELECT site_id, name, value FROM site_env_vars WHERE secret = 1")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Replaces a variable's stored value if it is still `old` (another
    /// controller may have sealed it first); true when it was replaced.
    pub async fn replace_env_value(
        &self,
        site_id: i64,
        name: &str,
        old: &str,
        new: &str,
    ) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "UPDATE site_env_vars SET value = $1 WHERE site_id = $2 AND name = $3 AND value = $4",
        )
        .bind(new)
        .bind(site_id)
        .bind(name)
        .bind(old)
        .execute(self.writer())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Removes one environment variable; false when the site had none of
    /// that name.
    pub async fn delete_site_env_var(&self, site_id: i64, name: &str) -> anyhow::Result<bool> {
        let result = sqlx::query("DELETE FROM site_env_vars WHERE site_id = $1 AND name = $2")
            .bind(site_id)
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(result.rows_affected() == 1)
    }
}
