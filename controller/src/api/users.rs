//! A person's own account: their dashboard sessions (listed and revoked)
//! and their local password. "Me" is the user a member's token or session
//! belongs to; the admin token and a team's own token belong to no user.

use crate::auth::sign_in::{ClientAddr, FAILURE_PAUSE};
use crate::auth::{Auth, Principal, SignInThrottle};
use crate::db::{Database, UserSession};
use crate::error::{AppError, AppResult, bad_request, forbidden, not_found};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};

/// A local password's shortest length.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// A local password's longest length: argon2 hashes all of it, so a huge
/// one would cost time for nothing.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Hashes a new local password (argon2id, off the async threads), refusing
/// one too short or too long.
pub async fn hash_new_password(password: String) -> AppResult<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(bad_request(format!(
            "the password is shorter than {MIN_PASSWORD_CHARS} characters; choose a longer one"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(bad_request(format!(
            "the password is longer than {MAX_PASSWORD_CHARS} characters; choose a shorter one"
        )));
    }
    Ok(
        tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
            .await
            .map_err(anyhow::Error::from)??,
    )
}

/// A dashboard session, as its user's list shows it (never its cookie).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: i64,
    /// When it was opened, in Unix milliseconds.
    pub created_at: i64,
    /// When it ends, in Unix milliseconds.
    pub expires_at: i64,
}

impl From<UserSession> for SessionView {
    fn from(s: UserSession) -> Self {
        SessionView {
            id: s.id,
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }
}

/// The user a request speaks for, or why it speaks for none.
pub fn me(principal: &Principal) -> AppResult<i64> {
    match principal {
        Principal::Member { user } | Principal::Token { user: Some(user), .. } => Ok(*user),
        Principal::Installation => Err(bad_request(
            "the admin token belongs to no user; call this with a member's token \
             (POST /api/v1/teams/<team>/tokens with `login`)",
        )),
        Principal::Token { user: None, .. } => Err(bad_request(
            "this is a team's own token, which belongs to no user; call this with a member's token",
        )),
    }
}

/// The caller's live dashboard sessions, newest first.
#[utoipa::path(
    get,
    operation_id = "list_my_sessions",
    path = jamstack_proto::routes::api::MY_SESSIONS,
    tag = "teams",
    responses(
        (status = 200, description = "The sessions", body = Vec<SessionView>),
        (status = 400, description = "The token belongs to no user", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("team.read")))
)]
pub async fn list_my_sessions(
    State(db): State<Database>,
    Extension(principal): Extension<Principal>,
) -> AppResult<Json<Vec<SessionView>>> {
    let user = me(&principal)?;
    let sessions = db.user_sessions(user).await?;
    Ok(Json(sessions.into_iter().map(SessionView::from).collect()))
}

/// Ends one of the caller's dashboard sessions at once: its next page is
/// the sign-in form.
#[utoipa::path(
    delete,
    operation_id = "revoke_my_session",
    path = jamstack_proto::routes::api::MY_SESSION,
    tag = "teams",
    params(("session" = i64, Path, description = "The session's id, as the list shows it")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "The caller has no such session", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("team.read")))
)]
pub async fn revoke_my_session(
    State(db): State<Database>,
    Extension(principal): Extension<Principal>,
    Path(session): Path<i64>,
) -> AppResult<StatusCode> {
    let user = me(&principal)?;
    if !db.revoke_user_session(user, session).await? {
        return Err(not_found(format!(
            "you have no session {session}; list yours with GET /api/v1/users/me/sessions"
        )));
    }
    tracing::info!(user, session, "session revoked by its user");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOwnPassword {
    /// The password the user has now.
    pub current_password: String,
    /// The new one (at least 12 characters).
    pub password: String,
}

/// Changes the caller's own local password. The current one is needed (so
/// a token alone cannot take over the dashboard), and is checked in the
/// sign-in throttle like a sign-in. A user without a password gets a first
/// one from an owner of their team or the admin. Every session of the user
/// ends.
#[utoipa::path(
    put,
    operation_id = "set_my_password",
    path = jamstack_proto::routes::api::MY_PASSWORD,
    tag = "teams",
    request_body = NewOwnPassword,
    responses(
        (status = 204, description = "Changed; the user's sessions ended"),
        (status = 403, description = "The current password is wrong, or the user has none", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("team.read")))
)]
pub async fn set_my_password(
    State(auth): State<Auth>,
    Extension(principal): Extension<Principal>,
    client: ClientAddr,
    Json(body): Json<NewOwnPassword>,
) -> AppResult<StatusCode> {
    let user_id = me(&principal)?;
    let user = auth
        .db
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| not_found("your user no longer exists"))?;
    let Some(current) = user.password_hash else {
        return Err(forbidden(
            "you have no local password yet; an owner of your team (PUT \
             /api/v1/teams/<team>/members/<login>/password) or the admin sets the first one",
        ));
    };
    let hash = hash_new_password(body.password).await?;
    let _admitted = auth.sign_in.admit(client.0).map_err(|_| {
        AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many sign-ins are waiting their turn; try again in a few seconds",
        )
    })?;
    let turn = auth.sign_in.turn.lock().await;
    if !SignInThrottle::password_matches(&body.current_password, &current).await? {
        tokio::time::sleep(FAILURE_PAUSE).await;
        drop(turn);
        return Err(forbidden("the current password is wrong; nothing was changed"));
    }
    drop(turn);
    auth.db.set_user_password(user_id, &hash).await?;
    tracing::info!(user = user_id, "password changed by its user");
    Ok(StatusCode::NO_CONTENT)
}
