//! `jamstack builds …`: trigger, list, show, logs (with `--follow`),
//! cancel, retry.

use crate::args::BuildsCommand;
use crate::client::Api;
use crate::error::{CliError, CliResult, Exit};
use crate::output::{ago, print_fields, print_json, print_table, short_sha, text};
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt;
use jamstack_proto::routes;
use reqwest::Method;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

pub async fn run(api: &Api, json: bool, command: BuildsCommand) -> CliResult {
    match command {
        BuildsCommand::Trigger {
            site,
            branch,
            sha,
            wait,
        } => {
            let mut body = json!({});
            if let Some(branch) = branch {
                body["branch"] = json!(branch);
            }
            if let Some(sha) = sha {
                body["commit_sha"] = json!(sha);
            }
            let build = api.post(&routes::api::site_builds(&site), &body).await?;
            let id = build_id(&build)?;
            if !wait {
                if json {
                    print_json(&build);
                } else {
                    println!(
                        "Queued build {id} of {site} ({} {})",
                        text(&build, "context"),
                        text(&build, "branch")
                    );
                    println!("Follow it with `jamstack builds logs {id} --follow`");
                }
                return Ok(());
            }
            if !json {
                eprintln!("Queued build {id} of {site}; following its log");
            }
            let state = if json {
                follow_log(api, id, &mut std::io::sink()).await?
            } else {
                follow_log(api, id, &mut std::io::stdout()).await?
            };
            if json {
                print_json(&api.get(&routes::api::build(id)).await?);
            }
            ended(id, &state)?;
        }
        BuildsCommand::List { site, limit } => {
            let builds = api.list(&routes::api::site_builds(&site), Some(limit)).await?;
            if json {
                print_json(&Value::Array(builds));
            } else {
                print_table(
                    ["ID", "STATE", "CONTEXT", "BRANCH", "COMMIT", "TRIGGER", "CREATED"],
                    &builds,
                    |b| {
                        [
                            text(b, "id"),
                            text(b, "state"),
                            text(b, "context"),
                            text(b, "branch"),
                            short_sha(b, "commit_sha"),
                            text(b, "trigger"),
                            ago(b, "created_at"),
                        ]
                    },
                );
            }
        }
        BuildsCommand::Show { id } => {
            let build = api.get(&routes::api::build(id)).await?;
            if json {
                print_json(&build);
            } else {
                print_build(&build);
            }
        }
        BuildsCommand::Logs { id, follow } => {
            if follow {
                let state = follow_log(api, id, &mut std::io::stdout()).await?;
                ended(id, &state)?;
            } else {
                let response = api
                    .send(api.request(Method::GET, &routes::api::build_log(id)))
                    .await?;
                let log = response.bytes().await.map_err(|e| api.unreachable(e))?;
                std::io::stdout().write_all(&log)?;
            }
        }
        BuildsCommand::Cancel { id } => {
            let build = api.post(&routes::api::build_cancel(id), &json!({})).await?;
            if json {
                print_json(&build);
            } else {
                match build.get("state").and_then(Value::as_str) {
                    Some("running") => println!(
                        "Asked the runner to stop build {id}; `jamstack builds logs {id} --follow` shows when it has"
                    ),
                    _ => println!("Build {id} is {}", text(&build, "state")),
                }
            }
        }
        BuildsCommand::Retry { id } => {
            let build = api.post(&routes::api::build_retry(id), &json!({})).await?;
            if json {
                print_json(&build);
            } else {
                let new_id = build_id(&build)?;
                println!("Queued build {new_id}, a retry of build {id}");
                println!("Follow it with `jamstack builds logs {new_id} --follow`");
            }
        }
    }
    Ok(())
}

fn build_id(build: &Value) -> CliResult<i64> {
    build
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| CliError::error(format!("the controller's answer names no build id: {build}")))
}

