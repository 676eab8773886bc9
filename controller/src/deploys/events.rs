//! Notifications that what a hostname serves has changed.
//!
//! Whatever moves a pointer (publishing, a rollback, a finalize that
//! publishes or moves a preview or branch alias, taking an alias down),
//! removes a deploy, or gives a deploy's files compressed variants announces
//! it through [`DeployEvents::announce`]. That clears the edge's memory of
//! the site at once (the edge is [`ForgetsFirst`], told before anyone), in
//! this process, before the API call answers; then the event goes out on a
//! broadcast channel. The edge listens to that channel too, so a listener
//! that relays other controllers' publishes (PostgreSQL `LISTEN/NOTIFY`)
//! only has to [`DeployEvents::relay`] them.

use crate::db::Database;
use std::sync::Arc;
use tokio::sync::broadcast;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployEvent {
    /// A site's published deploy, one of its aliases, or its lock moved.
    SiteChanged { site_id: i64 },
    /// A deploy was removed by retention; its permalink stops serving.
    DeployRemoved { deploy_id: String },
    /// Compressed variants of a deploy's files were made (after it went
    /// ready): its index is read again to offer them.
    VariantsMade { deploy_id: String },
    /// A certificate was stored or removed: TLS listeners reload theirs.
    /// The edge's memory keeps everything.
    CertificatesChanged,
    /// A custom domain was added, verified, removed or made primary: the
    /// edge reads its table of custom hostnames again.
    DomainsChanged,
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

/// What must forget an event before its announcement returns: the edge's
/// memory in this process, so the next request sees the change. The deploy
/// store knows it only by this trait, so it need not know the edge.
#[async_trait::async_trait]
pub trait ForgetsFirst: Send + Sync {
    async fn forget(&self, event: &DeployEvent);
}

/// The broadcast channel of [`DeployEvent`]s.
#[derive(Clone)]
pub struct DeployEvents {
    sender: broadcast::Sender<(DeployEvent, Origin)>,
    first: Option<Arc<dyn ForgetsFirst>>,
}

impl std::fmt::Debug for DeployEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployEvents").finish_non_exhaustive()
    }
}

impl Default for DeployEvents {
    fn default() -> Self {
        DeployEvents {
            sender: broadcast::channel(1024).0,
            first: None,
        }
    }
}

impl DeployEvents {
    /// Events that `first` forgets before each announcement returns.
    pub fn telling_first(first: Arc<dyn ForgetsFirst>) -> Self {
        DeployEvents {
            first: Some(first),
            ..DeployEvents::default()
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(DeployEvent, Origin)> {
        self.sender.subscribe()
    }

    /// Tells everyone that what a hostname serves has changed: the edge of
    /// this process forgets it before this returns (so the next request
    /// sees the change), then the event goes out to listeners.
    pub async fn announce(&self, event: DeployEvent) {
        if let Some(first) = &self.first {
            first.forget(&event).await;
        }
        // No receiver is not an error: nobody needs telling.
        let _ = self.sender.send((event, Origin::Here));
    }

    /// Feeds an event that happened on another controller.
    pub fn relay(&self, event: DeployEvent) {
        let _ = self.sender.send((event, Origin::Elsewhere));
    }
}

impl DeployEvent {
    /// The event as a notification payload for other controllers.
    pub fn encode(&self) -> String {
        match self {
            DeployEvent::SiteChanged { site_id } => format!("site:{site_id}"),
            DeployEvent::DeployRemoved { deploy_id } => format!("deploy:{deploy_id}"),
            DeployEvent::VariantsMade { deploy_id } => format!("variants:{deploy_id}"),
            DeployEvent::CertificatesChanged => "certificates".to_owned(),
            DeployEvent::DomainsChanged => "domains".to_owned(),
            DeployEvent::Everything => "all".to_owned(),
        }
    }

    /// Reads a payload; anything unknown (a newer controller's event)
    /// means "forget everything", which is always safe.
    pub fn decode(payload: &str) -> DeployEvent {
        match payload.split_once(':') {
            Some(("site", id)) => {
                id.parse()
                    .map_or(DeployEvent::Everything, |site_id| DeployEvent::SiteChanged {
                        site_id,
                    })
            }
            Some(("deploy", id)) => DeployEvent::DeployRemoved {
                deploy_id: id.to_owned(),
            },
            Some(("variants", id)) => DeployEvent::VariantsMade {
                deploy_id: id.to_owned(),
            },
            _ if payload == "certificates" => DeployEvent::CertificatesChanged,
            _ if payload == "domains" => DeployEvent::DomainsChanged,
            _ => DeployEvent::Everything,
        }
    }
}

/// Carries deploy events between controllers sharing one PostgreSQL
/// database: this controller's events go out as notifications, and the
/// others' come in as relayed events (which the edge acts on like its own).
/// Returns at once on SQLite.
pub async fn relay_between_controllers(db: Database, events: DeployEvents) {
    let mut listener = match db.listen().await {
        Ok(Some(listener)) => listener,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "listening for other controllers' publishes failed; they reach this edge only when its memory expires"
            );
            return;
        }
    };
    let outgoing = {
        let db = db.clone();
        let mut events = events.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok((event, Origin::Here)) => {
                        if let Err(error) = db.notify(&event.encode()).await {
                            tracing::warn!(error = format!("{error:#}"), "telling other controllers failed");
                        }
                    }
                    Ok((_, Origin::Elsewhere)) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = db.notify(&DeployEvent::Everything.encode()).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    };
    loop {
        match listener.next().await {
            Ok(crate::db::Heard::Payload(payload)) => events.relay(DeployEvent::decode(&payload)),
            Ok(crate::db::Heard::Reconnected) => events.relay(DeployEvent::Everything),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "listening for other controllers failed; retrying"
                );
                events.relay(DeployEvent::Everything);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        if outgoing.is_finished() {
            return;
        }
    }
}

#[cfg(test)]
mod relay_tests {
    use super::*;

    #[test]
    fn events_survive_the_trip_between_controllers() {
        for event in [
            DeployEvent::SiteChanged { site_id: 42 },
            DeployEvent::DeployRemoved {
                deploy_id: "0123456789abcdef01234567".into(),
            },
            DeployEvent::VariantsMade {
                deploy_id: "0123456789abcdef01234567".into(),
            },
            DeployEvent::CertificatesChanged,
            DeployEvent::DomainsChanged,
            DeployEvent::Everything,
        ] {
            assert_eq!(DeployEvent::decode(&event.encode()), event);
        }
        assert_eq!(DeployEvent::decode("site:not-a-number"), DeployEvent::Everything);
        assert_eq!(DeployEvent::decode("something-new"), DeployEvent::Everything);
    }
}
