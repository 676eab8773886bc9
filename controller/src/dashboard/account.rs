//! A user's own account page: who they are, their teams and roles, and
//! their dashboard sessions, each of which they may end, and the
//! identities at providers (GitHub, OpenID Connect) they sign in with.

use super::{Chrome, CsrfOnly, PageResult, Session, ago, render, see_other};
use crate::auth::{Principal, hash_token, session_cookie_value};
use crate::db::Database;
use crate::error::not_found;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum_extra::extract::CookieJar;

pub struct SessionRow {
    pub id: i64,
    pub opened: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "dashboard/account.html")]
struct AccountPage {
    chrome: Chrome,
    login: String,
    sessions: Vec<SessionRow>,
    identities: Vec<IdentityRow>,
}

/// An identity at a provider linked to the user, as the page shows it.
pub struct IdentityRow {
    pub provider: String,
    /// The provider's login or, lacking one, the verified e-mail.
    pub name: String,
    pub last_seen: String,
}

pub async fn show(State(db): State<Database>, session: Session, jar: CookieJar) -> PageResult {
    let Principal::Member { user } = session.principal else {
        return Ok(see_other("/settings"));
    };
    let login = db
        .user_by_id(user)
        .await?
        .map(|u| u.login)
        .ok_or_else(|| not_found("your user no longer exists"))?;
    let current = match session_cookie_value(&jar) {
        Some(cookie) => db.session_id(&hash_token(&cookie)).await?,
        None => None,
    };
    let sessions = db
        .user_sessions(user)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id,
            opened: ago(s.created_at),
            current: Some(s.id) == current,
        })
        .collect();
    let identities = db
        .identities_of_user(user)
        .await?
        .into_iter()
        .map(|identity| IdentityRow {
            provider: identity.provider,
            name: identity.login.or(identity.email).unwrap_or_default(),
            last_seen: ago(identity.last_seen_at),
        })
        .collect();
    Ok(render(&AccountPage {
        chrome: Chrome::new(&session, "account"),
        login,
        sessions,
        identities,
    }))
}

/// Ends one of the user's sessions (on another device, or this one).
pub async fn revoke_session(
    State(db): State<Database>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let user = crate::api::users::me(&session.principal)?;
    if !db.revoke_user_session(user, id).await? {
        return Err(not_found(format!("you have no session {id}")).into());
    }
    Ok(see_other("/account"))
}
