//! What happened, for whoever listens: build state changes and hostnames
//! taken down, broadcast inside the controller.
//!
//! The code that changes a build's state publishes an [`Event`] after the
//! change is stored; listeners (the GitHub reporter, notifications,
//! metrics) subscribe and read what they need from the database. Where the
//! publisher already knows when the build was queued, started or ended, the
//! event carries it ([`BuildTiming`]), so a busy queue does not cost every
//! listener a read of every build. Publishing never waits for a listener
//! and never fails. A subscriber of every event ([`Events::subscribe`], the
//! GitHub reporter) that falls behind is told how many it missed and
//! catches up from the database; a listener of build changes
//! ([`Events::build_changes`]: notifications, metrics) has nothing to catch
//! up from, so it gets every change, in order, however far behind it is
//! (its queue is unbounded: a change is a few dozen bytes).

use crate::db::BuildState;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

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
    /// The queues of [`Events::build_changes`] listeners.
    build_listeners: Arc<Mutex<Vec<mpsc::UnboundedSender<BuildChange>>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(CAPACITY).0,
            build_listeners: Arc::default(),
        }
    }
}

impl Events {
    pub fn publish(&self, event: Event) {
        if let Event::Build {
            build_id,
            site_id,
            state,
            timing,
        } = event
        {
            let change = BuildChange {
                build_id,
                site_id,
                state,
                timing,
            };
            let mut listeners = self.build_listeners.lock().unwrap_or_else(|e| e.into_inner());
            // A listener that stopped is forgotten.
            listeners.retain(|listener| listener.send(change).is_ok());
        }
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

    /// Every build state change from now on, in order, none missed.
    pub fn build_changes(&self) -> BuildChanges {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.build_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        BuildChanges { receiver }
    }
}

/// A subscription to build state changes: see [`Events::build_changes`].
pub struct BuildChanges {
    receiver: mpsc::UnboundedReceiver<BuildChange>,
}

impl BuildChanges {
    /// The next change; `None` once the controller stops.
    pub async fn next(&mut self) -> Option<BuildChange> {
        self.receiver.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_build_change_listener_that_falls_far_behind_still_gets_every_change_in_order() {
        let events = Events::default();
        let mut changes = events.build_changes();
        let published = CAPACITY as i64 * 3;
        for build_id in 0..published {
            events.build_changed(build_id, 7, BuildState::Running);
            events.publish(Event::AliasRemoved {
                site_id: 7,
                alias: "main".into(),
            });
        }
        for build_id in 0..published {
            let change = changes.next().await.expect("a change");
            assert_eq!((change.build_id, change.site_id), (build_id, 7));
        }
        drop(changes);
        // A listener that went away is forgotten at the next change.
        events.build_changed(0, 7, BuildState::Queued);
        assert!(events.build_listeners.lock().unwrap().is_empty());
    }
}
