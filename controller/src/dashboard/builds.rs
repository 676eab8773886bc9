//! A build: its live log, timings by step, attempts, cancel and retry.

use super::sites::took;
use super::{Chrome, CsrfOnly, PageResult, Session, ago, duration, headline, render, see_other, short_sha};
use crate::builds::{Queue, retry_build};
use crate::config::Config;
use crate::db::{Build, Database};
use crate::error::not_found;
use crate::urls::Urls;
use crate::waiting::{Thresholds, explain_builds};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use jamstack_proto::StepTiming;
use std::sync::Arc;

/// One step of a build, how long it took and its bar.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub step: String,
    pub took: String,
    /// Share of the longest step, for the bar (1–100).
    pub percent: u32,
}

/// The steps the build's runner reported with its outcome, as rows.
pub fn step_rows(steps: &[StepTiming]) -> Vec<StepRow> {
    let longest = steps.iter().map(|s| s.millis).max().unwrap_or(0).max(1);
    steps
        .iter()
        .map(|s| StepRow {
            step: s.name.clone(),
            took: duration(i64::try_from(s.millis).unwrap_or(i64::MAX)),
            percent: (s.millis.saturating_mul(100) as f64 / longest as f64)
                .round()
                .clamp(1.0, 100.0) as u32,
        })
        .collect()
}

pub struct AttemptRow {
    pub attempt: i64,
    pub runner: String,
    pub when: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "dashboard/build.html")]
struct BuildPage {
    chrome: Chrome,
    build: Build,
    sha: String,
    message: String,
    when: String,
    took: String,
    timings: Vec<StepRow>,
    attempts: Vec<AttemptRow>,
    deploy_url: Option<String>,
}

async fn find_build(db: &Database, id: i64) -> PageResult<Build> {
    Ok(db
        .build(id)
        .await?
        .ok_or_else(|| not_found(format!("there is no build {id}")))?)
}

pub async fn show(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    State(urls): State<Urls>,
    session: Session,
    Path(id): Path<i64>,
) -> PageResult {
    let mut build = [find_build(&db, id).await?];
    explain_builds(&db, Thresholds::of(&config), &mut build).await?;
    let [build] = build;
    let timings = step_rows(&build.step_timings);
    let attempts = db
        .attempts(id)
        .await?
        .into_iter()
        .map(|a| AttemptRow {
            attempt: a.attempt,
            runner: a.runner,
            when: ago(a.started_at),
            outcome: a.outcome.unwrap_or_else(|| "running".to_owned()),
        })
        .collect();
    let deploy_url = match &build.deploy_id {
        Some(deploy) => Some(urls.site_url(&format!("{deploy}--{}", build.site))),
        None => None,
    };
    Ok(render(&BuildPage {
        chrome: Chrome::new(&session, "sites"),
        sha: short_sha(&build.commit_sha),
        message: headline(build.commit_message.as_deref()),
        when: ago(build.created_at),
        took: took(&build),
        timings,
        attempts,
        deploy_url,
        build,
    }))
}

pub async fn cancel(
    State(db): State<Database>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    find_build(&db, id).await?;
    db.request_cancel(id).await?;
    tracing::info!(build = id, "cancel requested from the dashboard");
    Ok(see_other(format!("/builds/{id}")))
}

/// Builds the same commit of the same branch, in the same context, again.
pub async fn retry(
    State(db): State<Database>,
    State(queue): State<Queue>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let build = find_build(&db, id).await?;
    let site = db
        .site_by_id(build.site_id)
        .await?
        .ok_or_else(|| not_found(format!("the site of build {id} is gone")))?;
    let new_id = retry_build(&queue, &site, build).await?;
    Ok(see_other(format!("/builds/{new_id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_steps_become_rows_with_bars_relative_to_the_longest() {
        let step = |name: &str, millis| StepTiming {
            name: name.into(),
            millis,
        };
        let rows = step_rows(&[
            step("fetch", 5),
            step("container setup", 70),
            step("build", 1400),
            step("upload", 140),
        ]);
        let rows: Vec<_> = rows
            .iter()
            .map(|r| (r.step.as_str(), r.took.as_str(), r.percent))
            .collect();
        assert_eq!(
            rows,
            [
                ("fetch", "5ms", 1),
                ("container setup", "70ms", 5),
                ("build", "1.40s", 100),
                ("upload", "140ms", 10)
            ]
        );
        assert_eq!(step_rows(&[step("build", 0)])[0].percent, 1);
        assert!(step_rows(&[]).is_empty());
    }
}
