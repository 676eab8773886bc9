//! The Team pages: the teams a person belongs to, and one team's members
//! and roles. Its owners change roles, remove members (never the last
//! owner), invite people by link and revoke pending invitations — the
//! same operations as the API's `teams` and `invitations`.

use super::{Chrome, CsrfOnly, PageResult, Session, ago, render, see_other};
use crate::api::invitations::{CreatedInvitation, check_invitation, invite};
use crate::api::teams::team_id;
use crate::auth::{Permission, Principal, role_grants};
use crate::db::{Database, MembershipChange, Role};
use crate::error::{AppError, bad_request, conflict, not_found};
use crate::urls::Urls;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use serde::Deserialize;

pub struct TeamRow {
    pub name: String,
    /// The person's role there (empty for the installation's admin).
    pub role: String,
}

#[derive(Template)]
#[template(path = "dashboard/teams.html")]
struct TeamsPage {
    chrome: Chrome,
    teams: Vec<TeamRow>,
}

/// `GET /teams`: the teams of the person signed in (every team for the
/// installation's admin).
pub async fn list(State(db): State<Database>, session: Session) -> PageResult {
    let user = match session.principal {
        Principal::Member { user } => Some(user),
        _ => None,
    };
    let teams = db
        .team_roles(user)
        .await?
        .into_iter()
        .map(|(name, role)| TeamRow {
            name,
            role: role.map(|r| r.to_string()).unwrap_or_default(),
        })
        .collect();
    Ok(render(&TeamsPage {
        chrome: Chrome::new(&session, "teams"),
        teams,
    }))
}

pub struct MemberRow {
    pub login: String,
    pub role: String,
}

pub struct InvitationRow {
    pub id: i64,
    pub role: String,
    /// `GitHub octocat`, `ana@example.com`, or `anyone with the link`.
    pub for_whom: String,
    pub made: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "dashboard/team.html")]
struct TeamPage {
    chrome: Chrome,
    team: String,
    members: Vec<MemberRow>,
    /// The person may change members and invite (an owner, or the admin).
    manages: bool,
    invitations: Vec<InvitationRow>,
    /// The link of an invitation just made: shown on this page only.
    new_link: Option<String>,
    roles: Vec<&'static str>,
}

/// "in 6 d", "in 5 h", "in 12 min".
fn from_now(at_millis: i64) -> String {
    let seconds = (at_millis - crate::db::now_millis()).max(0) / 1000;
    match seconds {
        0..=3599 => format!("in {} min", seconds / 60),
        3600..=86_399 => format!("in {} h", seconds / 3600),
        _ => format!("in {} d", seconds / 86_400),
    }
}

