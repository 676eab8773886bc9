//! Users, teams and memberships: who belongs to which team, in which role.
//! What a role may do is decided in `auth::permissions`, not here.

use super::{Database, now_millis};

/// A member's role on a team, strongest first. Stored by name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Members and the team's limits, and everything an admin may do.
    Owner,
    /// Site settings, domains, variables, hooks, and everything a developer may do.
    Admin,
    /// Trigger, cancel and retry builds, deploy, publish, roll back, lock.
    Developer,
    /// Read only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub login: String,
    /// The argon2id PHC string of a local password, if the user has one.
    pub password_hash: Option<String>,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    login: String,
    password_hash: Option<String>,
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            login: row.login,
            password_hash: row.password_hash,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct TeamRow {
    id: i64,
    name: String,
    created_at: i64,
}

/// A user's membership of a team, as a team's member list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub team_id: i64,
    pub user_id: i64,
    pub login: String,
    pub role: Role,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    team_id: i64,
    user_id: i64,
    login: String,
    role: String,
}

fn member(row: MemberRow) -> anyhow::Result<Member> {
    Ok(Member {
        team_id: row.team_id,
        user_id: row.user_id,
        role: Role::parse(&row.role).ok_or_else(|| {
            anyhow::anyhow!(
                "membership of user {} holds unknown role `{}`",
                row.user_id,
                row.role
            )
        })?,
        login: row.login,
    })
}

/// A user's live dashboard session, as the user's session list shows it
/// (never the cookie).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserSession {
    pub id: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Whose sites a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamFilter {
    /// Every site (the installation's admin).
    All,
    /// The sites of every team this user is a member of.
    MemberOf(i64),
    /// The sites of one team.
    Team(i64),
}

impl TeamFilter {
    /// The `WHERE` condition on `sites` (aliased `alias`) this filter
    /// stands for, binding its id as `$n`.
    fn condition(self, alias: &str, n: usize) -> String {
        match self {
            TeamFilter::All => format!("${n} = ${n}"),
            TeamFilter::MemberOf(_) => {
                format!("{alias}.team_id IN (SELECT team_id FROM memberships WHERE user_id = ${n})")
            }
            TeamFilter::Team(_) => format!("{alias}.team_id = ${n}"),
        }
    }

    fn id(self) -> i64 {
        match self {
            TeamFilter::All => 0,
            TeamFilter::MemberOf(id) | TeamFilter::Team(id) => id,
        }
    }
}

/// Why a membership change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    Done,
    /// No such member.
    NotAMember,
    /// It would leave the team without an owner.
    LastOwner,
}

