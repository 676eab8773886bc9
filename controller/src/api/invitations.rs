//! Invitations to a team by link: an owner makes one (shown once), lists
//! the pending ones and revokes them. The link opens the dashboard's
//! invitation page (`dashboard::invitations`), where it is accepted.

use super::access::actor;
use super::teams::team_id;
use crate::auth::{Principal, hash_token};
use crate::db::{Database, Invitation, NewInvitation, Role, now_millis};
use crate::error::{AppResult, bad_request, not_found};
use crate::secrets::random_hex;
use crate::urls::Urls;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};

/// How long an invitation lasts unless the owner says otherwise.
pub const DEFAULT_EXPIRY_DAYS: i64 = 7;
/// The longest an invitation may last.
pub const MAX_EXPIRY_DAYS: i64 = 30;
const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitationRequest {
    /// The role whoever accepts gets (a stronger one they hold is kept).
    pub role: Role,
    /// Only the person signing in with this GitHub account may accept it
    /// (and it is accepted at their sign-in).
    pub github_login: Option<String>,
    /// Only a person whose sign-in provider verified this e-mail may
    /// accept it (and it is accepted at their sign-in).
    pub email: Option<String>,
    /// Days until the link stops working: 1 to 30, 7 when not given.
    pub expires_in_days: Option<i64>,
}

/// A pending invitation, without its link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    pub id: i64,
    pub role: Role,
    pub github_login: Option<String>,
    pub email: Option<String>,
    /// Who invited: `user:<id>`, `token:<id>` or `admin`.
    pub invited_by: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

impl From<Invitation> for InvitationView {
    fn from(invitation: Invitation) -> Self {
        InvitationView {
            id: invitation.id,
            role: invitation.role(),
            github_login: invitation.github_login,
            email: invitation.email,
            invited_by: invitation.invited_by,
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
        }
    }
}

/// A new invitation with its link, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: InvitationView,
    /// `<public URL>/invitations/<token>`: send it to the person invited.
    pub link: String,
}

/// A GitHub login: 1 to 39 letters, digits or single hyphens, not starting
/// or ending with one.
fn valid_github_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 39
        && login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--")
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.chars().all(|c| c.is_ascii_graphic())
}

/// What an owner asked for, checked: the GitHub login and e-mail trimmed
/// (the e-mail lowercased), and the expiry in days.
pub struct CheckedInvitation {
    pub role: Role,
    pub github_login: Option<String>,
    pub email: Option<String>,
    pub expires_in_days: i64,
}

/// Checks an invitation request (the API's and the dashboard's form).
pub fn check_invitation(
    role: Role,
    github_login: Option<&str>,
    email: Option<&str>,
    expires_in_days: Option<i64>,
) -> Result<CheckedInvitation, String> {
    let github_login = github_login.map(str::trim).filter(|l| !l.is_empty());
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    if github_login.is_some() && email.is_some() {
        return Err("give a GitHub login or an e-mail, not both: an invitation is for one person".to_owned());
    }
    if let Some(login) = github_login
        && !valid_github_login(login)
    {
        return Err(format!(
            "`{login}` is not a GitHub login: use 1 to 39 letters, digits or single hyphens"
        ));
    }
    if let Some(email) = email
        && !valid_email(email)
    {
        return Err(format!(
            "`{email}` is not an e-mail address like `name@example.com`"
        ));
    }
    let days = expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(format!(
            "an invitation lasts 1 to {MAX_EXPIRY_DAYS} days, not {days}; set `expires_in_days` between them"
        ));
    }
    Ok(CheckedInvitation {
        role,
        github_login: github_login.map(str::to_owned),
        email: email.map(str::to_ascii_lowercase),
        expires_in_days: days,
    })
}

/// A new invitation's link token: random, recognisable by its prefix.
fn new_invitation_token() -> String {
    format!("jsinv_{}", random_hex(32))
}

