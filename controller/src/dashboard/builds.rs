//! A build: its live log, timings by step, attempts, cancel and retry.

use super::sites::took;
use super::{Chrome, CsrfOnly, PageResult, Session, ago, headline, render, see_other, short_sha};
use crate::builds::retry_build;
use crate::db::Build;
use crate::error::not_found;
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};

/// One step of a build and how long it took, from the runner's closing
/// `Timings:` line.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTiming {
    pub step: String,
    pub took: String,
    /// Share of the longest step, for the bar (0–100).
    pub percent: u32,
}

/// Reads the runner's `Timings: fetch 5ms, container setup 70ms, build 1.20s`
/// line (the last one, ANSI colours aside) into steps.
pub fn parse_timings(log: &str) -> Vec<StepTiming> {
    let Some(line) = log
        .lines()
        .rev()
        .find_map(|l| l.split_once("Timings: ").map(|(_, rest)| rest))
    else {
        return Vec::new();
    };
    let steps: Vec<(String, String, f64)> = line
        .split(", ")
        .filter_map(|part| {
            let (step, took) = part.trim().rsplit_once(' ')?;
            // The runner writes `5ms`, `1.40s` or `1m05s`.
            let millis = if let Some(ms) = took.strip_suffix("ms") {
                ms.parse::<f64>().ok()?
            } else if let Some((m, s)) = took.strip_suffix('s')?.split_once('m') {
                m.parse::<f64>().ok()? * 60_000.0 + s.parse::<f64>().ok()? * 1000.0
            } else {
                took.strip_suffix('s')?.parse::<f64>().ok()? * 1000.0
            };
            Some((step.to_owned(), took.to_owned(), millis))
        })
        .collect();
    let longest = steps.iter().map(|s| s.2).fold(0.0, f64::max).max(1.0);
    steps
        .into_iter()
        .map(|(step, took, millis)| StepTiming {
            step,
            took,
            percent: ((millis / longest) * 100.0).round().clamp(1.0, 100.0) as u32,
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
    timings: Vec<StepTiming>,
    attempts: Vec<AttemptRow>,
    deploy_url: Option<String>,
}

async fn find_build(state: &AppState, id: i64) -> PageResult<Build> {
    Ok(state
        .db
        .build(id)
        .await?
        .ok_or_else(|| not_found(format!("there is no build {id}")))?)
}

pub async fn show(State(state): State<AppState>, session: Session, Path(id): Path<i64>) -> PageResult {
    let build = find_build(&state, id).await?;
    let timings = if build.state.is_finished() {
        let log = state.db.read_log(id, build.attempts.max(1), 0).await?;
        parse_timings(&String::from_utf8_lossy(&log))
    } else {
        Vec::new()
    };
    let attempts = state
        .db
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
        Some(deploy) => Some(state.urls.site_url(&format!("{deploy}--{}", build.site))),
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
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    find_build(&state, id).await?;
    state.db.request_cancel(id).await?;
    tracing::info!(build = id, "cancel requested from the dashboard");
    Ok(see_other(format!("/builds/{id}")))
}

/// Builds the same commit of the same branch, in the same context, again.
pub async fn retry(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let build = find_build(&state, id).await?;
    let site = state
        .db
        .site_by_id(build.site_id)
        .await?
        .ok_or_else(|| not_found(format!("the site of build {id} is gone")))?;
    let new_id = retry_build(&state.queue, &site, build).await?;
    Ok(see_other(format!("/builds/{new_id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runners_timings_line_becomes_steps() {
        let log = "building\n\x1b[1;36m==>\x1b[0m Timings: fetch 5ms, container setup 70ms, build 1.40s, upload 140ms\n";
        assert_eq!(parse_timings("Timings: build 1m05s")[0].took, "1m05s");
        let steps = parse_timings(log);
        let names: Vec<_> = steps
            .iter()
            .map(|s| (s.step.as_str(), s.took.as_str(), s.percent))
            .collect();
        assert_eq!(
            names,
            [
                ("fetch", "5ms", 1),
                ("container setup", "70ms", 5),
                ("build", "1.40s", 100),
                ("upload", "140ms", 10)
            ]
        );
        assert!(parse_timings("no timings here\n").is_empty());
    }
}
