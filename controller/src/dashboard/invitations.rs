//! An invitation's page, `/invitations/<token>`: open to anyone holding
//! the link. It names the team and the role; a signed-in person joins with
//! one button, anyone else signs in first (and comes back here) or, for an
//! invitation addressed to no one, makes an account that joins at once.
//!
//! The token is in the path, so these pages write their own audit entries
//! (naming the invitation's id, never its token) instead of the dashboard's
//! audit layer, which records paths.

use super::login::{anonymous_form_csrf, anonymous_form_csrf_matches, open_session};
use super::{Chrome, PageError, PageResult, Session, render, see_other};
use crate::audit::AuditLog;
use crate::auth::sign_in::ClientAddr;
use crate::auth::{Auth, Principal, csrf_token_for, hash_token, session_cookie_value};
use crate::db::{Acceptance, Database, Invitation, InvitationState, NewAuditEntry, now_millis};
use crate::error::{AppError, forbidden, not_found};
use crate::urls::Urls;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "dashboard/invitation.html")]
struct InvitationPage {
    chrome: Chrome,
    /// The link's own path, for the forms.
    path: String,
    /// Why the invitation cannot be used, when it cannot.
    unusable: Option<String>,
    team: String,
    role: String,
    /// Who alone may accept it, for people: `GitHub user octocat`.
    addressed_to: Option<String>,
    /// The person signed in (`None`: nobody, or the installation's admin).
    signed_in_as: Option<String>,
    /// The form token of the account form (anonymous visitors).
    account_csrf: String,
    error: Option<String>,
}

/// Whoever the request's session cookie belongs to: `None` for nobody,
/// `Some(None)` for the installation's admin, `Some(Some(user))` for a user.
async fn visitor(db: &Database, jar: &CookieJar) -> anyhow::Result<Option<Option<i64>>> {
    match session_cookie_value(jar) {
        Some(cookie) => db.session_user(&hash_token(&cookie)).await,
        None => Ok(None),
    }
}

/// The invitation a link's token stands for, looked up by its hash. A
/// token of the wrong shape is not looked up at all.
async fn find(db: &Database, token: &str) -> anyhow::Result<Option<Invitation>> {
    let plausible = token.len() <= 128 && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plausible {
        return Ok(None);
    }
    db.invitation_by_token_hash(&hash_token(token)).await
}

fn describe_address(invitation: &Invitation) -> Option<String> {
    match (&invitation.github_login, &invitation.email) {
        (Some(login), _) => Some(format!("GitHub user {login}")),
        (None, Some(email)) => Some(format!("the person whose e-mail is {email}")),
        (None, None) => None,
    }
}

fn unusable_reason(state: InvitationState) -> Option<&'static str> {
    match state {
        InvitationState::Pending => None,
        InvitationState::Used => Some(
            "This invitation has been used already: each link lets one person join. Ask an owner of the \
             team for a new one.",
        ),
        InvitationState::Revoked => {
            Some("This invitation was revoked by an owner of the team. Ask them for a new one.")
        }
        InvitationState::Expired => {
            Some("This invitation has expired. Ask an owner of the team for a new one.")
        }
    }
}

fn unknown_invitation() -> PageError {
    PageError(not_found(
        "There is no invitation at this link. Check that the whole link was copied, or ask an owner of \
         the team for a new one.",
    ))
}

/// Renders the invitation's page for whoever looks at it.
#[allow(clippy::too_many_arguments)]
async fn page(
    db: &Database,
    urls: &Urls,
    headers: &HeaderMap,
    jar: CookieJar,
    token: &str,
    invitation: Invitation,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let visitor = visitor(db, &jar).await?;
    let signed_in_as = match visitor {
        Some(Some(user)) => db.user_by_id(user).await?.map(|u| u.login),
        _ => None,
    };
    let chrome = match (&visitor, session_cookie_value(&jar)) {
        (Some(who), Some(cookie)) => Chrome {
            signed_in: true,
            installation: who.is_none(),
            csrf: csrf_token_for(&cookie),
            section: "teams",
        },
        _ => Chrome::anonymous(),
    };
    let (jar, account_csrf) = anonymous_form_csrf(urls, headers, jar);
    let unusable = unusable_reason(invitation.state(now_millis())).map(str::to_owned);
    let status = if unusable.is_some() {
        StatusCode::GONE
    } else {
        status
    };
    let page = InvitationPage {
        chrome,
        path: format!("/invitations/{token}"),
        unusable,
        team: invitation.team.clone(),
        role: invitation.role().to_string(),
        addressed_to: describe_address(&invitation),
        signed_in_as,
        account_csrf,
        error,
    };
    Ok((status, jar, render(&page)).into_response())
}

/// `GET /invitations/{token}`: the invitation, and how to accept it.
pub async fn show(
    State(db): State<Database>,
    State(urls): State<Urls>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(token): Path<String>,
) -> PageResult {
    let invitation = find(&db, &token).await?.ok_or_else(unknown_invitation)?;
    page(
        &db,
        &urls,
        &headers,
        jar,
        &token,
        invitation,
        StatusCode::OK,
        None,
    )
    .await
}

