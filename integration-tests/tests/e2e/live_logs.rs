//! Following a build's log live over server-sent events.

use crate::helpers::{SiteRepo, TestApp, spawn_app};
use futures_util::StreamExt;
use std::time::Duration;

/// One server-sent event.
#[derive(Debug, Clone, Default)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: String,
}

/// Reads events from a stream until `stop` says enough (or the stream ends).
async fn follow(
    app: &TestApp,
    build: i64,
    last_event_id: Option<&str>,
    mut stop: impl FnMut(&SseEvent) -> bool,
) -> Vec<SseEvent> {
    let mut request = app
        .http
        .get(app.api(&format!("/builds/{build}/log/stream")))
        .bearer_auth(&app.admin_token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(60), body.next()).await {
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = SseEvent::default();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event.event = v.trim_start().to_owned();
                } else if let Some(v) = line.strip_prefix("id:") {
                    event.id = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            if event.event.is_empty() {
                continue; // a keep-alive comment
            }
            event.data = data.join("\n");
            let done = stop(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
    events
}

#[tokio::test]
async fn a_watcher_sees_lines_while_the_build_runs_and_resumes_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let command = "i=0; while [ $i -lt 30 ]; do echo \\\"tick $i\\\"; i=$((i+1)); sleep 0.1; done; \
                   mkdir -p public; echo ok > public/index.html";
    let toml =
        format!("[build]\ncommand = \"{command}\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n");
    let sha = repo.commit(&[("jamstack.toml", &toml)], "ticks");
    app.connect_site("ticker", &repo, "octo/ticker").await;
    let build = app.trigger_build("ticker", &sha).await;

    // The first watcher leaves as soon as it has seen a few ticks.
    let first = follow(&app, build, None, |e| e.data.contains("tick 3")).await;
    let state = app.build(build).await["state"].clone();
    assert_eq!(
        state, "running",
        "the lines arrived while the build was still running"
    );
    let resume_at = first.last().unwrap().id.clone().unwrap();

    // A second watcher follows the whole build from the start meanwhile.
    let whole = follow(&app, build, None, |e| e.event == "end").await;
    // The first one comes back where it left off.
    let rest = follow(&app, build, Some(&resume_at), |e| e.event == "end").await;

    let text = |events: &[SseEvent]| -> String {
        events
            .iter()
            .filter(|e| e.event == "log")
            .map(|e| e.data.clone())
            .collect::<Vec<_>>()
            .join("")
    };
    assert_eq!(rest.last().unwrap().data, "succeeded");
    let stored = app.build_log(build).await;
    assert_eq!(
        format!("{}{}", text(&first), text(&rest)),
        stored,
        "resumed without gap or repeat"
    );
    assert_eq!(text(&whole), stored);
    for i in 0..30 {
        assert_eq!(
            stored.matches(&format!("tick {i}\n")).count(),
            1,
            "tick {i} once:\n{stored}"
        );
    }
}
