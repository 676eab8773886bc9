//! Sites: a connected repository plus its settings.

use super::{Database, now_millis};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Site {
    pub id: i64,
    pub name: String,
    /// Where runners clone from; `None` for a site made for direct deploys
    /// (`jamstack deploy`) until a repository is connected.
    pub repo_url: Option<String>,
    pub github_repo: Option<String>,
    pub production_branch: String,
    /// Connected without naming a production branch: it is the GitHub
    /// repository's default branch, taken from its deliveries (and
    /// followed when renamed) until a person names one.
    pub production_branch_follows_default: bool,
    pub published_deploy_id: Option<String>,
    pub publish_locked: bool,
    pub created_at: i64,
    /// Labels a runner needs to build this site.
    pub required_labels: Vec<String>,
    /// Builds of this site running at once; 0 for no limit.
    pub max_concurrent_builds: i64,
    /// Whether a newer push to a branch stops that branch's running build
    /// (queued ones are always superseded).
    pub cancel_superseded: bool,
    /// Pushes to other branches build branch deploys.
    pub branch_deploys: bool,
    /// Pull requests build deploy previews.
    pub deploy_previews: bool,
    /// The GitHub App installation given at connect time.
    pub github_installation_id: Option<i64>,
    /// The access token, sealed with the controller's secret key.
    #[serde(skip)]
    pub github_token_sealed: Option<String>,
    /// The repository webhook registered with the access token.
    pub github_hook_id: Option<i64>,
    /// The generic webhook's secret, sealed with the controller's secret key.
    #[serde(skip)]
    pub generic_webhook_secret_sealed: Option<String>,
}

/// Scheduling settings of a site; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SchedulingSettings {
    pub production_branch: Option<String>,
    pub required_labels: Option<Vec<String>>,
    pub max_concurrent_builds: Option<i64>,
    pub cancel_superseded: Option<bool>,
}

/// The production branch of a site connected without naming one, until a
/// delivery from GitHub names the repository's default branch: GitHub's
/// default for new repositories.
pub const DEFAULT_BRANCH_UNTIL_KNOWN: &str = "main";

#[derive(Debug, Clone)]
pub struct NewSite {
    pub name: String,
    pub repo_url: Option<String>,
    pub github_repo: Option<String>,
    pub production_branch: String,
    /// See [`Site::production_branch_follows_default`].
    pub production_branch_follows_default: bool,
    pub settings: SiteSettings,
}

/// The settings of a site that can change after it is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSettings {
    pub branch_deploys: bool,
    pub deploy_previews: bool,
    pub github_installation_id: Option<i64>,
    /// Already sealed: the database never sees a token in clear.
    pub github_token_sealed: Option<String>,
}

impl Default for SiteSettings {
    fn default() -> Self {
        SiteSettings {
            branch_deploys: false,
            deploy_previews: true,
            github_installation_id: None,
            github_token_sealed: None,
        }
    }
}

impl Site {
    pub fn settings(&self) -> SiteSettings {
        SiteSettings {
            branch_deploys: self.branch_deploys,
            deploy_previews: self.deploy_previews,
            github_installation_id: self.github_installation_id,
            github_token_sealed: self.github_token_sealed.clone(),
        }
    }
}

pub(super) const SITE_COLUMNS: &str = "id, name, repo_url, github_repo, production_branch, \
                            production_branch_follows_default, \
                            published_deploy_id, publish_locked, created_at, required_labels, \
                            max_concurrent_builds, cancel_superseded, branch_deploys, \
                            deploy_previews, github_installation_id, github_token_sealed, \
                            github_hook_id, generic_webhook_secret_sealed";

/// A row of `sites`: flags are stored as 0 or 1, labels joined by commas.
#[derive(sqlx::FromRow)]
pub(super) struct SiteRow {
    id: i64,
    name: String,
    repo_url: Option<String>,
    github_repo: Option<String>,
    production_branch: String,
    production_branch_follows_default: i64,
    published_deploy_id: Option<String>,
    publish_locked: i64,
    created_at: i64,
    required_labels: String,
    max_concurrent_builds: i64,
    cancel_superseded: i64,
    branch_deploys: i64,
    deploy_previews: i64,
    github_installation_id: Option<i64>,
    github_token_sealed: Option<String>,
    github_hook_id: Option<i64>,
    generic_webhook_secret_sealed: Option<String>,
}