/// Records an accepted invitation in the audit log, naming its id.
async fn record_acceptance(audit: &AuditLog, user: i64, invitation: &Invitation, client: &ClientAddr) {
    audit
        .record(NewAuditEntry {
            actor: format!("user:{user}"),
            action: "accept_team_invitation".to_owned(),
            site: None,
            team_id: Some(invitation.team_id),
            target: format!("/invitations/{}", invitation.id),
            ip: Some(client.0.to_string()),
            status: 303,
        })
        .await;
}

/// What accepting did, for people, when it did nothing.
fn refusal(acceptance: Acceptance, invitation: &Invitation) -> AppError {
    match acceptance {
        Acceptance::AddressedToSomeoneElse => forbidden(format!(
            "This invitation is for {}, and none of the accounts you signed in with is theirs. Sign in \
             as them (with GitHub or your organization's sign-in), or ask an owner for an invitation \
             of your own.",
            describe_address(invitation).unwrap_or_default()
        )),
        Acceptance::LoginTaken => {
            AppError::new(StatusCode::CONFLICT, "That login is taken; choose another one.")
        }
        Acceptance::Unusable | Acceptance::Joined { .. } => AppError::new(
            StatusCode::GONE,
            "This invitation was used, revoked or has expired meanwhile. Ask an owner of the team for a \
             new one.",
        ),
    }
}

/// `POST /invitations/{token}`: the signed-in person joins the team.
pub async fn accept(
    State(db): State<Database>,
    State(audit): State<AuditLog>,
    client: ClientAddr,
    session: Session,
    Path(token): Path<String>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let Principal::Member { user } = session.principal else {
        return Err(forbidden(
            "You are signed in as the installation's admin, which is no person and joins no team. Sign \
             out, then sign in (or make an account) as the person invited.",
        )
        .into());
    };
    let invitation = find(&db, &token).await?.ok_or_else(unknown_invitation)?;
    match db.accept_invitation(invitation.id, user).await? {
        Acceptance::Joined { team, role } => {
            tracing::info!(team, user, %role, "invitation accepted");
            record_acceptance(&audit, user, &invitation, &client).await;
            Ok(see_other("/sites"))
        }
        refused => Err(refusal(refused, &invitation).into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub login: String,
    #[serde(default)]
    pub password: String,
}

/// `POST /invitations/{token}/account`: someone without an account makes
/// one (a login and a local password) and joins the team with it, in one
/// step; they are signed in. Only for an invitation addressed to no one:
/// an addressed one is for a person who signs in some other way.
#[allow(clippy::too_many_arguments)]
pub async fn create_account(
    State(auth): State<Auth>,
    State(audit): State<AuditLog>,
    State(urls): State<Urls>,
    client: ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Path(token): Path<String>,
    Form(form): Form<AccountForm>,
) -> PageResult {
    if !anonymous_form_csrf_matches(&jar, &form.csrf) {
        return Err(forbidden(
            "this form was not sent by this invitation's page; open the invitation link again and fill \
             it in there",
        )
        .into());
    }
    let db = &auth.db;
    let invitation = find(db, &token).await?.ok_or_else(unknown_invitation)?;
    if invitation.is_addressed() {
        return Err(refusal(Acceptance::AddressedToSomeoneElse, &invitation).into());
    }
    let login = form.login.trim();
    if let Err(why) = crate::api::teams::validate_name("login", login) {
        return page(
            db,
            &urls,
            &headers,
            jar,
            &token,
            invitation,
            StatusCode::BAD_REQUEST,
            Some(why),
        )
        .await;
    }
    // Hashing a password is slow by design: the sign-in throttle bounds how
    // many run at once, per address and in all.
    let _admitted = auth.sign_in.admit(client.0).map_err(|_| {
        AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many sign-ins are waiting their turn; try again in a few seconds",
        )
    })?;
    let hash = match crate::api::users::hash_new_password(form.password).await {
        Ok(hash) => hash,
        Err(why) => {
            let why = why.message().to_owned();
            return page(
                db,
                &urls,
                &headers,
                jar,
                &token,
                invitation,
                StatusCode::BAD_REQUEST,
                Some(why),
            )
            .await;
        }
    };
    let (user, acceptance) = db
        .accept_invitation_as_new_user(invitation.id, login, &hash)
        .await?;
    match (user, acceptance) {
        (Some(user), Acceptance::Joined { team, role }) => {
            tracing::info!(team, user, %role, "account made from an invitation");
            record_acceptance(&audit, user, &invitation, &client).await;
            let jar = open_session(&auth, &urls, &headers, jar, Some(user)).await?;
            Ok((jar, see_other("/sites")).into_response())
        }
        (_, Acceptance::LoginTaken) => {
            let why = format!("The login `{login}` is taken; choose another one.");
            page(
                db,
                &urls,
                &headers,
                jar,
                &token,
                invitation,
                StatusCode::CONFLICT,
                Some(why),
            )
            .await
        }
        (_, refused) => Err(refusal(refused, &invitation).into()),
    }
}
