//! A team's own settings: `GET`/`PUT /api/v1/teams/{team}/settings`. Its
//! owners set them; every member reads them.

use super::teams::team_id;
use crate::db::{AutoMembership, Database};
use crate::error::{AppResult, bad_request};
use axum::Json;
use axum::extract::{Path, State};
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};

/// The highest per-team limit of concurrent builds one may set.
pub const MAX_TEAM_BUILDS: i64 = 10_000;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSettings {
    /// Builds the team's sites may run at once, all together; a job past
    /// it waits in the queue until one of them ends. 0: no limit.
    pub max_concurrent_builds: i64,
    /// Who becomes a member on signing in: each rule names a source (a
    /// GitHub organization `github-org:<org>`, a GitHub team
    /// `github-team:<org>/<team-slug>`, or an OpenID Connect group
    /// `oidc-group:<name>`) and the role it gives. A membership a rule made
    /// ends at the holder's next sign-in that no longer shows the source.
    /// Left out of a change: the rules stay as they are; given: they are
    /// replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_memberships: Option<Vec<AutoMembership>>,
}

/// The most automatic-membership rules a team may have.
pub const MAX_AUTO_MEMBERSHIPS: usize = 100;

/// Why `source` is not a source sign-in can show, if it is not.
pub fn source_problem(source: &str) -> Option<String> {
    let name_fits = |name: &str, extra: &[char]| {
        !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || extra.contains(&c))
    };
    let fits = if let Some(org) = source.strip_prefix("github-org:") {
        name_fits(org, &[])
    } else if let Some(team) = source.strip_prefix("github-team:") {
        team.split_once('/')
            .is_some_and(|(org, slug)| name_fits(org, &[]) && name_fits(slug, &[]))
    } else if let Some(group) = source.strip_prefix("oidc-group:") {
        name_fits(group, &['/', ':', '@', ' '])
    } else {
        false
    };
    (!fits).then(|| {
        format!(
            "`{source}` is not a membership source: use `github-org:<org>`, \
             `github-team:<org>/<team-slug>` or `oidc-group:<group>` (up to 100 letters, digits, \
             `-`, `_`, `.`; a group may also hold `/`, `:`, `@` and spaces)"
        )
    })
}

/// The team's settings.
#[utoipa::path(
    get,
    operation_id = "show_team_settings",
    path = jamstack_proto::routes::api::TEAM_SETTINGS,
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    responses((status = 200, description = "The team's settings", body = TeamSettings)),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("team.read")))
)]
pub async fn show(State(db): State<Database>, Path(team): Path<String>) -> AppResult<Json<TeamSettings>> {
    let team = team_id(&db, &team).await?;
    Ok(Json(TeamSettings {
        max_concurrent_builds: db.team_build_limit(team).await?,
        auto_memberships: Some(db.auto_memberships(team).await?),
    }))
}

/// Changes the team's settings; its owners only.
#[utoipa::path(
    put,
    operation_id = "update_team_settings",
    path = jamstack_proto::routes::api::TEAM_SETTINGS,
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    request_body = TeamSettings,
    responses(
        (status = 200, description = "The team's settings as stored", body = TeamSettings),
        (status = 400, description = "A limit out of range or a rule that cannot match", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn update(
    State(db): State<Database>,
    State(queue): State<crate::builds::Queue>,
    Path(team): Path<String>,
    Json(body): Json<TeamSettings>,
) -> AppResult<Json<TeamSettings>> {
    if !(0..=MAX_TEAM_BUILDS).contains(&body.max_concurrent_builds) {
        return Err(bad_request(format!(
            "`max_concurrent_builds` is {}; it must be 0 (no limit) to {MAX_TEAM_BUILDS}",
            body.max_concurrent_builds
        )));
    }
    if let Some(rules) = &body.auto_memberships {
        if rules.len() > MAX_AUTO_MEMBERSHIPS {
            return Err(bad_request(format!(
                "{} automatic-membership rules; a team may have at most {MAX_AUTO_MEMBERSHIPS}",
                rules.len()
            )));
        }
        if let Some(problem) = rules.iter().find_map(|rule| source_problem(&rule.source)) {
            return Err(bad_request(problem));
        }
    }
    let team_id = team_id(&db, &team).await?;
    db.set_team_build_limit(team_id, body.max_concurrent_builds)
        .await?;
    tracing::info!(team = %team, limit = body.max_concurrent_builds, "team build limit set");
    // A higher limit may let waiting jobs start now.
    queue.jobs_available.notify_waiters();
    if let Some(rules) = &body.auto_memberships {
        for old in db.auto_memberships(team_id).await? {
            if !rules.iter().any(|rule| rule.source == old.source) {
                db.delete_auto_membership(team_id, &old.source).await?;
            }
        }
        for rule in rules {
            db.set_auto_membership(team_id, &rule.source, rule.role).await?;
        }
    }
    Ok(Json(TeamSettings {
        max_concurrent_builds: body.max_concurrent_builds,
        auto_memberships: Some(db.auto_memberships(team_id).await?),
    }))
}
