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
use jamstack_proto::RegisterRequest;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub controller_url: String,
    /// This runner's own token; when empty, the token saved in the work
    /// directory is used, or one is obtained with `registration_token`.
    pub token: String,
    pub registration_token: Option<String>,
    pub name: String,
    /// Jobs that require labels only go to runners that have them all.
    pub labels: Vec<String>,
    /// Jobs run at once.
    pub slots: u32,
    /// Where checkouts and build outputs live while a job runs, and where
    /// the runner keeps its token.
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
            registration_token: None,
            name: hostname(),
            labels: Vec::new(),
            slots: 1,
            work_dir: std::env::temp_dir().join("jamstack-runner"),
            default_image: "jamstack/busybox:1".to_owned(),
            limits: Limits::default(),
            lease_wait: Duration::from_secs(30),
        }
    }

    /// Where a registered runner keeps its token.
    pub fn token_file(&self) -> PathBuf {
        self.work_dir.join("runner-token")
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

/// The token to use: the configured one, the one saved by an earlier
/// registration, or a new one obtained with the registration token (and
/// saved, readable by this user only).
async fn obtain_token(config: &RunnerConfig) -> anyhow::Result<String> {
    if !config.token.is_empty() {
        return Ok(config.token.clone());
    }
    let file = config.token_file();
    if let Ok(saved) = std::fs::read_to_string(&file) {
        let saved = saved.trim().to_owned();
        if !saved.is_empty() {
            return Ok(saved);
        }
    }
    let Some(registration_token) = &config.registration_token else {
        anyhow::bail!(
            "this runner has no token: pass --registration-token (printed by the controller on first start, \
             or `jamstack-controller token registration`) or --token"
        );
    };
    let client = ControllerClient::new(&config.controller_url, "");
    let answer = client
        .register(&RegisterRequest {
            registration_token: registration_token.clone(),
            name: config.name.clone(),
            labels: config.labels.clone(),
            slots: config.slots,
        })
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "registering with the controller at {}: {e}",
                config.controller_url
            )
        })?;
    write_private(&file, &answer.token)?;
    tracing::info!(runner_id = answer.runner_id, file = %file.display(), "runner registered; token saved");
    Ok(answer.token)
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content.as_bytes())
}

/// Chooses the TLS crypto provider for the whole process. Several of our
/// dependencies each enable a different rustls provider; with more than one
/// compiled in, rustls cannot pick by itself, so every entry point (the two
/// binaries, the controller's `Application::build`, [`run`]) calls this
/// first. Calling it again is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs jobs until the process ends. Returns an error only for what the
/// runner cannot work without: Docker, a controller that speaks its
/// protocol version, a valid token.
pub async fn run(config: RunnerConfig) -> anyhow::Result<()> {
    install_tls_provider();
    std::fs::create_dir_all(&config.work_dir)?;
    let engine = Engine::connect().await.map_err(anyhow::Error::msg)?;
    let token = obtain_token(&config).await?;
    let client = ControllerClient::new(&config.controller_url, &token);
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
    tracing::info!(
        controller = %config.controller_url, runner = %config.name, slots = config.slots,
        "runner connected; waiting for jobs"
    );
    let mut slots = tokio::task::JoinSet::new();
    for _ in 0..config.slots.max(1) {
        let (client, engine, config) = (client.clone(), engine.clone(), config.clone());
        slots.spawn(async move { work_slot(&client, &engine, &config, heartbeat).await });
    }
    // Every slot runs until the controller refuses the runner.
    match slots.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(anyhow::anyhow!("a runner slot crashed: {e}")),
        None => Ok(()),
    }
}

async fn work_slot(
    client: &ControllerClient,
    engine: &Engine,
    config: &RunnerConfig,
    heartbeat: Duration,
) -> anyhow::Result<()> {
    loop {
        match client.lease(&config.name, config.lease_wait).await {
            Ok(Some(lease)) => {
                tracing::info!(job = lease.job_id, build = lease.build_id, site = %lease.site, "job leased");
                job::run_job(client, engine, config, heartbeat, lease).await;
            }
            Ok(None) => {}
            Err(e @ (ClientError::VersionMismatch(_) | ClientError::Refused { .. })) => {
                anyhow::bail!(
                    "the controller refused this runner: {e}. If its token was revoked, delete {} and \
                     register again",
                    config.token_file().display()
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "leasing failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
