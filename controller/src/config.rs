//! Controller settings. Every field has a default that works on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database and the local blob directory live.
    pub data_dir: PathBuf,
    /// Address the one HTTP listener binds: API, webhooks, runner API and
    /// the edge share it and are told apart by path and `Host`.
    pub listen: SocketAddr,
    /// Sites are served at `<site>.<domain>`; `localhost` resolves anywhere.
    pub domain: String,
    /// The GitHub webhook secret. When unset, one is made on first start and
    /// kept in the database.
    pub webhook_secret: Option<String>,
    /// How long a lease lasts without a heartbeat.
    pub lease_duration: Duration,
    /// How often runners are asked to send heartbeats.
    pub heartbeat_interval: Duration,
    /// Leases of one job before its build fails.
    pub max_attempts: i64,
    /// The longest a runner's lease request is held open.
    pub max_lease_wait: Duration,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            domain: "localhost".to_owned(),
            webhook_secret: None,
            lease_duration: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(20),
            max_attempts: 3,
            max_lease_wait: Duration::from_secs(30),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("jamstack.db")
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }
}
