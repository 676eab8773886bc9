//! What happened, for whoever listens: build state changes and hostnames
//! taken down, broadcast inside the controller.
//!
//! The code that changes a build's state publishes an [`Event`] after the
//! change is stored; listeners (the GitHub reporter, notifications,
//! metrics) subscribe and read what they need from the database. Where the
//! publisher already knows when the build was queued, started or ended, the
//! event carries it ([`BuildTiming`]), so a busy queue does not cost every
//! listener a read of every build. Publishing never waits for a listener
//! and never fails: a listener that falls behind is told how many events it
//! missed and catches up from the database.

use crate::db::BuildState;
use tokio::sync::broadcast;

/// How many events a slow listener may fall behind before it misses some.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A build was queued, started, or ended in `state`.
    Build {
        build_id: i64,
        site_id: i64,
        state: BuildState,
        /// When it was queued, started or ended, if the publisher knew.
        timing: Option<BuildTiming>,
    },
    /// A preview or branch hostname (`<alias>--<site>`) was taken down: its
    /// pull request closed or its branch was deleted.
    AliasRemoved { site_id: i64, alias: String },
}

/// The times of a build that a state change fixed, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildTiming {
    /// A runner leased it: `attempt` 1 is its first start.
    Started {
        queued_at: i64,
        started_at: i64,
        attempt: i64,
    },
    /// It ended; `started_at` is `None` for a build that never ran.
    Ended {
        started_at: Option<i64>,
        finished_at: i64,
    },
}

/// One build state change, as a listener receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildChange {
    pub build_id: i64,
    pub site_id: i64,
    pub state: BuildState,
    pub timing: Option<BuildTiming>,
}

#[derive(Debug, Clone)]
pub struct Events {
    sender: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    pub fn publish(&self, event: Event) {
        // An error only means nobody listens right now.
        let _ = self.sender.send(event);
    }

    pub fn build_changed(&self, build_id: i64, site_id: i64, state: BuildState) {
        self.publish(Event::Build {
            build_id,
            site_id,
            state,
            timing: None,
        });
    }

    /// A state change whose times the publisher knows (see [`BuildTiming`]).
    pub fn build_changed_at(&self, build_id: i64, site_id: i64, state: BuildState, timing: BuildTiming) {
        self.publish(Event::Build {
            build_id,
            site_id,
            state,
            timing: Some(timing),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Build state changes only, for a listener named `listener` (in the
    /// warning logged when it falls behind).
    pub fn build_changes(&self, listener: &'static str) -> BuildChanges {
        BuildChanges {
            receiver: self.sender.subscribe(),
            listener,
        }
    }
}

/// A subscription to build state changes: see [`Events::build_changes`].
pub struct BuildChanges {
    receiver: broadcast::Receiver<Event>,
    listener: &'static str,
}

impl BuildChanges {
    /// The next change; `None` once the controller stops. Missed changes
    /// are logged and skipped.
    pub async fn next(&mut self) -> Option<BuildChange> {
        loop {
            match self.receiver.recv().await {
                Ok(Event::Build {
                    build_id,
                    site_id,
                    state,
                    timing,
                }) => {
                    return Some(BuildChange {
                        build_id,
                        site_id,
                        state,
                        timing,
                    });
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, listener = self.listener, "missed build events");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