async fn page(db: &Database, session: &Session, team: &str, new_link: Option<String>) -> PageResult {
    let id = team_id(db, team).await?;
    let manages = match session.principal {
        Principal::Member { user } => db
            .role_on_team(user, id)
            .await?
            .is_some_and(|role| role_grants(role, Permission::TeamMembers)),
        _ => session.is_installation(),
    };
    let members = db
        .team_members(id)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            login: m.login,
            role: m.role.to_string(),
        })
        .collect();
    let invitations = if manages {
        db.pending_invitations(id)
            .await?
            .into_iter()
            .map(|i| InvitationRow {
                id: i.id,
                role: i.role().to_string(),
                for_whom: match (&i.github_login, &i.email) {
                    (Some(login), _) => format!("GitHub {login}"),
                    (None, Some(email)) => email.clone(),
                    (None, None) => "anyone with the link".to_owned(),
                },
                made: ago(i.created_at),
                expires: from_now(i.expires_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(render(&TeamPage {
        chrome: Chrome::new(session, "teams"),
        team: team.to_owned(),
        members,
        manages,
        invitations,
        new_link,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
    }))
}

/// `GET /teams/{team}`: the members and, for owners, the invitations.
pub async fn show(State(db): State<Database>, session: Session, Path(team): Path<String>) -> PageResult {
    page(&db, &session, &team, None).await
}

#[derive(Debug, Default, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub role: String,
}

fn last_owner() -> AppError {
    conflict(
        "That would leave the team without an owner, so nothing was changed. Make another member owner \
         first.",
    )
}

/// The role a form chose, or a 400 naming the roles there are.
fn role_of(chosen: &str) -> Result<Role, AppError> {
    Role::parse(chosen).ok_or_else(|| {
        bad_request(format!(
            "`{chosen}` is not a role: choose owner, admin, developer or viewer"
        ))
    })
}

/// `POST /teams/{team}/members/{login}/role`: changes a member's role.
pub async fn set_role(
    State(db): State<Database>,
    session: Session,
    Path((team, login)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let role = role_of(&form.role)?;
    let id = team_id(&db, &team).await?;
    let user = member(&db, id, &team, &login).await?;
    match db.set_member_role(id, user, role).await? {
        MembershipChange::LastOwner => Err(last_owner().into()),
        _ => Ok(see_other(format!("/teams/{team}"))),
    }
}

/// A member of the team by login; 404 naming both otherwise (a role form
/// never adds someone).
async fn member(db: &Database, team_id: i64, team: &str, login: &str) -> Result<i64, AppError> {
    let user = db.user_by_login(login).await?;
    match user {
        Some(user) if db.role_on_team(user.id, team_id).await?.is_some() => Ok(user.id),
        _ => Err(not_found(format!("`{login}` is not a member of `{team}`"))),
    }
}

/// `POST /teams/{team}/members/{login}/remove`: removes a member (and
/// their tokens on the team).
pub async fn remove_member(
    State(db): State<Database>,
    session: Session,
    Path((team, login)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let id = team_id(&db, &team).await?;
    let user = member(&db, id, &team, &login).await?;
    match db.remove_member(id, user).await? {
        MembershipChange::Done => Ok(see_other(format!("/teams/{team}"))),
        MembershipChange::NotAMember => {
            Err(not_found(format!("`{login}` is not a member of `{team}`")).into())
        }
        MembershipChange::LastOwner => Err(last_owner().into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub github_login: String,
    #[serde(default)]
    pub email: String,
}

/// `POST /teams/{team}/invitations`: makes an invitation and shows its
/// link on the page, this once.
pub async fn invite_someone(
    State(db): State<Database>,
    State(urls): State<Urls>,
    session: Session,
    Path(team): Path<String>,
    Form(form): Form<InviteForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let role = role_of(&form.role)?;
    let checked = check_invitation(
        role,
        Some(form.github_login.as_str()),
        Some(form.email.as_str()),
        None,
    )
    .map_err(bad_request)?;
    let id = team_id(&db, &team).await?;
    let invited_by = match session.principal {
        Principal::Member { user } => format!("user:{user}"),
        _ => "admin".to_owned(),
    };
    let CreatedInvitation { link, .. } = invite(&db, &urls, id, &invited_by, checked).await?;
    page(&db, &session, &team, Some(link)).await
}

/// `POST /teams/{team}/invitations/{id}/revoke`.
pub async fn revoke_invitation(
    State(db): State<Database>,
    session: Session,
    Path((team, invitation)): Path<(String, i64)>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let id = team_id(&db, &team).await?;
    if !db.revoke_invitation(id, invitation).await? {
        return Err(not_found(format!("`{team}` has no pending invitation {invitation}")).into());
    }
    Ok(see_other(format!("/teams/{team}")))
}

/// Entries one page of the team's audit log shows.
const AUDIT_PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// A member's login, or an actor as the log writes it (`admin`,
    /// `token:7`, `webhook:github`, `schedule:3`).
    #[serde(default)]
    pub who: String,
    /// An operation, e.g. `lock_site`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub site: String,
    /// 1 for the newest page.
    #[serde(default)]
    pub page: Option<i64>,
}

pub struct AuditRow {
    pub when: String,
    /// Unix milliseconds, for the page's `datetime`.
    pub at: i64,
    /// The member's login for `user:<id>`, the actor as written otherwise.
    pub who: String,
    pub action: String,
    pub site: String,
    pub target: String,
    pub ip: String,
    pub status: i64,
}

#[derive(Template)]
#[template(path = "dashboard/team_audit.html")]
struct AuditPage {
    chrome: Chrome,
    team: String,
    rows: Vec<AuditRow>,
    who: String,
    action: String,
    site: String,
    page: i64,
    /// The query string of the next (older) page, when there is one.
    older: Option<String>,
    /// The query string of the previous (newer) page, when there is one.
    newer: Option<String>,
}

/// `GET /teams/{team}/audit`: who changed what on the team and its sites,
/// newest first, filtered by who, what and which site (the team's owners,
/// as the API's `list_team_audit_log`).
pub async fn audit(
    State(db): State<Database>,
    session: Session,
    Path(team): Path<String>,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> PageResult {
    let id = team_id(&db, &team).await?;
    let who = query.who.trim().to_owned();
    // A login is looked up; anything else is taken as the log writes it.
    let actor = if who.is_empty() {
        None
    } else {
        match db.user_by_login(&who).await? {
            Some(user) => Some(format!("user:{}", user.id)),
            None => Some(who.clone()),
        }
    };
    let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let filter = crate::db::AuditFilter {
        actor,
        action: nonempty(&query.action),
        site: nonempty(&query.site),
        team: Some(id),
        since: None,
        until: None,
    };
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    // One more than shown: whether an older page exists.
    let mut entries = db
        .audit_page(&filter, AUDIT_PAGE_SIZE + 1, (page - 1) * AUDIT_PAGE_SIZE)
        .await?;
    let has_older = entries.len() as i64 > AUDIT_PAGE_SIZE;
    entries.truncate(AUDIT_PAGE_SIZE as usize);
    let mut logins = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let who = match entry
            .actor
            .strip_prefix("user:")
            .and_then(|id| id.parse::<i64>().ok())
        {
            Some(user) => {
                let login = match logins.entry(user) {
                    std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                    std::collections::hash_map::Entry::Vacant(first) => {
                        first.insert(db.user_by_id(user).await?.map(|u| u.login))
                    }
                };
                login.clone().unwrap_or_else(|| entry.actor.clone())
            }
            None => entry.actor.clone(),
        };
        rows.push(AuditRow {
            when: ago(entry.at),
            at: entry.at,
            who,
            action: entry.action,
            site: entry.site.unwrap_or_default(),
            target: entry.target,
            ip: entry.ip.unwrap_or_default(),
            status: entry.status,
        });
    }
    let query_of = |page: i64| {
        serde_urlencoded::to_string([
            ("who", query.who.as_str()),
            ("action", query.action.as_str()),
            ("site", query.site.as_str()),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default()
    };
    Ok(render(&AuditPage {
        chrome: Chrome::new(&session, "teams"),
        team,
        rows,
        who: query.who.clone(),
        action: query.action.clone(),
        site: query.site.clone(),
        page,
        older: has_older.then(|| query_of(page + 1)),
        newer: (page > 1).then(|| query_of(page - 1)),
    }))
}
