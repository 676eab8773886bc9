//! The runner: leases build jobs from a controller and runs them in Docker.
//!
//! [`run`] connects to the controller (checking the protocol version and the
//! Docker engine first), then loops: lease a job, run it with
//! [`job::run_job`], repeat. A job fetches its commit ([`git`]), reads
//! `jamstack.toml` ([`site_config`]), builds in a container ([`docker`]),
//! streams its log ([`build_log`]) and uploads the publish directory
//! ([`upload`]). The runner holds no database or bucket credentials: all it
//! knows is its controller URL and its token ([`client`]).

pub mod build_log;
pub mod client;
pub mod docker;
pub mod git;
pub mod job;
pub mod site_config;
pub mod upload;

use client::{ClientError, ControllerClient};
use docker::{Engine, Limits};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub controller_url: String,
    pub token: String,
    pub name: String,
    /// Where checkouts and build outputs live while a job runs.
    pub work_dir: PathBuf,
    /// The image for sites whose jamstack.toml names none.
    pub default_image: String,
    pub limits: Limits,
    /// How long one lease request waits for a job.
    pub lease_wait: Duration,
}

impl RunnerConfig {
    pub fn new(controller_url: &str, token: &str) -> Self {
        RunnerConfig {
            controller_url: controller_url.to_owned(),
            token: token.to_owned(),
            name: hostname(),
            work_dir: std::env::temp_dir().join("jamstack-runner"),
            default_image: "jamstack/busybox:1".to_owned(),
            limits: Limits::default(),
            lease_wait: Duration::from_secs(30),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "runner".to_owned())
}

/// Runs jobs until the process ends. Returns an error only for what the
/// runner cannot work without: Docker, a controller that speaks its
/// protocol version, a valid token.
pub async fn run(config: RunnerConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.work_dir)?;
    let engine = Engine::connect().await.map_err(anyhow::Error::msg)?;
    let client = ControllerClient::new(&config.controller_url, &config.token);
    let connected = loop {
        match client.connect(&config.name).await {
            Ok(answer) => break answer,
            Err(ClientError::Unreachable(e)) => {
                tracing::warn!(controller = %config.controller_url, error = %e, "controller unreachable; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => anyhow::bail!("connecting to the controller at {}: {e}", config.controller_url),
        }
    };
    let heartbeat = Duration::from_secs(connected.heartbeat_seconds.max(1));
    tracing::info!(controller = %config.controller_url, runner = %config.name, "runner connected; waiting for jobs");
    loop {
        match client.lease(&config.name, config.lease_wait).await {
            Ok(Some(lease)) => {
                tracing::info!(job = lease.job_id, build = lease.build_id, site = %lease.site, "job leased");
                job::run_job(&client, &engine, &config, heartbeat, lease).await;
            }
            Ok(None) => {}
            Err(e @ (ClientError::VersionMismatch(_) | ClientError::Refused { .. })) => {
                anyhow::bail!("the controller refused this runner: {e}");
            }
            Err(e) => {
                tracing::warn!(error = %e, "leasing failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
