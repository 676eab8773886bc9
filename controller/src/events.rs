//! What happened, for whoever listens: build state changes and hostnames
//! taken down, broadcast inside the controller.
//!
//! The code that changes a build's state publishes an [`Event`] after the
//! change is stored; listeners (the GitHub reporter today; notifications
//! and live dashboards later) subscribe and read what they need from the
//! database. Publishing never waits for a listener and never fails: a
//! listener that falls behind is told how many events it missed and
//! catches up from the database.

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
    },
    /// A preview or branch hostname (`<alias>--<site>`) was taken down: its
    /// pull request closed or its branch was deleted.
    AliasRemoved { site_id: i64, alias: String },
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
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