impl Database {
    /// Makes a user; `Ok(None)` when the login is taken.
    pub async fn insert_user(
        &self,
        login: &str,
        password_hash: Option<&str>,
    ) -> anyhow::Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(
            "INSERT INTO users (login, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (login) DO NOTHING RETURNING id, login, password_hash, created_at",
        )
        .bind(login)
        .bind(password_hash)
        .bind(now_millis())
        .fetch_optional(self.writer())
        .await?;
        Ok(row.map(User::from))
    }

    pub async fn user_by_login(&self, login: &str) -> anyhow::Result<Option<User>> {
        let row: Option<UserRow> =
            sqlx::query_as("SELECT id, login, password_hash, created_at FROM users WHERE login = $1")
                .bind(login)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(User::from))
    }

    pub async fn user_by_id(&self, id: i64) -> anyhow::Result<Option<User>> {
        let row: Option<UserRow> =
            sqlx::query_as("SELECT id, login, password_hash, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(User::from))
    }

    /// Makes a team owned by `owner` (team and membership in one
    /// transaction); `Ok(None)` when the name is taken.
    pub async fn insert_team(&self, name: &str, owner: i64) -> anyhow::Result<Option<Team>> {
        let mut tx = self.write_tx().await?;
        let now = now_millis();
        let row: Option<TeamRow> = sqlx::query_as(
            "INSERT INTO teams (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING \
             RETURNING id, name, created_at",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("INSERT INTO memberships (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(row.id)
            .bind(owner)
            .bind(Role::Owner.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Team {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        }))
    }

    /// The most builds the team's sites may run at once (0: no limit).
    pub async fn team_build_limit(&self, team_id: i64) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT max_concurrent_builds FROM teams WHERE id = $1")
                .bind(team_id)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Sets the most builds the team's sites may run at once (0: no limit).
    pub async fn set_team_build_limit(&self, team_id: i64, limit: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE teams SET max_concurrent_builds = $1 WHERE id = $2")
            .bind(limit)
            .bind(team_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn team_by_name(&self, name: &str) -> anyhow::Result<Option<Team>> {
        let row: Option<TeamRow> = sqlx::query_as("SELECT id, name, created_at FROM teams WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Team {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }))
    }

    /// The first team, which holds the sites made before teams existed (and
    /// sites made with the admin token).
    pub async fn first_team_id(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT MIN(id) FROM teams")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Makes `user` the owner of the team an existing installation's sites
    /// were moved to, if nobody has claimed it yet: called when a person
    /// signs in with the admin token. Returns the team's id when this call
    /// claimed it. The mark is cleared by the same conditional `UPDATE`
    /// that finds it, so of two sign-ins racing only one becomes owner.
    pub async fn claim_first_team(&self, user: i64) -> anyhow::Result<Option<i64>> {
        let mut tx = self.write_tx().await?;
        let claimed: Option<i64> = sqlx::query_scalar(
            "UPDATE teams SET awaiting_first_admin = 0 WHERE awaiting_first_admin = 1 RETURNING id",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(team) = claimed {
            sqlx::query(
                "INSERT INTO memberships (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (team_id, user_id) DO UPDATE SET role = $3",
            )
            .bind(team)
            .bind(user)
            .bind(Role::Owner.as_str())
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Adds `user` to `team` with `role`, or changes the role of a member,
    /// refusing to take the last owner's ownership away.
    pub async fn set_member_role(
        &self,
        team: i64,
        user: i64,
        role: Role,
    ) -> anyhow::Result<MembershipChange> {
        let mut tx = self.write_tx().await?;
        if role != Role::Owner && self.is_last_owner(&mut tx, team, user).await? {
            return Ok(MembershipChange::LastOwner);
        }
        sqlx::query(
            "INSERT INTO memberships (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (team_id, user_id) DO UPDATE SET role = $3",
        )
        .bind(team)
        .bind(user)
        .bind(role.as_str())
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(MembershipChange::Done)
    }

    /// Removes `user` from `team`; the user's tokens on that team are
    /// revoked in the same transaction (they die with the membership).
    pub async fn remove_member(&self, team: i64, user: i64) -> anyhow::Result<MembershipChange> {
        let mut tx = self.write_tx().await?;
        if self.is_last_owner(&mut tx, team, user).await? {
            return Ok(MembershipChange::LastOwner);
        }
        let removed = sqlx::query("DELETE FROM memberships WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Ok(MembershipChange::NotAMember);
        }
        sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE team_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(team)
        .bind(user)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(MembershipChange::Done)
    }

    async fn is_last_owner(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        team: i64,
        user: i64,
    ) -> anyhow::Result<bool> {
        let owners: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM memberships WHERE team_id = $1 AND role = 'owner'")
                .bind(team)
                .fetch_all(&mut **tx)
                .await?;
        Ok(owners == [user])
    }

    /// The members of a team, by login.
    pub async fn team_members(&self, team: i64) -> anyhow::Result<Vec<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT m.team_id, m.user_id, u.login, m.role FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY u.login",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(member).collect()
    }

    /// The role of `user` on `team`, if a member.
    pub async fn role_on_team(&self, user: i64, team: i64) -> anyhow::Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE team_id = $1 AND user_id = $2")
                .bind(team)
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
        Ok(role.as_deref().and_then(Role::parse))
    }

    /// The team that owns the site named `site`, if there is such a site.
    pub async fn team_of_site(&self, site: &str) -> anyhow::Result<Option<i64>> {
        let team: Option<Option<i64>> = sqlx::query_scalar("SELECT team_id FROM sites WHERE name = $1")
            .bind(site)
            .fetch_optional(&self.pool)
            .await?;
        Ok(team.flatten())
    }

    /// The team that owns the site a build belongs to, if there is such a build.
    pub async fn team_of_build(&self, build: i64) -> anyhow::Result<Option<i64>> {
        let team: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT s.team_id FROM builds b JOIN sites s ON s.id = b.site_id WHERE b.id = $1",
        )
        .bind(build)
        .fetch_optional(&self.pool)
        .await?;
        Ok(team.flatten())
    }

    /// Moves a site to another team.
    pub async fn move_site_to_team(&self, site: i64, team: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE sites SET team_id = $1 WHERE id = $2")
            .bind(team)
            .bind(site)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The team a live API token belongs to, and its user if it is a
    /// member's token (`None` for a team's own token).
    pub async fn token_owner(&self, token: i64) -> anyhow::Result<Option<(i64, Option<i64>)>> {
        let row: Option<(Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT team_id, user_id FROM tokens WHERE id = $1 AND revoked_at IS NULL")
                .bind(token)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(team, user)| team.map(|team| (team, user))))
    }

    /// Stores a new API token (its hash) of `team`, a member's when `user`
    /// is given; returns its id.
    pub async fn insert_team_token(
        &self,
        team: i64,
        user: Option<i64>,
        name: &str,
        scopes: &str,
        token_hash: &str,
    ) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO tokens (kind, name, token_hash, scopes, created_at, team_id, user_id) \
             VALUES ('api', $1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(name)
        .bind(token_hash)
        .bind(scopes)
        .bind(now_millis())
        .bind(team)
        .bind(user)
        .fetch_one(self.writer())
        .await?)
    }

    /// Records a dashboard session of `user` (by the hash of its cookie).
    pub async fn insert_user_session(
        &self,
        user: i64,
        token_hash: &str,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, created_at, expires_at, user_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(now_millis())
        .bind(expires_at)
        .bind(user)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The user a live session belongs to: `Some(None)` for a session
    /// opened with the admin token or the installation's password.
    pub async fn session_user(&self, token_hash: &str) -> anyhow::Result<Option<Option<i64>>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now_millis())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A user's live sessions, newest first.
    pub async fn user_sessions(&self, user: i64) -> anyhow::Result<Vec<UserSession>> {
        Ok(sqlx::query_as(
            "SELECT id, created_at, expires_at FROM sessions WHERE user_id = $1 AND expires_at > $2 \
             ORDER BY id DESC",
        )
        .bind(user)
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends one of a user's sessions; false when the user has no such session.
    pub async fn revoke_user_session(&self, user: i64, session: i64) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(session)
            .bind(user)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every session of a user; returns how many were live.
    pub async fn revoke_all_user_sessions(&self, user: i64) -> anyhow::Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at > $2")
            .bind(user)
            .bind(now_millis())
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// The id of the live session with this cookie hash.
    pub async fn session_id(&self, token_hash: &str) -> anyhow::Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now_millis())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets (or replaces) a user's local password hash, and ends the
    /// user's sessions in the same transaction: whoever knew the old one is
    /// signed out.
    pub async fn set_user_password(&self, user: i64, password_hash: &str) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The teams `user` is a member of (every team for `None`, the
    /// installation's admin), by name, with the user's role there.
    pub async fn team_roles(&self, user: Option<i64>) -> anyhow::Result<Vec<(String, Option<Role>)>> {
        let rows: Vec<(String, Option<String>)> = match user {
            Some(user) => {
                sqlx::query_as(
                    "SELECT t.name, m.role FROM teams t JOIN memberships m ON m.team_id = t.id \
                     WHERE m.user_id = $1 ORDER BY t.name",
                )
                .bind(user)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                let names: Vec<String> = sqlx::query_scalar("SELECT name FROM teams ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                names.into_iter().map(|name| (name, None)).collect()
            }
        };
        Ok(rows
            .into_iter()
            .map(|(name, role)| (name, role.as_deref().and_then(Role::parse)))
            .collect())
    }

    /// The teams a user is a member of.
    pub async fn teams_of_user(&self, user: i64) -> anyhow::Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT team_id FROM memberships WHERE user_id = $1 ORDER BY team_id")
                .bind(user)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// One page of the sites `filter` shows, by name.
    pub async fn sites_page_of(
        &self,
        filter: TeamFilter,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<Vec<super::Site>> {
        if filter == TeamFilter::All {
            return self.sites_page(limit, offset).await;
        }
        let rows: Vec<super::sites::SiteRow> = sqlx::query_as(&format!(
            "SELECT {} FROM sites s WHERE {} ORDER BY name LIMIT $2 OFFSET $3",
            super::sites::SITE_COLUMNS,
            filter.condition("s", 1)
        ))
        .bind(filter.id())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(super::Site::from).collect())
    }

    /// The names of the sites `filter` shows.
    pub async fn site_names_of(
        &self,
        filter: TeamFilter,
    ) -> anyhow::Result<std::collections::HashSet<String>> {
        let names: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT s.name FROM sites s WHERE {}",
            filter.condition("s", 1)
        ))
        .bind(filter.id())
        .fetch_all(&self.pool)
        .await?;
        Ok(names.into_iter().collect())
    }
}
