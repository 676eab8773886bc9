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
    /// Builds running longer are failed and their runner told to stop.
    pub max_build_duration: Duration,
    /// Jobs running at once across all sites and runners; 0 for no limit.
    pub max_concurrent_builds: i64,
    /// The database URL; `None` for the SQLite file in the data directory.
    pub database_url: Option<String>,
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
            max_build_duration: Duration::from_secs(60 * 60),
            max_concurrent_builds: 0,
            database_url: None,
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("jamstack.db")
    }

    /// The database URL in force: the configured one, or the SQLite file.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.database_path().display()))
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }
}
