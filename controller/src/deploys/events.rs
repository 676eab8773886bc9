//! Notifications that what a hostname serves has changed.
//!
//! Whatever moves a pointer (publishing, a rollback, a finalize that
//! publishes or moves a preview or branch alias, taking an alias down) or
//! removes a deploy announces it through [`AppState::announce`]
//! (`crate::state`). That clears the edge's memory of the site at once, in
//! this process, before the API call answers; then the event goes out on a
//! broadcast channel. The edge listens to that channel too, so a listener
//! that relays other controllers' publishes (PostgreSQL `LISTEN/NOTIFY`)
//! only has to [`DeployEvents::relay`] them.

use tokio::sync::broadcast;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployEvent {
    /// A site's published deploy, one of its aliases, or its lock moved.
    SiteChanged { site_id: i64 },
    /// A deploy was removed by retention; its permalink stops serving.
    DeployRemoved { deploy_id: String },
    /// Anything may have changed: forget everything (for a relay that
    /// reconnects and may have missed notifications).
    Everything,
}

/// Where an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// In this process: relays send these to other controllers.
    Here,
    /// Relayed from another controller: not to be sent back out.
    Elsewhere,
}

/// The broadcast channel of [`DeployEvent`]s.
#[derive(Debug, Clone)]
pub struct DeployEvents {
    sender: broadcast::Sender<(DeployEvent, Origin)>,
}

impl Default for DeployEvents {
    fn default() -> Self {
        DeployEvents {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl DeployEvents {
    pub fn subscribe(&self) -> broadcast::Receiver<(DeployEvent, Origin)> {
        self.sender.subscribe()
    }

    /// Sends an event that happened here. Use `AppState::announce`, which
    /// also clears the edge's memory before this returns.
    pub(crate) fn send_here(&self, event: DeployEvent) {
        // No receiver is not an error: nobody needs telling.
        let _ = self.sender.send((event, Origin::Here));
    }

    /// Feeds an event that happened on another controller.
    pub fn relay(&self, event: DeployEvent) {
        let _ = self.sender.send((event, Origin::Elsewhere));
    }
}
