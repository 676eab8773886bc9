//! People who sign in through GitHub or an OpenID Connect provider: the
//! identities linked to users, and the rules that make them members of
//! teams automatically. Deciding who may sign in is `auth::external`'s.

use super::teams::Role;
use super::{Database, now_millis};

/// What a provider said about the person signing in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// `github`, or `oidc:<issuer URL>`.
    pub provider: String,
    /// The provider's stable id: GitHub's numeric user id, OIDC's `sub`.
    pub subject: String,
    /// GitHub's login, or OIDC's `preferred_username`.
    pub login: Option<String>,
    /// An e-mail the provider says is verified, lowercased.
    pub email: Option<String>,
}

/// An identity linked to a user, as listed to that user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LinkedIdentity {
    pub provider: String,
    pub login: Option<String>,
    pub email: Option<String>,
    /// Milliseconds since the epoch.
    pub last_seen_at: i64,
}

/// A team's rule for automatic membership.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoMembership {
    /// `github-org:<org>`, `github-team:<org>/<team-slug>` or `oidc-group:<name>`.
    pub source: String,
    pub role: Role,
}

impl Database {
    /// The user an identity is linked to.
    pub async fn user_of_identity(&self, provider: &str, subject: &str) -> anyhow::Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2")
                .bind(provider)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Links `identity` to `user`, or refreshes what the provider said
    /// (login, e-mail, when) if it is linked already.
    pub async fn link_identity(&self, user: i64, identity: &ExternalIdentity) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO user_identities \
             (provider, subject, user_id, login, email, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (provider, subject) DO UPDATE SET login = $4, email = $5, last_seen_at = $6",
        )
        .bind(&identity.provider)
        .bind(&identity.subject)
        .bind(user)
        .bind(&identity.login)
        .bind(&identity.email)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The identities linked to `user`, by provider.
    pub async fn identities_of_user(&self, user: i64) -> anyhow::Result<Vec<LinkedIdentity>> {
        let rows: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT provider, login, email, last_seen_at FROM user_identities \
             WHERE user_id = $1 ORDER BY provider",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(provider, login, email, last_seen_at)| LinkedIdentity {
                provider,
                login,
                email,
                last_seen_at,
            })
            .collect())
    }

    /// Adds or changes a team's automatic-membership rule.
    pub async fn set_auto_membership(&self, team: i64, source: &str, role: Role) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO team_auto_memberships (team_id, source, role, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, source) DO UPDATE SET role = $3",
        )
        .bind(team)
        .bind(source)
        .bind(role.as_str())
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Removes a rule; false when the team had none for `source`. The
    /// memberships it made stay until their holders next sign in.
    pub async fn delete_auto_membership(&self, team: i64, source: &str) -> anyhow::Result<bool> {
        let result = sqlx::query("DELETE FROM team_auto_memberships WHERE team_id = $1 AND source = $2")
            .bind(team)
            .bind(source)
            .execute(self.writer())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// A team's rules, by source.
    pub async fn auto_memberships(&self, team: i64) -> anyhow::Result<Vec<AutoMembership>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT source, role FROM team_auto_memberships WHERE team_id = $1 ORDER BY source",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(source, role)| {
                Some(AutoMembership {
                    source,
                    role: Role::parse(&role)?,
                })
            })
            .collect())
    }

    /// Brings `user`'s automatic memberships in line with the sources the
    /// provider just showed (`sources`, in the rules' spelling), in one
    /// transaction:
    /// - a team with a rule for one of them gains the user, with the
    ///   strongest role its matching rules give, unless the user is a
    ///   member already (a membership an owner made is never changed);
    /// - a membership an earlier sign-in made follows the strongest rule
    ///   that matches now (its role and source change with it), so leaving
    ///   a GitHub team while staying in its organization keeps what the
    ///   organization's rule gives;
    /// - a membership an earlier sign-in made from a source now absent ends,
    ///   with the user's tokens on that team, unless the user is that
    ///   team's last owner.
    ///
    /// `provider_prefixes` are the source kinds this provider can show
    /// (`github-` or `oidc-group:`): memberships made from other kinds are
    /// left alone, so signing in with GitHub does not end one an OIDC group
    /// made. Returns the teams joined and left.
    pub async fn sync_auto_memberships(
        &self,
        user: i64,
        provider_prefixes: &[&str],
        sources: &[String],
    ) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        let mut tx = self.write_tx().await?;
        let rules: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT team_id, source, role FROM team_auto_memberships")
                .fetch_all(&mut *tx)
                .await?;
        let mut wanted: std::collections::BTreeMap<i64, (Role, String)> = Default::default();
        for (team, source, role) in rules {
            let Some(role) = Role::parse(&role) else { continue };
            if !sources.contains(&source) {
                continue;
            }
            // Roles order strongest first, so the smaller one wins.
            match wanted.get(&team) {
                Some((held, _)) if *held <= role => {}
                _ => {
                    wanted.insert(team, (role, source));
                }
            }
        }
        let existing: Vec<(i64, Option<String>, String)> =
            sqlx::query_as("SELECT team_id, via, role FROM memberships WHERE user_id = $1")
                .bind(user)
                .fetch_all(&mut *tx)
                .await?;
        let now = now_millis();
        let mut joined = Vec::new();
        for (team, (role, source)) in &wanted {
            if existing.iter().any(|(member_of, _, _)| member_of == team) {
                continue;
            }
            sqlx::query(
                "INSERT INTO memberships (team_id, user_id, role, created_at, via) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(team)
            .bind(user)
            .bind(role.as_str())
            .bind(now)
            .bind(source)
            .execute(&mut *tx)
            .await?;
            joined.push(*team);
        }
        let mut left = Vec::new();
        for (team, via, held) in existing {
            let Some(via) = via else { continue };
            if !provider_prefixes.iter().any(|prefix| via.starts_with(prefix)) {
                continue;
            }
            let owners: Vec<i64> =
                sqlx::query_scalar("SELECT user_id FROM memberships WHERE team_id = $1 AND role = 'owner'")
                    .bind(team)
                    .fetch_all(&mut *tx)
                    .await?;
            let last_owner = owners == [user];
            if let Some((role, source)) = wanted.get(&team) {
                let unchanged = held == role.as_str() && via == *source;
                // The last owner stays an owner whatever the rules say.
                let demotes_last_owner = last_owner && *role != Role::Owner;
                if !(unchanged || demotes_last_owner) {
                    sqlx::query(
                        "UPDATE memberships SET role = $1, via = $2 WHERE team_id = $3 AND user_id = $4",
                    )
                    .bind(role.as_str())
                    .bind(source)
                    .bind(team)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                }
                continue;
            }
            if last_owner {
                continue;
            }
            sqlx::query("DELETE FROM memberships WHERE team_id = $1 AND user_id = $2")
                .bind(team)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 \
                 WHERE team_id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(team)
            .bind(user)
            .execute(&mut *tx)
            .await?;
            left.push(team);
        }
        tx.commit().await?;
        Ok((joined, left))
    }
}
