//! `GET /api/v1/builds/{id}/log/stream`: a build's log, live, as
//! server-sent events.
//!
//! Every `log` event carries the next piece of the log as text and an id
//! `<attempt>:<byte offset after it>`. A watcher that reconnects sends the
//! last id it saw (`Last-Event-ID`, as browsers do by themselves) and
//! resumes exactly there: nothing is lost or repeated. When a new attempt
//! starts (the first one lost its runner) an `attempt` event announces it
//! and its log follows from its first byte. An `end` event carries the
//! build's final state; then the stream closes. Any number of watchers can
//! follow one build: each reads the stored log, woken whenever a batch
//! lands (and every second, for batches that landed on another controller).

use crate::auth::CanRead;
use crate::builds::Queue;
use crate::db::Database;
use crate::error::{AppResult, not_found};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use jamstack_proto::ErrorBody;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Where to start, as an event id `<attempt>:<offset>`; the
    /// `Last-Event-ID` header wins when both are given.
    pub from: Option<String>,
}

/// Where a watcher is: which attempt, how many bytes of it it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub attempt: i64,
    pub offset: i64,
}

impl Position {
    pub fn parse(id: &str) -> Option<Self> {
        let (attempt, offset) = id.trim().split_once(':')?;
        Some(Position {
            attempt: attempt.parse().ok().filter(|a| *a >= 1)?,
            offset: offset.parse().ok().filter(|o| *o >= 0)?,
        })
    }

    fn id(self) -> String {
        format!("{}:{}", self.attempt, self.offset)
    }
}

/// The longest prefix of `bytes` that does not end inside a UTF-8
/// sequence, so an event never splits a character; the rest waits for the
/// next event.
pub fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        // Invalid bytes (not a cut sequence) are sent as they are, replaced.
        Err(_) => bytes.len(),
    }
}

#[utoipa::path(
    get,
    operation_id = "follow_build_log",
    path = jamstack_proto::routes::api::BUILD_LOG_STREAM,
    tag = "builds",
    params(("id" = i64, Path, description = "The build's id"), StreamQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (`<attempt>:<offset>`)")),
    responses(
        (status = 200, description = "Server-sent events: `log` (text, id `<attempt>:<offset>`), `attempt`, and `end` with the final state", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn stream(
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: CanRead,
    Path(id): Path<i64>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> AppResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let build = db
        .build(id)
        .await?
        .ok_or_else(|| not_found(format!("no build {id}")))?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Position::parse)
        .or_else(|| query.from.as_deref().and_then(Position::parse));
    let start = resume.unwrap_or(Position {
        attempt: build.attempts.max(1),
        offset: 0,
    });
    let events = async_stream::stream! {
        let mut at = start;
        loop {
            let woken = queue.log_activity.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let chunk = match db.read_log(id, at.attempt, at.offset).await {
                Ok(chunk) => chunk,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), build = id, "reading a log for a watcher");
                    break;
                }
            };
            let usable = complete_utf8_prefix(&chunk);
            if usable > 0 {
                at.offset += usable as i64;
                let text = String::from_utf8_lossy(&chunk[..usable]).into_owned();
                yield Ok(Event::default().event("log").id(at.id()).data(text));
                continue;
            }
            let Ok(Some(build)) = db.build(id).await else { break };
            if build.attempts > at.attempt {
                at = Position { attempt: at.attempt + 1, offset: 0 };
                yield Ok(Event::default().event("attempt").id(at.id()).data(at.attempt.to_string()));
                continue;
            }
            if build.state.is_finished() {
                // One more look: the last batch may have landed just now.
                if db.read_log(id, at.attempt, at.offset).await.map(|c| c.is_empty()).unwrap_or(true) {
                    yield Ok(Event::default().event("end").data(build.state.as_str()));
                    break;
                }
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
        }
    };
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_refuse_nonsense() {
        let at = Position {
            attempt: 2,
            offset: 4096,
        };
        assert_eq!(Position::parse(&at.id()), Some(at));
        for bad in ["", "3", "0:5", "a:b", "1:-4"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_never_split_a_character() {
        let text = "héllo".as_bytes();
        assert_eq!(complete_utf8_prefix(text), text.len());
        assert_eq!(complete_utf8_prefix(&text[..2]), 1, "the first byte of é waits");
        assert_eq!(
            complete_utf8_prefix(b"\xff\xfeabc"),
            5,
            "invalid bytes are not held back forever"
        );
    }
}