fn print_build(build: &Value) {
    let mut fields = vec![
        ("id", text(build, "id")),
        ("site", text(build, "site")),
        ("state", text(build, "state")),
        ("context", text(build, "context")),
        ("branch", text(build, "branch")),
        ("commit", text(build, "commit_sha")),
        ("message", text(build, "commit_message")),
        ("trigger", text(build, "trigger")),
        ("reason", text(build, "trigger_title")),
        ("deploy", text(build, "deploy_id")),
        ("attempts", text(build, "attempts")),
        ("created", ago(build, "created_at")),
        ("finished", ago(build, "finished_at")),
    ];
    for (label, field) in [
        ("exit code", "exit_code"),
        ("error", "error"),
        ("skipped because", "skip_reason"),
    ] {
        if build.get(field).is_some_and(|v| !v.is_null()) {
            fields.push((label, text(build, field)));
        }
    }
    print_fields(&fields);
}

/// The exit for a build that ended in `state`: failed and cancelled builds
/// end the command with exit code 5.
pub fn ended(id: i64, state: &str) -> CliResult {
    match state {
        "succeeded" | "skipped" => {
            eprintln!("Build {id} {state}");
            Ok(())
        }
        _ => Err(CliError::new(
            Exit::BuildFailed,
            format!("build {id} {state}; see `jamstack builds show {id}` for why"),
        )),
    }
}

/// How often a dropped log stream is reopened before giving up.
const RECONNECTS: u32 = 10;

/// Streams a build's log into `out` until the build ends; returns its final
/// state. A dropped connection is reopened where it broke off
/// (`Last-Event-ID`), so nothing is printed twice or lost.
pub async fn follow_log(api: &Api, id: i64, out: &mut dyn Write) -> CliResult<String> {
    let mut last_event_id: Option<String> = None;
    let mut failures = 0;
    loop {
        let mut request = api
            .request(Method::GET, &routes::api::build_log_stream(id))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(event_id) = &last_event_id {
            request = request.header("last-event-id", event_id);
        }
        let broke_off = match request.send().await {
            Ok(response) if response.status().is_success() => {
                let mut events = response.bytes_stream().eventsource();
                loop {
                    match events.next().await {
                        Some(Ok(event)) => {
                            failures = 0;
                            if !event.id.is_empty() {
                                last_event_id = Some(event.id);
                            }
                            match event.event.as_str() {
                                "log" => {
                                    out.write_all(event.data.as_bytes())?;
                                    out.flush()?;
                                }
                                "attempt" => {
                                    eprintln!(
                                        "--- attempt {} (the previous one lost its runner) ---",
                                        event.data
                                    );
                                }
                                "end" => return Ok(event.data),
                                _ => {}
                            }
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "the controller closed the stream".to_owned(),
                    }
                }
            }
            Ok(response) => return Err(crate::client::refusal(response).await),
            Err(e) => e.to_string(),
        };
        failures += 1;
        if failures > RECONNECTS {
            return Err(CliError::error(format!(
                "lost the log stream of build {id} ({broke_off}) and could not reopen it; \
                 run `jamstack builds logs {id} --follow` again"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.min(4)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The controller's stream as `follow_log` reads it: events cut
    /// anywhere by the network are put back together, keep-alive comments
    /// are skipped, and a `log` event keeps its lines' newlines.
    #[tokio::test]
    async fn log_events_cut_anywhere_are_put_back_together() {
        let stream: &[u8] =
            b"event: log\nid: 1:12\ndata: line one\ndata: line two\ndata: \n\n:keep-alive\n\n\
                              event: end\r\ndata: failed\r\n\r\n";
        for cut in 1..stream.len() {
            let chunks = [&stream[..cut], &stream[cut..]].map(Ok::<_, std::convert::Infallible>);
            let events: Vec<_> = futures_util::stream::iter(chunks)
                .eventsource()
                .map(|event| {
                    let event = event.unwrap();
                    (event.event, event.data, event.id)
                })
                .collect()
                .await;
            assert_eq!(
                events,
                [
                    ("log".into(), "line one\nline two\n".into(), "1:12".into()),
                    ("end".into(), "failed".into(), "1:12".into()),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn only_failed_and_cancelled_builds_end_with_exit_code_5() {
        assert!(ended(1, "succeeded").is_ok());
        assert!(ended(1, "skipped").is_ok());
        assert_eq!(ended(1, "failed").unwrap_err().exit, Exit::BuildFailed);
        assert_eq!(ended(1, "cancelled").unwrap_err().exit, Exit::BuildFailed);
    }
}
