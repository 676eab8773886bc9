//! People and teams: local users and teams are made with the admin token;
//! a team's owners manage its members, their roles and the team's tokens.
//! Who may call what is declared on each operation (`x-permission`).

use super::tokens::{CreatedToken, validate_new_token};
use super::users::{SessionView, hash_new_password};
use crate::auth::scope_fits_role;
use crate::auth::{Principal, Scope, hash_token, new_token, parse_stored_scopes, store_scopes};
use crate::db::{Database, MembershipChange, Role, TokenKind};
use crate::error::{AppError, AppResult, bad_request, conflict, not_found};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The name the user signs in with.
    pub login: String,
    /// A local password (at least 12 characters), stored as an argon2id hash.
    pub password: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub login: String,
    /// This user became the owner of the first team (the one holding the
    /// sites made before teams): the first person the admin token makes.
    pub owns_first_team: bool,
}

pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a {what}: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`"
        ))
    }
}

/// Makes a local user; the first one made owns the first team.
#[utoipa::path(
    post,
    operation_id = "create_user",
    path = "/api/v1/users",
    tag = "teams",
    request_body = NewUser,
    responses(
        (status = 201, description = "The user", body = UserView),
        (status = 409, description = "The login is taken", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn create_user(
    State(db): State<Database>,
    Json(body): Json<NewUser>,
) -> AppResult<(StatusCode, Json<UserView>)> {
    validate_name("login", &body.login).map_err(bad_request)?;
    let hash = match body.password {
        Some(password) => Some(hash_new_password(password).await?),
        None => None,
    };
    let user = db
        .insert_user(&body.login, hash.as_deref())
        .await?
        .ok_or_else(|| conflict(format!("the login `{}` is taken", body.login)))?;
    // The first team waits for its owner: the first person the
    // installation's admin makes. The claim is one conditional write, so
    // two racing calls cannot both take it.
    let owns_first_team = db.claim_first_team(user.id).await?.is_some();
    tracing::info!(user = user.id, owns_first_team, "user made");
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id: user.id,
            login: user.login,
            owns_first_team,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    /// The login of its first owner.
    pub owner: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: i64,
    pub name: String,
}

/// Makes a team with its first owner.
#[utoipa::path(
    post,
    operation_id = "create_team",
    path = "/api/v1/teams",
    tag = "teams",
    request_body = NewTeam,
    responses(
        (status = 201, description = "The team", body = TeamView),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn create_team(
    State(db): State<Database>,
    Json(body): Json<NewTeam>,
) -> AppResult<(StatusCode, Json<TeamView>)> {
    validate_name("team name", &body.name).map_err(bad_request)?;
    let owner = user_named(&db, &body.owner).await?;
    let team = db
        .insert_team(&body.name, owner)
        .await?
        .ok_or_else(|| conflict(format!("a team named `{}` exists", body.name)))?;
    tracing::info!(team = team.id, "team made");
    Ok((
        StatusCode::CREATED,
        Json(TeamView {
            id: team.id,
            name: team.name,
        }),
    ))
}

async fn user_named(db: &Database, login: &str) -> AppResult<i64> {
    Ok(db
        .user_by_login(login)
        .await?
        .ok_or_else(|| not_found(format!("no user `{login}`; make one with POST /api/v1/users")))?
        .id)
}

/// The team named in a path; the permission layer found it already.
/// The id of the team named `name`, or a 404 naming it.
pub(crate) async fn team_id(db: &Database, name: &str) -> AppResult<i64> {
    Ok(db
        .team_by_name(name)
        .await?
        .ok_or_else(|| not_found(format!("no team named `{name}`")))?
        .id)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub login: String,
    pub role: Role,
}

/// A team's members and their roles, by login.
#[utoipa::path(
    get,
    operation_id = "list_members",
    path = "/api/v1/teams/{team}/members",
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    responses((status = 200, description = "The members", body = Vec<MemberView>)),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("team.read")))
)]
pub async fn list_members(
    State(db): State<Database>,
    Path(team): Path<String>,
) -> AppResult<Json<Vec<MemberView>>> {
    let team = team_id(&db, &team).await?;
    let members = db.team_members(team).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|m| MemberView {
                login: m.login,
                role: m.role,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    pub role: Role,
}

fn last_owner() -> AppError {
    conflict("that would leave the team without an owner; make another member owner first")
}

/// Adds a user to the team with a role, or changes a member's role.
#[utoipa::path(
    put,
    operation_id = "set_member_role",
    path = "/api/v1/teams/{team}/members/{login}",
    tag = "teams",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("login" = String, Path, description = "The user's login"),
    ),
    request_body = MemberRole,
    responses(
        (status = 200, description = "The membership", body = MemberView),
        (status = 409, description = "The team's last owner cannot step down", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn set_member_role(
    State(db): State<Database>,
    Path((team, login)): Path<(String, String)>,
    Json(body): Json<MemberRole>,
) -> AppResult<Json<MemberView>> {
    let team = team_id(&db, &team).await?;
    let user = user_named(&db, &login).await?;
    match db.set_member_role(team, user, body.role).await? {
        MembershipChange::LastOwner => Err(last_owner()),
        _ => Ok(Json(MemberView {
            login,
            role: body.role,
        })),
    }
}

/// Removes a member; the member's tokens on this team are revoked with it.
#[utoipa::path(
    delete,
    operation_id = "remove_member",
    path = "/api/v1/teams/{team}/members/{login}",
    tag = "teams",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("login" = String, Path, description = "The user's login"),
    ),
    responses(
        (status = 204, description = "Removed, and the member's tokens on the team revoked"),
        (status = 404, description = "No such member", body = ErrorBody),
        (status = 409, description = "The team's last owner cannot leave", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn remove_member(
    State(db): State<Database>,
    Path((team, login)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let team_id = team_id(&db, &team).await?;
    let user = user_named(&db, &login).await?;
    match db.remove_member(team_id, user).await? {
        MembershipChange::Done => {
            tracing::info!(team = team_id, user, "member removed");
            Ok(StatusCode::NO_CONTENT)
        }
        MembershipChange::NotAMember => Err(not_found(format!("`{login}` is not a member of `{team}`"))),
        MembershipChange::LastOwner => Err(last_owner()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeamToken {
    /// Where the token is used, e.g. `ci`.
    pub name: String,
    /// What it may do: `read`, `builds`, `deploys`, `sites`, `admin`; no
    /// wider than the member's role.
    pub scopes: Vec<String>,
    /// The member it belongs to (it dies with the membership); without
    /// it, a token of the team itself, for automation.
    pub login: Option<String>,
}

/// Makes a token of the team, or of one of its members, and shows it once.
#[utoipa::path(
    post,
    operation_id = "create_team_token",
    path = "/api/v1/teams/{team}/tokens",
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    request_body = NewTeamToken,
    responses(
        (status = 201, description = "The token, shown this once", body = CreatedToken),
        (status = 403, description = "A scope wider than the member's role", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn create_token(
    State(db): State<Database>,
    Extension(principal): Extension<Principal>,
    Path(team): Path<String>,
    Json(body): Json<NewTeamToken>,
) -> AppResult<(StatusCode, Json<CreatedToken>)> {
    let team_id = team_id(&db, &team).await?;
    let scopes = validate_new_token(&body.name, &body.scopes).map_err(bad_request)?;
    // A token never carries more than the token that made it.
    if let Principal::Token { scopes: held, .. } = &principal
        && let Some(wider) = scopes.iter().find(|s| !crate::auth::grants(held, **s))
    {
        return Err(crate::error::forbidden(format!(
            "the token making this one lacks the `{wider}` scope, so the new one cannot have it"
        )));
    }
    // A token of the first team with no member and the `admin` scope is
    // an installation token (the kind the admin token makes), so a team's
    // own token never gets `admin`: an owner could otherwise make one.
    if body.login.is_none() && scopes.contains(&Scope::Admin) {
        return Err(crate::error::forbidden(
            "a team's own token cannot hold the `admin` scope; give it to a member (`login`) instead",
        ));
    }
    let user = match &body.login {
        Some(login) => {
            let user = user_named(&db, login).await?;
            let role = db
                .role_on_team(user, team_id)
                .await?
                .ok_or_else(|| not_found(format!("`{login}` is not a member of `{team}`")))?;
            if let Some(wider) = scopes.iter().find(|s| !scope_fits_role(**s, role)) {
                return Err(crate::error::forbidden(format!(
                    "`{login}` is `{role}` on `{team}`, too little for the `{wider}` scope; \
                     give the token fewer scopes or the member a higher role"
                )));
            }
            Some(user)
        }
        None => None,
    };
    let token = new_token(TokenKind::Api);
    let stored = store_scopes(&scopes);
    let id = db
        .insert_team_token(team_id, user, body.name.trim(), &stored, &hash_token(&token))
        .await?;
    tracing::info!(team = team_id, id, scopes = %stored, "team token made");
    let scopes: Vec<Scope> = parse_stored_scopes(&stored);
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            name: body.name.trim().to_owned(),
            scopes,
            token,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The member's new local password (at least 12 characters).
    pub password: String,
}

/// The member a team-scoped account operation may act on: a member of the
/// team, and, unless the admin token asks, a member of no other team (an
/// owner of one team must not take over a person who also belongs to
/// another).
async fn member_of_this_team_only(
    db: &Database,
    principal: &Principal,
    team: &str,
    login: &str,
) -> AppResult<i64> {
    let team_id = team_id(db, team).await?;
    let user = user_named(db, login).await?;
    let teams = db.teams_of_user(user).await?;
    if !teams.contains(&team_id) {
        return Err(not_found(format!("`{login}` is not a member of `{team}`")));
    }
    if *principal != Principal::Installation && teams.len() > 1 {
        return Err(crate::error::forbidden(format!(
            "`{login}` is a member of other teams too, so only the admin token may set their password \
             or end their sessions; they may change their own with PUT /api/v1/users/me/password"
        )));
    }
    Ok(user)
}

/// Sets a member's local password (their first one, or a new one when
/// they have forgotten it); the member's sessions end.
#[utoipa::path(
    put,
    operation_id = "set_member_password",
    path = jamstack_proto::routes::api::MEMBER_PASSWORD,
    tag = "teams",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("login" = String, Path, description = "The user's login"),
    ),
    request_body = NewPassword,
    responses(
        (status = 204, description = "Set; the member's sessions ended"),
        (status = 403, description = "The member belongs to another team too", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn set_member_password(
    State(db): State<Database>,
    Extension(principal): Extension<Principal>,
    Path((team, login)): Path<(String, String)>,
    Json(body): Json<NewPassword>,
) -> AppResult<StatusCode> {
    let user = member_of_this_team_only(&db, &principal, &team, &login).await?;
    let hash = hash_new_password(body.password).await?;
    db.set_user_password(user, &hash).await?;
    tracing::info!(user, "member's password set");
    Ok(StatusCode::NO_CONTENT)
}

/// A member's live dashboard sessions, newest first.
#[utoipa::path(
    get,
    operation_id = "list_member_sessions",
    path = jamstack_proto::routes::api::MEMBER_SESSIONS,
    tag = "teams",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("login" = String, Path, description = "The user's login"),
    ),
    responses((status = 200, description = "The sessions", body = Vec<SessionView>)),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn list_member_sessions(
    State(db): State<Database>,
    Extension(principal): Extension<Principal>,
    Path((team, login)): Path<(String, String)>,
) -> AppResult<Json<Vec<SessionView>>> {
    let user = member_of_this_team_only(&db, &principal, &team, &login).await?;
    let sessions = db.user_sessions(user).await?;
    Ok(Json(sessions.into_iter().map(SessionView::from).collect()))
}

/// Ends every dashboard session of a member at once (a lost laptop).
#[utoipa::path(
    delete,
    operation_id = "revoke_member_sessions",
    path = jamstack_proto::routes::api::MEMBER_SESSIONS,
    tag = "teams",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("login" = String, Path, description = "The user's login"),
    ),
    responses((status = 204, description = "Every session of the member ended")),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn revoke_member_sessions(
    State(db): State<Database>,
    Extension(principal): Extension<Principal>,
    Path((team, login)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let user = member_of_this_team_only(&db, &principal, &team, &login).await?;
    let ended = db.revoke_all_user_sessions(user).await?;
    tracing::info!(user, ended, "member's sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}