/// Stores a checked invitation of `team` and returns it with its link.
pub async fn invite(
    db: &Database,
    urls: &Urls,
    team: i64,
    invited_by: &str,
    checked: CheckedInvitation,
) -> anyhow::Result<CreatedInvitation> {
    let token = new_invitation_token();
    let expires_at = now_millis() + checked.expires_in_days * DAY_MILLIS;
    let id = db
        .insert_invitation(&NewInvitation {
            team,
            role: checked.role,
            token_hash: &hash_token(&token),
            github_login: checked.github_login.as_deref(),
            email: checked.email.as_deref(),
            invited_by,
            expires_at,
        })
        .await?;
    tracing::info!(team, id, "invitation made");
    Ok(CreatedInvitation {
        invitation: InvitationView {
            id,
            role: checked.role,
            github_login: checked.github_login,
            email: checked.email,
            invited_by: invited_by.to_owned(),
            created_at: now_millis(),
            expires_at,
        },
        link: format!("{}/invitations/{token}", urls.public_url.trim_end_matches('/')),
    })
}

/// Invites someone to the team: a link, shown this once, that makes
/// whoever opens it and accepts a member with `role`; addressed to a
/// GitHub login or e-mail, only that person.
#[utoipa::path(
    post,
    operation_id = "create_team_invitation",
    path = jamstack_proto::routes::api::TEAM_INVITATIONS,
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    request_body = NewInvitationRequest,
    responses(
        (status = 201, description = "The invitation and its link, shown this once", body = CreatedInvitation),
        (status = 400, description = "A bad GitHub login, e-mail or expiry", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn create(
    State(db): State<Database>,
    State(urls): State<Urls>,
    Extension(principal): Extension<Principal>,
    Path(team): Path<String>,
    Json(body): Json<NewInvitationRequest>,
) -> AppResult<(StatusCode, Json<CreatedInvitation>)> {
    let team = team_id(&db, &team).await?;
    let checked = check_invitation(
        body.role,
        body.github_login.as_deref(),
        body.email.as_deref(),
        body.expires_in_days,
    )
    .map_err(bad_request)?;
    let created = invite(&db, &urls, team, &actor(Some(&principal)), checked).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The team's invitations not yet used, revoked or expired, newest first
/// (never their links).
#[utoipa::path(
    get,
    operation_id = "list_team_invitations",
    path = jamstack_proto::routes::api::TEAM_INVITATIONS,
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    responses((status = 200, description = "The pending invitations", body = Vec<InvitationView>)),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn list(
    State(db): State<Database>,
    Path(team): Path<String>,
) -> AppResult<Json<Vec<InvitationView>>> {
    let team = team_id(&db, &team).await?;
    let pending = db.pending_invitations(team).await?;
    Ok(Json(pending.into_iter().map(InvitationView::from).collect()))
}

/// Revokes a pending invitation: its link stops working at once.
#[utoipa::path(
    delete,
    operation_id = "revoke_team_invitation",
    path = jamstack_proto::routes::api::TEAM_INVITATION,
    tag = "teams",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("id" = i64, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No pending invitation by that id", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn revoke(
    State(db): State<Database>,
    Path((team, id)): Path<(String, i64)>,
) -> AppResult<StatusCode> {
    let team_id = team_id(&db, &team).await?;
    if !db.revoke_invitation(team_id, id).await? {
        return Err(not_found(format!(
            "`{team}` has no pending invitation {id}; list them with GET {}",
            jamstack_proto::routes::api::team_invitations(&team)
        )));
    }
    tracing::info!(team = team_id, id, "invitation revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invitation_names_one_person_at_most_and_lasts_one_to_thirty_days() {
        let ok = check_invitation(Role::Developer, Some(" Octo-Cat "), None, None).unwrap();
        assert_eq!(ok.github_login.as_deref(), Some("Octo-Cat"));
        assert_eq!(ok.expires_in_days, DEFAULT_EXPIRY_DAYS);
        let ok = check_invitation(Role::Viewer, Some(""), Some("Ana@Example.COM"), Some(30)).unwrap();
        assert_eq!(
            (ok.github_login, ok.email.as_deref()),
            (None, Some("ana@example.com"))
        );
        for (login, email, days) in [
            (Some("a"), Some("a@b.c"), None),
            (Some("-bad"), None, None),
            (Some("two--hyphens"), None, None),
            (None, Some("not-an-email"), None),
            (None, Some("a b@c.d"), None),
            (None, None, Some(0)),
            (None, None, Some(31)),
        ] {
            assert!(
                check_invitation(Role::Viewer, login, email, days).is_err(),
                "{login:?} {email:?} {days:?}"
            );
        }
    }
}
