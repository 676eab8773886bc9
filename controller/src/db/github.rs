//! GitHub's side of things: App installations and the repositories they
//! reach, and what has been reported back to GitHub for each build.

use super::{Database, now_millis};
use serde::Serialize;

/// A GitHub App installation and the repositories it reaches.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Installation {
    pub id: i64,
    pub account: String,
    pub suspended: bool,
    pub repositories: Vec<String>,
}

/// What has been reported to GitHub for one build.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct BuildReport {
    pub build_id: i64,
    /// `<state>:<description>` of the last commit status sent.
    pub status_sent: Option<String>,
    pub deployment_id: Option<i64>,
    pub environment: Option<String>,
    pub deployment_state: Option<String>,
    /// The build state last written into the pull-request comment.
    pub comment_sent: Option<String>,
    /// The build state whose report is complete.
    pub build_state: Option<String>,
}

impl Database {
    /// Records an installation (or renames its account).
    pub async fn upsert_installation(&self, id: i64, account: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO github_installations (id, account, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET account = excluded.account, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(account)
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn set_installation_suspended(&self, id: i64, suspended: bool) -> anyhow::Result<()> {
        sqlx::query("UPDATE github_installations SET suspended = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(suspended))
            .bind(now_millis())
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Forgets an uninstalled App installation and its repositories.
    pub async fn delete_installation(&self, id: i64) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM github_installation_repos WHERE installation_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM github_installations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds and removes repositories an installation reaches; with
    /// `replace`, `added` becomes the whole list.
    pub async fn update_installation_repos(
        &self,
        id: i64,
        added: &[String],
        removed: &[String],
        replace: bool,
    ) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        if replace {
            sqlx::query("DELETE FROM github_installation_repos WHERE installation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for name in removed {
            sqlx::query(
                "DELETE FROM github_installation_repos WHERE installation_id = $1 \
                 AND LOWER(full_name) = LOWER($2)",
            )
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        for name in added {
            sqlx::query(
                "INSERT INTO github_installation_repos (installation_id, full_name) VALUES ($1, $2) \
                 ON CONFLICT (installation_id, full_name) DO NOTHING",
            )
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Notes that a delivery from `installation` named `repository`, so the
    /// repository is known to be reachable even if the installation's own
    /// events were missed. Writes only when it is new.
    pub async fn note_installation_repo(&self, installation: i64, repository: &str) -> anyhow::Result<()> {
        let known = sqlx::query(
            "SELECT 1 FROM github_installation_repos WHERE installation_id = $1 AND full_name = $2",
        )
        .bind(installation)
        .bind(repository)
        .fetch_optional(&self.pool)
        .await?
        .is_some();
        if known {
            return Ok(());
        }
        let owner = repository.split('/').next().unwrap_or(repository);
        sqlx::query(
            "INSERT INTO github_installations (id, account, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(installation)
        .bind(owner)
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        self.update_installation_repos(installation, &[repository.to_owned()], &[], false)
            .await
    }

    pub async fn installations(&self) -> anyhow::Result<Vec<Installation>> {
        let rows: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT id, account, suspended FROM github_installations ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        let mut installations: Vec<Installation> = rows
            .into_iter()
            .map(|(id, account, suspended)| Installation {
                id,
                account,
                suspended: suspended != 0,
                repositories: Vec::new(),
            })
            .collect();
        let repos: Vec<(i64, String)> = sqlx::query_as(
            "SELECT installation_id, full_name FROM github_installation_repos ORDER BY full_name",
        )
        .fetch_all(&self.pool)
        .await?;
        for (id, full_name) in repos {
            if let Some(installation) = installations.iter_mut().find(|i| i.id == id) {
                installation.repositories.push(full_name);
            }
        }
        Ok(installations)
    }

    /// The (not suspended) installation that reaches `owner/name`.
    pub async fn installation_for_repo(&self, full_name: &str) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT r.installation_id FROM github_installation_repos r \
             JOIN github_installations i ON i.id = r.installation_id \
             WHERE LOWER(r.full_name) = LOWER($1) AND i.suspended = 0 ORDER BY i.updated_at DESC LIMIT 1",
        )
        .bind(full_name)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn build_report(&self, build_id: i64) -> anyhow::Result<BuildReport> {
        let report = sqlx::query_as(
            "SELECT build_id, status_sent, deployment_id, environment, deployment_state, comment_sent, \
             build_state FROM github_build_reports WHERE build_id = $1",
        )
        .bind(build_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(report.unwrap_or(BuildReport {
            build_id,
            ..BuildReport::default()
        }))
    }

    pub async fn save_build_report(&self, report: &BuildReport) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO github_build_reports (build_id, status_sent, deployment_id, environment, \
             deployment_state, comment_sent, build_state, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (build_id) DO UPDATE SET status_sent = excluded.status_sent, \
             deployment_id = excluded.deployment_id, environment = excluded.environment, \
             deployment_state = excluded.deployment_state, comment_sent = excluded.comment_sent, \
             build_state = excluded.build_state, updated_at = excluded.updated_at",
        )
        .bind(report.build_id)
        .bind(&report.status_sent)
        .bind(report.deployment_id)
        .bind(&report.environment)
        .bind(&report.deployment_state)
        .bind(&report.comment_sent)
        .bind(&report.build_state)
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Builds of repositories on GitHub created since `since` whose report
    /// is behind their state: what a restarted controller still owes GitHub.
    /// Only sites with a way to GitHub count: an access token, or, when
    /// `app_configured`, an App installation named at connect time or one
    /// that reaches the repository (as `github::credentials_for` decides);
    /// builds of the others are never reported, so they would always look
    /// behind. (build, site) pairs.
    pub async fn builds_behind_on_reports(
        &self,
        since: i64,
        app_configured: bool,
    ) -> anyhow::Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT b.id, b.site_id FROM builds b JOIN sites s ON s.id = b.site_id \
             LEFT JOIN github_build_reports r ON r.build_id = b.id \
             WHERE s.github_repo IS NOT NULL AND b.created_at >= $1 \
             AND (s.github_token_sealed IS NOT NULL OR ($2 = 1 AND (s.github_installation_id IS NOT NULL \
                  OR EXISTS (SELECT 1 FROM github_installation_repos ir \
                             JOIN github_installations i ON i.id = ir.installation_id \
                             WHERE LOWER(ir.full_name) = LOWER(s.github_repo) AND i.suspended = 0)))) \
             AND (r.build_state IS NULL OR r.build_state <> b.state) ORDER BY b.id",
        )
        .bind(since)
        .bind(i64::from(app_configured))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The deployments of a site's builds in `environment` that GitHub may
    /// still show as active.
    pub async fn deployments_in_environment(
        &self,
        site_id: i64,
        environment: &str,
    ) -> anyhow::Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT r.build_id, r.deployment_id FROM github_build_reports r JOIN builds b ON b.id = r.build_id \
             WHERE b.site_id = $1 AND r.environment = $2 AND r.deployment_id IS NOT NULL \
             AND (r.deployment_state IS NULL OR r.deployment_state <> 'inactive') ORDER BY r.build_id",
        )
        .bind(site_id)
        .bind(environment)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn set_deployment_state(&self, build_id: i64, state: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE github_build_reports SET deployment_state = $1, updated_at = $2 WHERE build_id = $3",
        )
        .bind(state)
        .bind(now_millis())
        .bind(build_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The pull-request comment the controller keeps for a site.
    pub async fn pr_comment(&self, site_id: i64, pr_number: i64) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT comment_id FROM github_pr_comments WHERE site_id = $1 AND pr_number = $2",
        )
        .bind(site_id)
        .bind(pr_number)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn save_pr_comment(&self, site_id: i64, pr_number: i64, comment_id: i64) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO github_pr_comments (site_id, pr_number, comment_id) VALUES ($1, $2, $3) \
             ON CONFLICT (site_id, pr_number) DO UPDATE SET comment_id = excluded.comment_id",
        )
        .bind(site_id)
        .bind(pr_number)
        .bind(comment_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
