//! Invitations to a team, by link: made by an owner, used once. The link's
//! token is kept only as its hash. An invitation may be addressed to a
//! GitHub login or an e-mail; then only a user with a matching linked
//! identity accepts it, and it is claimed at that person's sign-in.

use super::identities::ExternalIdentity;
use super::teams::Role;
use super::{Database, now_millis};

/// What an owner asks for when inviting.
#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    pub team: i64,
    pub role: Role,
    /// The SHA-256 of the link's token (`auth::hash_token`).
    pub token_hash: &'a str,
    pub github_login: Option<&'a str>,
    /// Lowercased.
    pub email: Option<&'a str>,
    /// Who invited, as the audit log names actors (`user:3`, `admin`).
    pub invited_by: &'a str,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

/// An invitation as stored, with its team's name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Invitation {
    pub id: i64,
    pub team_id: i64,
    pub team: String,
    pub role: String,
    pub github_login: Option<String>,
    pub email: Option<String>,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Used,
    Revoked,
    Expired,
}

impl Invitation {
    pub fn state(&self, now: i64) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Used
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if self.expires_at <= now {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }

    /// The role it gives (an unknown stored name reads as the weakest).
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }

    /// Whether only a particular person may accept it.
    pub fn is_addressed(&self) -> bool {
        self.github_login.is_some() || self.email.is_some()
    }
}

/// What accepting an invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// The user is a member of `team` with `role` (the invitation's, or a
    /// stronger one they held already).
    Joined { team: i64, role: Role },
    /// Used, revoked, expired or unknown: nothing changed.
    Unusable,
    /// Addressed to a GitHub login or e-mail none of the user's linked
    /// identities has: nothing changed.
    AddressedToSomeoneElse,
    /// (A new account only) the login is taken: nothing changed.
    LoginTaken,
}

const INVITATION_COLUMNS: &str = "i.id, i.team_id, t.name AS team, i.role, i.github_login, i.email, \
     i.invited_by, i.created_at, i.expires_at, i.accepted_at, i.revoked_at";