impl From<SiteRow> for Site {
    fn from(row: SiteRow) -> Self {
        Site {
            id: row.id,
            name: row.name,
            repo_url: row.repo_url,
            github_repo: row.github_repo,
            production_branch: row.production_branch,
            production_branch_follows_default: row.production_branch_follows_default != 0,
            published_deploy_id: row.published_deploy_id,
            publish_locked: row.publish_locked != 0,
            created_at: row.created_at,
            required_labels: super::runners::split_labels(&row.required_labels),
            max_concurrent_builds: row.max_concurrent_builds,
            cancel_superseded: row.cancel_superseded != 0,
            branch_deploys: row.branch_deploys != 0,
            deploy_previews: row.deploy_previews != 0,
            github_installation_id: row.github_installation_id,
            github_token_sealed: row.github_token_sealed,
            github_hook_id: row.github_hook_id,
            generic_webhook_secret_sealed: row.generic_webhook_secret_sealed,
        }
    }
}

impl Database {
    /// Inserts a site into the first team; `Ok(None)` when the name is taken.
    pub async fn insert_site(&self, site: &NewSite) -> anyhow::Result<Option<Site>> {
        self.insert_site_of_team(site, None).await
    }

    /// Inserts a site into `team` (the first team when `None`); `Ok(None)`
    /// when the name is taken.
    pub async fn insert_site_of_team(
        &self,
        site: &NewSite,
        team: Option<i64>,
    ) -> anyhow::Result<Option<Site>> {
        let row: Option<SiteRow> = sqlx::query_as(&format!(
            "INSERT INTO sites (name, repo_url, github_repo, production_branch, created_at, \
             branch_deploys, deploy_previews, github_installation_id, github_token_sealed, \
             production_branch_follows_default, team_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11, (SELECT MIN(id) FROM teams))) ON CONFLICT (name) DO NOTHING RETURNING {SITE_COLUMNS}"
        ))
        .bind(&site.name)
        .bind(&site.repo_url)
        .bind(&site.github_repo)
        .bind(&site.production_branch)
        .bind(now_millis())
        .bind(i64::from(site.settings.branch_deploys))
        .bind(i64::from(site.settings.deploy_previews))
        .bind(site.settings.github_installation_id)
        .bind(&site.settings.github_token_sealed)
        .bind(i64::from(site.production_branch_follows_default))
        .bind(team)
        .fetch_optional(self.writer())
        .await?;
        Ok(row.map(Site::from))
    }

    pub async fn site_by_name(&self, name: &str) -> anyhow::Result<Option<Site>> {
        let row: Option<SiteRow> =
            sqlx::query_as(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE name = $1"))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(Site::from))
    }

    pub async fn site_by_id(&self, id: i64) -> anyhow::Result<Option<Site>> {
        let row: Option<SiteRow> = sqlx::query_as(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Site::from))
    }

