//! Notifications between controllers that share one PostgreSQL database
//! (`LISTEN`/`NOTIFY`), so each one's edge forgets what another's publish
//! made stale at once. SQLite has one controller and needs none.

use super::{Backend, Database};

/// The channel deploy events travel on.
pub const DEPLOY_EVENTS_CHANNEL: &str = "jamstack_deploy_events";

/// A notification received, or the news that some may have been missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    Payload(String),
    /// The connection dropped and came back: anything in between is lost.
    Reconnected,
}

/// A listening connection.
pub struct Listener(sqlx::postgres::PgListener);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// The next notification; reconnects by itself after a failure.
    pub async fn next(&mut self) -> anyhow::Result<Heard> {
        Ok(match self.0.try_recv().await? {
            Some(notification) => Heard::Payload(notification.payload().to_owned()),
            None => Heard::Reconnected,
        })
    }
}

impl Database {
    /// Sends `payload` to every controller listening (none on SQLite).
    pub async fn notify(&self, payload: &str) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(DEPLOY_EVENTS_CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Listens for other controllers' notifications; `None` on SQLite.
    pub async fn listen(&self) -> anyhow::Result<Option<Listener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(DEPLOY_EVENTS_CHANNEL).await?;
        Ok(Some(Listener(listener)))
    }
}