impl ExternalIdentity {
    /// The GitHub login this identity proves, if it is a GitHub one.
    pub fn github_login(&self) -> Option<&str> {
        (self.provider == "github")
            .then_some(self.login.as_deref())
            .flatten()
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Database {
    /// Stores a new invitation; returns its id.
    pub async fn insert_invitation(&self, new: &NewInvitation<'_>) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO team_invitations \
             (team_id, role, token_hash, github_login, email, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(new.team)
        .bind(new.role.as_str())
        .bind(new.token_hash)
        .bind(new.github_login)
        .bind(new.email)
        .bind(new.invited_by)
        .bind(now_millis())
        .bind(new.expires_at)
        .fetch_one(self.writer())
        .await?)
    }

    /// A team's invitations that may still be accepted, newest first.
    pub async fn pending_invitations(&self, team: i64) -> anyhow::Result<Vec<Invitation>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {INVITATION_COLUMNS} FROM team_invitations i JOIN teams t ON t.id = i.team_id \
             WHERE i.team_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL \
             AND i.expires_at > $2 ORDER BY i.id DESC"
        ))
        .bind(team)
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The invitation a link's token (by its hash) stands for, in any state.
    pub async fn invitation_by_token_hash(&self, token_hash: &str) -> anyhow::Result<Option<Invitation>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {INVITATION_COLUMNS} FROM team_invitations i JOIN teams t ON t.id = i.team_id \
             WHERE i.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Revokes a pending invitation of `team`; false when it has none by
    /// that id (or it was used or revoked already).
    pub async fn revoke_invitation(&self, team: i64, id: i64) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE team_invitations SET revoked_at = $1 \
             WHERE id = $2 AND team_id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(id)
        .bind(team)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `user` accepts invitation `id`, in one transaction: the invitation
    /// is marked used by a single conditional `UPDATE` (so of two racing
    /// only one wins), then the user joins its team. A stronger role the
    /// user holds already is kept.
    pub async fn accept_invitation(&self, id: i64, user: i64) -> anyhow::Result<Acceptance> {
        let mut tx = self.write_tx().await?;
        let acceptance = accept_in(&mut tx, id, user).await?;
        if matches!(acceptance, Acceptance::Joined { .. }) {
            tx.commit().await?;
        }
        Ok(acceptance)
    }

    /// Makes a user with a local password and accepts invitation `id` as
    /// that user, in one transaction: either both happen or neither.
    /// Returns the new user's id with what happened.
    pub async fn accept_invitation_as_new_user(
        &self,
        id: i64,
        login: &str,
        password_hash: &str,
    ) -> anyhow::Result<(Option<i64>, Acceptance)> {
        let mut tx = self.write_tx().await?;
        let user: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (login, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (login) DO NOTHING RETURNING id",
        )
        .bind(login)
        .bind(password_hash)
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            return Ok((None, Acceptance::LoginTaken));
        };
        let acceptance = accept_in(&mut tx, id, user).await?;
        if !matches!(acceptance, Acceptance::Joined { .. }) {
            return Ok((None, acceptance));
        }
        tx.commit().await?;
        Ok((Some(user), acceptance))
    }

    /// Accepts every pending invitation addressed to `github_login`
    /// (case-insensitive) or to the verified `email`, as `user`: called at
    /// every sign-in through GitHub or an OpenID Connect provider. Returns
    /// the teams joined.
    pub async fn claim_invitations_for(
        &self,
        user: i64,
        github_login: Option<&str>,
        email: Option<&str>,
    ) -> anyhow::Result<Vec<i64>> {
        if github_login.is_none() && email.is_none() {
            return Ok(Vec::new());
        }
        let addressed: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM team_invitations \
             WHERE accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             AND (LOWER(github_login) = LOWER($2) OR LOWER(email) = LOWER($3)) ORDER BY id",
        )
        .bind(now_millis())
        .bind(github_login)
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        let mut joined = Vec::new();
        for id in addressed {
            // The identity was linked before this is called, so the
            // acceptance's own check of the address agrees.
            if let Acceptance::Joined { team, .. } = self.accept_invitation(id, user).await? {
                joined.push(team);
            }
        }
        Ok(joined)
    }
}

/// The one way an invitation is used (see [`Database::accept_invitation`]).
async fn accept_in(tx: &mut Tx, id: i64, user: i64) -> anyhow::Result<Acceptance> {
    let now = now_millis();
    let address: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT github_login, email FROM team_invitations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((github_login, email)) = address else {
        return Ok(Acceptance::Unusable);
    };
    if github_login.is_some() || email.is_some() {
        let matches: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_identities WHERE user_id = $1 \
             AND ((provider = 'github' AND LOWER(login) = LOWER($2)) OR LOWER(email) = LOWER($3))",
        )
        .bind(user)
        .bind(github_login.as_deref())
        .bind(email.as_deref())
        .fetch_one(&mut **tx)
        .await?;
        if matches == 0 {
            return Ok(Acceptance::AddressedToSomeoneElse);
        }
    }
    let used: Option<(i64, String)> = sqlx::query_as(
        "UPDATE team_invitations SET accepted_by = $1, accepted_at = $2 \
         WHERE id = $3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
         RETURNING team_id, role",
    )
    .bind(user)
    .bind(now)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((team, role)) = used else {
        return Ok(Acceptance::Unusable);
    };
    let offered = Role::parse(&role).unwrap_or(Role::Viewer);
    let held: Option<String> =
        sqlx::query_scalar("SELECT role FROM memberships WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .fetch_optional(&mut **tx)
            .await?;
    let role = match held.as_deref().and_then(Role::parse) {
        // Roles order strongest first: an invitation never downgrades.
        Some(held) if held <= offered => held,
        Some(_) => {
            sqlx::query("UPDATE memberships SET role = $1 WHERE team_id = $2 AND user_id = $3")
                .bind(offered.as_str())
                .bind(team)
                .bind(user)
                .execute(&mut **tx)
                .await?;
            offered
        }
        None => {
            sqlx::query(
                "INSERT INTO memberships (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(team)
            .bind(user)
            .bind(offered.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            offered
        }
    };
    Ok(Acceptance::Joined { team, role })
}
