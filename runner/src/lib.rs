//! The runner: leases build jobs from a controller and runs them in
//! containers (Docker or Podman).
//!
//! [`Runner::start`] takes its work directory (one runner per directory),
//! removes what a crashed earlier life of this runner left on the Docker
//! engine, and connects to the controller (checking the protocol version);
//! [`Runner::run_until`] then loops: lease a job, run it with
//! [`job::run_job`], repeat. A job fetches its commit ([`git`]), reads
//! `jamstack.toml` ([`site_config`]), builds in a container through an
//! [`executor`] (Docker, or rootless Podman) with the site's cache, streams its log ([`build_log`], formatted
//! and masked by [`log_format`] and [`masking`]) and uploads the publish
//! directory ([`upload`]). The runner holds no database or bucket
//! credentials: all it knows is its controller URL and its token
//! ([`client`]).

pub mod build_log;
pub mod cli;
pub mod client;
pub mod config_reference;
pub mod embedded;
pub mod executor;
pub mod git;
pub mod images;
pub mod inside;
pub mod job;
#[cfg(test)]
mod job_tests;
pub mod log_format;
pub mod masking;
pub mod site_config;
pub mod upload;
pub mod watch;

use anyhow::Context as _;
use client::{ClientError, ControllerClient};
use executor::docker::{DockerExecutor, DockerSettings};
use executor::image::PullPolicy;
use executor::podman::PodmanExecutor;
use executor::{Executor, ExecutorKind, Limits};
use jamstack_proto::{JobLease, RegisterRequest};
use log_format::LogLimits;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    /// Where checkouts and build outputs live while a job runs, and the
    /// runner's own state (its token among it). One runner per directory.
    pub work_dir: PathBuf,
    /// The image for sites whose jamstack.toml names none.
    pub default_image: String,
    /// Limits of a build whose site sets none.
    pub limits: Limits,
    /// The most a site may ask for; larger asks are lowered to this.
    pub max_limits: Limits,
    /// How long a build may run when its site sets no timeout.
    pub default_timeout: Duration,
    /// The longest timeout a site may ask for.
    pub max_timeout: Duration,
    /// How long a stopped build gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    pub pull_policy: PullPolicy,
    /// Images builds may use (`*` matches anything); empty allows all.
    pub allowed_images: Vec<String>,
    /// The image the cache copies run in: it needs `sh`, `cp`, `mv`, `rm`,
    /// `du`, `cut` and `find`.
    pub helper_image: String,
    pub log_limits: LogLimits,
    /// The largest build cache kept per site; a larger one is not saved.
    pub cache_limit_bytes: u64,
    /// The most a build's output may be, as the engine archives it; a
    /// larger one fails the build before it fills the runner's disk.
    pub publish_limit_bytes: u64,
    /// Give every build a bridge network of its own, so builds cannot
    /// reach each other (or other containers on the default bridge).
    pub network_per_job: bool,
    /// Let builds reach the runner's host and private networks (the
    /// operator accepts the risk). Off by default: builds reach the public
    /// internet only ([`executor::docker::egress`]), and a runner that cannot enforce that
    /// refuses builds with network.
    pub allow_private_networks: bool,
    /// What runs the builds' containers.
    pub executor: ExecutorKind,
    /// Podman's API socket, for [`ExecutorKind::Podman`].
    pub podman_socket: PathBuf,
    /// How long one lease request waits for a job.
    pub lease_wait: Duration,
    /// How long a call to the controller retries a transient failure
    /// before giving up. A job's own calls (log, upload, report) wait
    /// longer: until the controller answers or the runner shuts down.
    pub controller_retry: Duration,
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
            work_dir: default_work_dir(),
            default_image: "jamstack/busybox:1".to_owned(),
            limits: Limits::default(),
            max_limits: Limits::default(),
            default_timeout: Duration::from_secs(30 * 60),
            max_timeout: Duration::from_secs(2 * 60 * 60),
            stop_grace: Duration::from_secs(5),
            pull_policy: PullPolicy::IfNotPresent,
            allowed_images: Vec::new(),
            helper_image: "jamstack/busybox:1".to_owned(),
            log_limits: LogLimits::default(),
            cache_limit_bytes: 2 * 1024 * 1024 * 1024,
            publish_limit_bytes: DEFAULT_PUBLISH_LIMIT_MIB * 1024 * 1024,
            network_per_job: true,
            allow_private_networks: false,
            executor: ExecutorKind::Docker,
            podman_socket: PathBuf::from(executor::podman::DEFAULT_SOCKET),
            lease_wait: Duration::from_secs(30),
            controller_retry: client::DEFAULT_RETRY_FOR,
        }
    }

    /// Where a registered runner keeps its token.
    pub fn token_file(&self) -> PathBuf {
        self.work_dir.join("runner-token")
    }
}

