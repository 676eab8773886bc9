//! `POST /webhooks/github`: signed deliveries become builds.

use crate::builds::{BuildRequest, queue_build};
use crate::error::{AppResult, bad_request, unauthorized};
use crate::github::{self, GitHubEvent, signature};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jamstack_proto::BuildContext;
use serde::Serialize;

/// GitHub caps payloads at 25 MB; larger bodies are refused before reading.
pub const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;

/// What the controller did with a delivery; GitHub shows it in the
/// webhook's "Recent deliveries" view.
#[derive(Debug, Serialize)]
pub struct DeliveryOutcome {
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<i64>,
    pub message: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(StatusCode, Json<DeliveryOutcome>)> {
    signature::verify(
        state.webhook_secret.as_bytes(),
        header(&headers, "x-hub-signature-256"),
        &body,
    )
    .map_err(|e| unauthorized(e.to_string()))?;
    let event =
        header(&headers, "x-github-event").ok_or_else(|| bad_request("missing X-GitHub-Event header"))?;
    let delivery = header(&headers, "x-github-delivery").unwrap_or("-");
    let event = github::parse_event(event, &body).map_err(|e| bad_request(e.to_string()))?;
    tracing::info!(delivery, ?event, "webhook received");
    let outcome = match event {
        GitHubEvent::Ping => ignored("pong"),
        GitHubEvent::Other(name) => ignored(&format!("`{name}` events are accepted and not acted on")),
        GitHubEvent::Push(push) => on_push(&state, push).await?,
    };
    let status = if outcome.builds.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(outcome)))
}

fn ignored(message: &str) -> DeliveryOutcome {
    DeliveryOutcome {
        outcome: "ignored",
        builds: Vec::new(),
        message: message.to_owned(),
    }
}

async fn on_push(state: &AppState, push: github::PushEvent) -> AppResult<DeliveryOutcome> {
    let Some(branch) = push.branch() else {
        return Ok(ignored(&format!("`{}` is not a branch", push.git_ref)));
    };
    if push.deleted {
        return Ok(ignored(&format!("branch `{branch}` was deleted")));
    }
    let sites = state.db.sites_for_github_repo(&push.repository).await?;
    if sites.is_empty() {
        return Ok(ignored(&format!(
            "no site is connected to `{}`; connect one with POST /api/v1/sites",
            push.repository
        )));
    }
    let mut builds = Vec::new();
    for site in sites.iter().filter(|s| s.production_branch == branch) {
        let build_id = queue_build(
            state,
            site,
            BuildRequest {
                pr_number: None,
                context: BuildContext::Production,
                branch: branch.to_owned(),
                commit_sha: push.after.clone(),
                commit_message: push.head_commit_message.clone(),
                author: push.head_commit_author.clone(),
                trigger: "webhook",
            },
        )
        .await?;
        builds.push(build_id);
    }
    if builds.is_empty() {
        return Ok(ignored(&format!(
            "`{branch}` is not the production branch of any site of `{}`",
            push.repository
        )));
    }
    Ok(DeliveryOutcome {
        outcome: "queued",
        message: format!(
            "queued {} build(s) of {}",
            builds.len(),
            &push.after[..push.after.len().min(7)]
        ),
        builds,
    })
}
