//! One deploy: what changed against the published deploy, and what it
//! would serve for a path typed in.

use super::sites::size;
use super::{Chrome, PageResult, Session, render, short_sha};
use crate::api::find_site;
use crate::db::Database;
use crate::deploys::{FileChange, diff_deploys};
use crate::edge::{Description, Edge, Route, describe};
use crate::error::not_found;
use crate::urls::Urls;
use askama::Template;
use axum::extract::{Path, Query, State};
use jamstack_rules::MatchedRule;
use serde::Deserialize;

pub struct ChangeRow {
    pub kind: &'static str,
    pub path: String,
    pub size: String,
}

/// What a path would be answered with, for people.
pub struct PathCheck {
    pub path: String,
    /// The hostname the answer is described for.
    pub host: String,
    pub status: u16,
    pub answer: String,
    /// The redirect rule that decided, if one did.
    pub rule: Option<MatchedRule>,
    pub header_rules: Vec<MatchedRule>,
    pub headers: Vec<(String, String)>,
}

impl PathCheck {
    fn refused(path: String, host: String) -> Self {
        PathCheck {
            path,
            host,
            status: 400,
            answer: "refused: the path leaves the deploy, has control characters or is not a URL path \
                     (write spaces as %20)"
                .to_owned(),
            rule: None,
            header_rules: Vec::new(),
            headers: Vec::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/deploy.html")]
struct DeployPage {
    chrome: Chrome,
    site: String,
    id: String,
    sha: String,
    context: String,
    branch: String,
    state: String,
    published: bool,
    /// The deploy compared against: the published one.
    against: Option<String>,
    changes: Vec<ChangeRow>,
    files: i64,
    permalink: String,
    check: Option<PathCheck>,
}

#[derive(Debug, Deserialize)]
pub struct DeployQuery {
    /// A path to resolve, e.g. `/docs`.
    pub path: Option<String>,
}

pub async fn show(
    State(db): State<Database>,
    State(edge): State<Edge>,
    State(urls): State<Urls>,
    session: Session,
    Path((name, deploy_id)): Path<(String, String)>,
    Query(query): Query<DeployQuery>,
) -> PageResult {
    let site = find_site(&db, &name).await?;
    let deploy = db
        .deploy(&deploy_id)
        .await?
        .filter(|d| d.site_id == site.id)
        .ok_or_else(|| not_found(format!("site `{name}` has no deploy `{deploy_id}`")))?;
    let published = site.published_deploy_id.as_deref() == Some(deploy.id.as_str());
    let against = site.published_deploy_id.clone().filter(|_| !published);
    let changes = match &against {
        Some(live) => diff_deploys(&db, Some(live), &deploy.id)
            .await?
            .into_iter()
            .map(|change| match change {
                FileChange::Added { path, size: s } => ChangeRow {
                    kind: "added",
                    path,
                    size: size(s),
                },
                FileChange::Changed {
                    path,
                    old_size,
                    size: s,
                } => ChangeRow {
                    kind: "changed",
                    path,
                    size: format!("{} → {}", size(old_size), size(s)),
                },
                FileChange::Removed { path, old_size } => ChangeRow {
                    kind: "removed",
                    path,
                    size: size(old_size),
                },
            })
            .collect(),
        None => Vec::new(),
    };
    let check = match query.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(raw) => {
            let raw = if raw.starts_with('/') {
                raw.to_owned()
            } else {
                format!("/{raw}")
            };
            // The published deploy is described as its site's hostname serves
            // it; any other deploy as its permalink does.
            let label = if published {
                site.name.clone()
            } else {
                format!("{}--{}", deploy.id, site.name)
            };
            let host = format!("{label}.{}", urls.domain);
            Some(
                match describe(&edge, &deploy.id, !published, &host, &raw).await? {
                    Description::BadPath => PathCheck::refused(raw, host),
                    Description::Answer(described) => {
                        let answer = match &described.route {
                            Route::File { path, .. } => format!(
                                "serves {path} ({})",
                                size(described.file_size.unwrap_or_default() as i64)
                            ),
                            Route::Redirect { location, .. } => format!("redirects to {location}"),
                            Route::Proxy { url, .. } => format!("proxies to {url}"),
                            Route::Plain(_) => "a plain “not found”: no such file and no 404.html".to_owned(),
                        };
                        PathCheck {
                            path: raw,
                            host,
                            status: described.status.as_u16(),
                            answer,
                            rule: described.rule,
                            header_rules: described.header_rules,
                            headers: described.headers,
                        }
                    }
                },
            )
        }
    };
    Ok(render(&DeployPage {
        chrome: Chrome::new(&session, "sites"),
        site: site.name.clone(),
        sha: short_sha(&deploy.commit_sha),
        context: deploy.context.clone(),
        branch: deploy.branch.clone(),
        state: deploy.state.clone(),
        published,
        against,
        changes,
        files: deploy.file_count,
        permalink: urls.site_url(&format!("{}--{}", deploy.id, site.name)),
        check,
        id: deploy.id,
    }))
}