/// The default of `--publish-limit-mib`: the controller's default largest
/// deploy (`--max-deploy-size-mb`), so a build the controller would take is
/// never refused by its runner.
pub const DEFAULT_PUBLISH_LIMIT_MIB: u64 = 10 * 1024;

/// Where a runner keeps its token and its jobs' files unless told
/// otherwise: a private state directory, not `/tmp`, where any local user
/// could look or plant a symlink. `/var/lib/jamstack-runner` for root,
/// `$XDG_STATE_HOME/jamstack-runner` (`~/.local/state/jamstack-runner`)
/// for anyone else.
pub fn default_work_dir() -> PathBuf {
    default_work_dir_for(
        is_root(),
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn default_work_dir_for(root: bool, xdg_state_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    const NAME: &str = "jamstack-runner";
    if root {
        return PathBuf::from("/var/lib").join(NAME);
    }
    match (xdg_state_home.filter(|p| p.is_absolute()), home) {
        (Some(state), _) => state.join(NAME),
        (None, Some(home)) => home.join(".local/state").join(NAME),
        (None, None) => PathBuf::from("/var/lib").join(NAME),
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    // The owner of this process's own /proc entry is its effective user.
    std::os::unix::fs::MetadataExt::uid(&match std::fs::metadata("/proc/self") {
        Ok(metadata) => metadata,
        Err(_) => return false,
    }) == 0
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// Makes the work directory, readable by the runner's user only (0700):
/// it holds the runner's token. An existing one is narrowed to that.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
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

/// The file in the work directory naming the runner instance that uses it.
pub const INSTANCE_FILE: &str = "runner-instance";
const LOCK_FILE: &str = "runner.lock";

/// A started runner: it holds its work directory and knows its instance id,
/// the label on every Docker object it makes.
#[derive(Debug)]
pub struct Runner {
    config: RunnerConfig,
    client: ControllerClient,
    executor: Box<dyn Executor>,
    instance: String,
    heartbeat: Duration,
    /// Held for the runner's life: a second runner on the same work
    /// directory would take this one's objects for debris.
    _lock: std::fs::File,
}

impl Runner {
    /// Takes the work directory, clears what an earlier life of this runner
    /// left behind, and connects. Fails only for what the runner cannot work
    /// without: Docker, a free work directory, a controller that speaks its
    /// protocol version, a valid token.
    pub async fn start(config: RunnerConfig) -> anyhow::Result<Self> {
        jamstack_program::install_tls_provider();
        make_private_dir(&config.work_dir)
            .with_context(|| format!("creating the work directory {}", config.work_dir.display()))?;
        let lock = lock_work_dir(&config.work_dir)?;
        let executor = connect_executor(&config).await.map_err(anyhow::Error::msg)?;
        clear_earlier_life(executor.as_ref(), &config.work_dir).await?;
        if config.allow_private_networks {
            tracing::warn!(
                "--allow-private-networks: builds can reach this host and its private networks \
                 (cloud metadata included)"
            );
        } else if let Err(e) = executor.check_egress().await {
            // Builds with network are refused (each says why); builds of
            // sites whose network is off still run.
            tracing::error!("{e}");
        }
        let instance = job::random_id();
        write_private(&config.work_dir.join(INSTANCE_FILE), &instance)
            .context("writing the runner's instance file")?;
        let token = obtain_token(&config).await?;
        let client =
            ControllerClient::new(&config.controller_url, &token).with_retry_for(config.controller_retry);
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
        tracing::info!(controller = %config.controller_url, runner = %config.name, instance, "runner connected");
        Ok(Runner {
            config,
            client,
            executor,
            instance,
            heartbeat,
            _lock: lock,
        })
    }

    /// The id on the `org.jamstack.runner.instance` label of everything
    /// this runner makes.
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    pub fn client(&self) -> &ControllerClient {
        &self.client
    }

    /// Runs one leased job to its end and reports it.
    pub async fn run_job(&self, lease: JobLease, shutdown: &CancellationToken) {
        // A leased job outlasts a controller outage: its calls retry until
        // the controller answers, unless the runner is shutting down.
        let client = self.client.patient(shutdown.clone());
        let context = job::JobContext {
            client: &client,
            executor: self.executor.as_ref(),
            config: &self.config,
            instance: &self.instance,
            heartbeat: self.heartbeat,
            shutdown,
        };
        job::run_job(&context, lease).await;
    }

    /// Leases and runs jobs until `shutdown`, as many at once as the runner
    /// has slots; a job running then is stopped and cleaned up, and left to
    /// the controller to hand out again.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(runner = %self.config.name, slots = self.config.slots, "waiting for jobs");
        let slots = (0..self.config.slots.max(1)).map(|_| self.work_slot(&shutdown));
        let ended = futures_util::future::join_all(slots).await;
        tracing::info!(runner = %self.config.name, "runner stopped");
        ended.into_iter().collect::<anyhow::Result<Vec<()>>>().map(|_| ())
    }

    async fn work_slot(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            let leased = tokio::select! {
                leased = self.client.lease(&self.config.name, self.config.lease_wait) => leased,
                () = shutdown.cancelled() => break,
            };
            match leased {
                Ok(Some(lease)) => {
                    tracing::info!(job = lease.job_id, build = lease.build_id, site = %lease.site, "job leased");
                    self.run_job(lease, shutdown).await;
                }
                Ok(None) => {}
                Err(e @ (ClientError::VersionMismatch(_) | ClientError::Refused { .. })) => {
                    anyhow::bail!(
                        "the controller refused this runner: {e}. If its token was revoked, delete {} and \
                         register again",
                        self.config.token_file().display()
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leasing failed; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
        Ok(())
    }
}

/// The executor the configuration asks for, connected.
async fn connect_executor(config: &RunnerConfig) -> Result<Box<dyn Executor>, String> {
    let settings = DockerSettings {
        network_per_job: config.network_per_job,
        allow_private_networks: config.allow_private_networks,
        helper_image: config.helper_image.clone(),
        egress_rules: true,
        sigkill_means_out_of_memory: false,
    };
    Ok(match config.executor {
        ExecutorKind::Docker => Box::new(DockerExecutor::connect(settings).await?),
        ExecutorKind::Podman => Box::new(PodmanExecutor::connect(&config.podman_socket, settings).await?),
    })
}

/// Starts a runner and runs jobs until the process ends.
pub async fn run(config: RunnerConfig) -> anyhow::Result<()> {
    Runner::start(config)
        .await?
        .run_until(CancellationToken::new())
        .await
}

fn lock_work_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another runner is using the work directory {}; give each runner its own (--work-dir)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::from(e).context(format!("locking {}", path.display())))
        }
    }
}

/// Removes the containers, volumes and networks of the runner instance
/// named in the work directory (this runner's previous life, which ended
/// without cleaning up), and its leftover job folders.
async fn clear_earlier_life(executor: &dyn Executor, work_dir: &Path) -> anyhow::Result<()> {
    if let Ok(previous) = std::fs::read_to_string(work_dir.join(INSTANCE_FILE)) {
        let previous = previous.trim();
        if !previous.is_empty() {
            let removed = executor
                .sweep(previous)
                .await
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!(
                        "removing what the runner's previous run left on the {} engine",
                        executor.engine_name()
                    )
                })?;
            if removed != executor::Swept::default() {
                tracing::warn!(
                    previous,
                    containers = removed.containers,
                    volumes = removed.volumes,
                    networks = removed.networks,
                    "removed what the runner's previous run left behind"
                );
            }
        }
    }
    for entry in std::fs::read_dir(work_dir)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(job::JOB_DIR_PREFIX)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if entry
            .file_name()
            .to_string_lossy()
            .starts_with(build_log::SPOOL_FILE_PREFIX)
        {
            // The log of a job this runner can no longer finish: the job
            // goes back to the queue when its lease expires.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_work_directory_is_a_private_state_directory_not_tmp() {
        let home = Some(PathBuf::from("/home/ci"));
        assert_eq!(
            default_work_dir_for(true, None, home.clone()),
            Path::new("/var/lib/jamstack-runner")
        );
        assert_eq!(
            default_work_dir_for(false, Some("/state".into()), home.clone()),
            Path::new("/state/jamstack-runner")
        );
        assert_eq!(
            default_work_dir_for(false, Some("relative".into()), home.clone()),
            Path::new("/home/ci/.local/state/jamstack-runner"),
            "XDG_STATE_HOME must be absolute to count"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_work_directory_is_made_or_narrowed_to_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("state/jamstack-runner");
        make_private_dir(&made).unwrap();
        assert_eq!(
            std::fs::metadata(&made).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o755)).unwrap();
        make_private_dir(&made).unwrap();
        assert_eq!(
            std::fs::metadata(&made).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let token = made.join("runner-token");
        write_private(&token, "t").unwrap();
        assert_eq!(
            std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