    /// Sites connected to a GitHub repository (`owner/name`, case-insensitive
    /// as GitHub treats it).
    pub async fn sites_for_github_repo(&self, full_name: &str) -> anyhow::Result<Vec<Site>> {
        let rows: Vec<SiteRow> = sqlx::query_as(&format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE LOWER(github_repo) = LOWER($1) ORDER BY id"
        ))
        .bind(full_name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Site::from).collect())
    }

    /// Makes `default_branch` the production branch of the sites connected
    /// to `full_name` whose production branch follows the repository's
    /// default; returns those that changed, with the branch they had. A
    /// `delivery` seen before (see [`Database::delivery_seen`]) may be older
    /// than a rename, so it changes nothing; that is looked up only when a
    /// site would change, which keeps the common delivery at one read.
    pub async fn follow_default_branch(
        &self,
        full_name: &str,
        default_branch: &str,
        delivery: &super::NewDelivery,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let followers: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, production_branch FROM sites WHERE LOWER(github_repo) = LOWER($1) \
             AND production_branch_follows_default = 1 AND production_branch <> $2 ORDER BY id",
        )
        .bind(full_name)
        .bind(default_branch)
        .fetch_all(&self.pool)
        .await?;
        if followers.is_empty() || self.delivery_seen(delivery).await? {
            return Ok(Vec::new());
        }
        sqlx::query(
            "UPDATE sites SET production_branch = $2 WHERE LOWER(github_repo) = LOWER($1) \
             AND production_branch_follows_default = 1 AND production_branch <> $2",
        )
        .bind(full_name)
        .bind(default_branch)
        .execute(self.writer())
        .await?;
        Ok(followers)
    }

    /// Sites connected to any of `full_names` (case-insensitive), by id.
    pub async fn sites_for_github_repos(&self, full_names: &[String]) -> anyhow::Result<Vec<Site>> {
        if full_names.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=full_names.len()).map(|i| format!("LOWER(${i})")).collect();
        let sql = format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE LOWER(github_repo) IN ({}) ORDER BY id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as::<_, SiteRow>(&sql);
        for name in full_names {
            query = query.bind(name);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Site::from).collect())
    }

    /// One page of the sites, by name.
    pub async fn sites_page(&self, limit: i64, offset: i64) -> anyhow::Result<Vec<Site>> {
        let rows: Vec<SiteRow> = sqlx::query_as(&format!(
            "SELECT {SITE_COLUMNS} FROM sites ORDER BY name LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Site::from).collect())
    }

    pub async fn list_sites(&self) -> anyhow::Result<Vec<Site>> {
        let rows: Vec<SiteRow> = sqlx::query_as(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Site::from).collect())
    }

    /// Makes `deploy_id` the site's published deploy: the one pointer write
    /// that publishing and rolling back both are. The deploy must be a ready
    /// deploy of this site; returns false otherwise.
    pub async fn publish_deploy(&self, site_id: i64, deploy_id: &str) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "UPDATE sites SET published_deploy_id = $1 WHERE id = $2 AND EXISTS \
             (SELECT 1 FROM deploys WHERE id = $1 AND site_id = $2 AND state = 'ready')",
        )
        .bind(deploy_id)
        .bind(site_id)
        .execute(self.writer())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Changes the settings given, in one statement. A production branch
    /// other than the current one stops it following the repository's
    /// default branch.
    pub async fn update_scheduling(&self, site_id: i64, settings: &SchedulingSettings) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE sites SET production_branch = COALESCE($1, production_branch), \
             production_branch_follows_default = CASE WHEN production_branch = COALESCE($1, production_branch) \
             THEN production_branch_follows_default ELSE 0 END, \
             required_labels = COALESCE($2, required_labels), \
             max_concurrent_builds = COALESCE($3, max_concurrent_builds), \
             cancel_superseded = COALESCE($4, cancel_superseded) WHERE id = $5",
        )
        .bind(&settings.production_branch)
        .bind(
            settings
                .required_labels
                .as_ref()
                .map(|l| super::runners::normalize_labels(l)),
        )
        .bind(settings.max_concurrent_builds)
        .bind(settings.cancel_superseded.map(i64::from))
        .bind(site_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Replaces a site's changeable settings and production branch; a
    /// production branch other than the current one stops it following the
    /// repository's default branch.
    pub async fn update_site_settings(
        &self,
        site_id: i64,
        production_branch: &str,
        settings: &SiteSettings,
    ) -> anyhow::Result<Option<Site>> {
        let row: Option<SiteRow> = sqlx::query_as(&format!(
            "UPDATE sites SET production_branch = $1, production_branch_follows_default = \
             CASE WHEN production_branch = $1 THEN production_branch_follows_default ELSE 0 END, \
             branch_deploys = $2, deploy_previews = $3, \
             github_installation_id = $4, github_token_sealed = $5 WHERE id = $6 RETURNING {SITE_COLUMNS}"
        ))
        .bind(production_branch)
        .bind(i64::from(settings.branch_deploys))
        .bind(i64::from(settings.deploy_previews))
        .bind(settings.github_installation_id)
        .bind(&settings.github_token_sealed)
        .bind(site_id)
        .fetch_optional(self.writer())
        .await?;
        Ok(row.map(Site::from))
    }

    /// Connects a repository to a site (made for direct deploys, or moved
    /// to another repository). A GitHub repository named here makes its
    /// deliveries build the site; with `follow_default` its production
    /// branch becomes the repository's default branch from then on.
    pub async fn connect_repository(
        &self,
        site_id: i64,
        repo_url: &str,
        github_repo: Option<&str>,
        follow_default: bool,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE sites SET repo_url = $1, github_repo = COALESCE($2, github_repo), \
             production_branch_follows_default = CASE WHEN $3 = 1 THEN 1 \
             ELSE production_branch_follows_default END WHERE id = $4",
        )
        .bind(repo_url)
        .bind(github_repo)
        .bind(i64::from(follow_default))
        .bind(site_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Sets the production branch of a site that follows its repository's
    /// default branch, as GitHub named it; a site whose branch a person
    /// named meanwhile keeps it.
    pub async fn set_followed_default_branch(&self, site_id: i64, branch: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE sites SET production_branch = $1 WHERE id = $2 AND production_branch_follows_default = 1",
        )
        .bind(branch)
        .bind(site_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records the repository webhook registered for a site.
    pub async fn set_github_hook_id(&self, site_id: i64, hook_id: Option<i64>) -> anyhow::Result<()> {
        sqlx::query("UPDATE sites SET github_hook_id = $1 WHERE id = $2")
            .bind(hook_id)
            .bind(site_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Stores the (sealed) secret of a site's generic webhook.
    pub async fn set_generic_webhook_secret(&self, site_id: i64, sealed: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE sites SET generic_webhook_secret_sealed = $1 WHERE id = $2")
            .bind(sealed)
            .bind(site_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn set_publish_locked(&self, site_id: i64, locked: bool) -> anyhow::Result<()> {
        sqlx::query("UPDATE sites SET publish_locked = $1 WHERE id = $2")
            .bind(i64::from(locked))
            .bind(site_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
