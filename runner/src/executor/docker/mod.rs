//! The Docker executor: a job's steps in containers on a Docker engine, its
//! network a bridge of its own held off private networks by iptables rules
//! ([`egress`]), its cache in volumes copied by helper containers
//! ([`cache`]). [`engine`] is the only user of bollard.
//!
//! Every container, volume and network a job makes is listed in its
//! workspace's [`Debris`] before or as it is made, and removed by
//! [`Workspace::clean_up`] (or, when the workspace is dropped first, in the
//! background); every one carries the [`labels`] naming the job and the
//! runner instance, which is what [`Executor::sweep`] goes by.

pub mod cache;
pub mod egress;
pub mod engine;

use super::cache::{CACHE_DIR, CacheVolume, Saved};
use super::image::PullPolicy;
use super::{
    Downloaded, Executor, ExecutorError, Exit, ImageReady, JobIds, JobNetwork, Limits, StepId, StepSpec,
    Swept, Workspace, labels,
};
use crate::build_log::LogItem;
use async_trait::async_trait;
use cache::HelperSettings;
use engine::{ContainerSpec, Engine, Network, VolumeMount};
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How the Docker executor runs jobs; the runner's settings for it.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// Give every job a bridge network of its own; without, builds share
    /// the engine's default bridge.
    pub network_per_job: bool,
    /// Builds may reach the host and private networks: no bridge is named
    /// for the egress rules, and a job whose network cannot be made falls
    /// back to the default bridge.
    pub allow_private_networks: bool,
    /// The image the cache copies run in.
    pub helper_image: String,
    /// Whether [`egress`]'s iptables rules hold the job's network off
    /// private networks; without, builds with a network of their own are
    /// refused unless the runner allows private networks.
    pub egress_rules: bool,
    /// Whether a step killed by SIGKILL that nobody asked to stop counts as
    /// out of memory: for engines that do not report the kernel's OOM kill
    /// of a process other than the container's first, which with an init
    /// process is every build process (Podman).
    pub sigkill_means_out_of_memory: bool,
}

/// Jobs on a Docker engine.
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    engine: Engine,
    settings: DockerSettings,
    /// The engine's name in messages: "Docker", or "Podman" behind its
    /// Docker-compatible API.
    name: &'static str,
}

impl DockerExecutor {
    /// Connects to the engine as the `docker` CLI would (`DOCKER_HOST` or
    /// the local socket).
    pub async fn connect(settings: DockerSettings) -> Result<Self, String> {
        Ok(Self::new(Engine::connect().await?, settings, "Docker"))
    }

    /// An executor on `engine`, which `name` names in messages.
    pub fn new(engine: Engine, settings: DockerSettings, name: &'static str) -> Self {
        DockerExecutor {
            engine,
            settings,
            name,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

#[async_trait]
impl Executor for DockerExecutor {
    fn engine_name(&self) -> &'static str {
        self.name
    }

    fn open(&self, job: JobIds, offline: bool) -> Box<dyn Workspace> {
        Box::new(DockerWorkspace::open(
            self.engine.clone(),
            self.settings.clone(),
            job,
            offline,
            self.engine_name(),
        ))
    }

    async fn sweep(&self, instance: &str) -> Result<Swept, String> {
        self.engine
            .remove_left_by(instance)
            .await
            .map_err(|e| e.to_string())
    }

    async fn check_egress(&self) -> Result<(), String> {
        if !self.settings.egress_rules {
            return Err(no_egress_rules(self.engine_name()));
        }
        egress::ensure().await.map_err(|e| e.to_string())
    }

    async fn retire_cache(&self, key: &str, current: u64) -> usize {
        cache::retire_old_generations(&self.engine, key, current).await
    }
}

/// Why a build with network is refused where no egress rules apply.
fn no_egress_rules(engine: &str) -> String {
    format!(
        "this runner cannot keep {engine} builds off its host and private networks (its firewall rules \
         hook Docker's bridges only), so it refuses builds with network: turn the site's build network \
         off (PUT /api/v1/sites/<site>/build-network {{\"network\": \"off\"}}), run the build on a Docker \
         runner, or start this runner with --allow-private-networks to accept that builds can reach the \
         host and its private networks"
    )
}

/// The objects a job made, removed by [`Debris::clear`] whatever happened;
/// if a job is dropped before that, removal starts in the background.
#[derive(Debug)]
pub struct Debris {
    engine: Engine,
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
    /// The private hosts opened to the job's network, closed with it.
    allowance: Option<egress::Allowance>,
}

impl Debris {
    pub fn new(engine: Engine) -> Self {
        Debris {
            engine,
            containers: Vec::new(),
            volumes: Vec::new(),
            networks: Vec::new(),
            allowance: None,
        }
    }

    /// Takes everything out, for removal.
    fn take(&mut self) -> Leftovers {
        Leftovers {
            containers: std::mem::take(&mut self.containers),
            volumes: std::mem::take(&mut self.volumes),
            networks: std::mem::take(&mut self.networks),
            allowance: self.allowance.take(),
        }
    }
}

/// What a job left, on its way out.
struct Leftovers {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
    allowance: Option<egress::Allowance>,
}

impl Leftovers {
    fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.volumes.is_empty()
            && self.networks.is_empty()
            && self.allowance.is_none()
    }

    /// Removes everything, containers first (volumes and networks in use
    /// cannot go).
    async fn remove(self, engine: &Engine) {
        for container in &self.containers {
            engine.remove(container).await;
        }
        for volume in &self.volumes {
            if !engine.remove_volume(volume).await {
                tracing::warn!(volume, "a job volume could not be removed");
            }
        }
        for network in &self.networks {
            engine.remove_network(network).await;
        }
        if let Some(allowance) = self.allowance {
            egress::revoke(allowance).await;
        }
    }
}

impl Drop for Debris {
    fn drop(&mut self) {
        let leftovers = self.take();
        if leftovers.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let engine = self.engine.clone();
            handle.spawn(async move { leftovers.remove(&engine).await });
        }
    }
}

/// Why a job's network was not made.
#[derive(Debug, Clone)]
enum NetworkError {
    /// The engine has no address space left for another network.
    PoolExhausted(String),
    Other(String),
}

/// A bridge network of the job's own, so concurrent builds cannot reach
/// each other or other containers on the default bridge. It is made in the
/// background from the job's start.
#[derive(Debug)]
struct OwnNetwork {
    name: String,
    /// The host interface, named for the egress rules while they apply.
    bridge: Option<String>,
    making: Option<tokio::task::JoinHandle<Result<(), ExecutorError>>>,
    made: Option<Result<(), NetworkError>>,
}

impl OwnNetwork {
    /// Waits until the network is made; the error says why it was not.
    async fn ready(&mut self) -> Result<(), NetworkError> {
        if let Some(making) = self.making.take() {
            self.made = Some(match making.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if e.is_address_pool_exhausted() => {
                    Err(NetworkError::PoolExhausted(e.to_string()))
                }
                Ok(Err(e)) => Err(NetworkError::Other(e.to_string())),
                Err(e) => Err(NetworkError::Other(format!("making the network crashed: {e}"))),
            });
        }
        self.made.clone().unwrap_or(Ok(()))
    }
}

/// A job on a Docker engine.
#[derive(Debug)]
pub struct DockerWorkspace {
    engine: Engine,
    settings: DockerSettings,
    job: JobIds,
    engine_name: &'static str,
    offline: bool,
    own_network: tokio::sync::Mutex<Option<OwnNetwork>>,
    /// What the steps join, once [`Workspace::network`] settled it.
    joined: Mutex<Network>,
    debris: Mutex<Debris>,
}

impl DockerWorkspace {
    fn open(
        engine: Engine,
        settings: DockerSettings,
        job: JobIds,
        offline: bool,
        engine_name: &'static str,
    ) -> Self {
        let mut debris = Debris::new(engine.clone());
        let own_network = (settings.network_per_job && !offline).then(|| {
            let name = job.name.clone();
            let bridge = (settings.egress_rules && !settings.allow_private_networks)
                .then(|| egress::bridge_name(&name));
            // Listed before it is made, so no early end can leave it behind.
            debris.networks.push(name.clone());
            let making = tokio::spawn({
                let (engine, labels) = (engine.clone(), job_labels(&job, "network"));
                let (name, bridge) = (name.clone(), bridge.clone());
                async move { engine.create_network(&name, bridge.as_deref(), &labels).await }
            });
            OwnNetwork {
                name,
                bridge,
                making: Some(making),
                made: None,
            }
        });
        DockerWorkspace {
            engine,
            settings,
            job,
            engine_name,
            offline,
            own_network: tokio::sync::Mutex::new(own_network),
            joined: Mutex::new(Network::Off),
            debris: Mutex::new(debris),
        }
    }

    fn scratch_name(&self) -> String {
        format!("{}-cache", self.job.name)
    }

    fn helper(&self) -> HelperSettings {
        HelperSettings {
            image: self.settings.helper_image.clone(),
            limits: Limits {
                memory_bytes: 256 * 1024 * 1024,
                nano_cpus: 1_000_000_000,
                pids: 64,
            },
            labels: job_labels(&self.job, "cache-helper"),
            name: self.job.name.clone(),
        }
    }

    fn debris(&self) -> std::sync::MutexGuard<'_, Debris> {
        self.debris
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The labels of a job's objects.
pub fn job_labels(job: &JobIds, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::JOB.to_owned(), job.job_id.to_string()),
        (labels::BUILD.to_owned(), job.build_id.to_string()),
        (labels::RUNNER.to_owned(), job.runner.clone()),
        (labels::INSTANCE.to_owned(), job.instance.clone()),
        (labels::ROLE.to_owned(), role.to_owned()),
    ])
}

#[async_trait]
impl Workspace for DockerWorkspace {
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageReady, ExecutorError> {
        self.engine.ensure_image(image, policy).await
    }

    async fn network(&self) -> Result<(JobNetwork, Vec<String>), String> {
        let engine = self.engine_name;
        let mut own = self.own_network.lock().await;
        let (joined, network, notes) = match own.as_mut() {
            None if self.offline => (Network::Off, JobNetwork::Off, Vec::new()),
            None => (Network::DefaultBridge, JobNetwork::Shared, Vec::new()),
            Some(own) => match own.ready().await {
                Ok(()) => (Network::Named(own.name.clone()), JobNetwork::Own, Vec::new()),
                Err(NetworkError::PoolExhausted(e)) if !self.settings.allow_private_networks => {
                    return Err(format!(
                        "{engine} has no address space left for a network of this build's own ({e}), and the \
                         default bridge is not kept off private networks. Remove unused networks on the runner \
                         (docker network prune) and retry the build"
                    ));
                }
                Err(NetworkError::PoolExhausted(e)) => (
                    Network::DefaultBridge,
                    JobNetwork::Shared,
                    vec![format!(
                        "\x1b[33m{engine} has no address space left for a network of this build's own ({e}); \
                         it runs on the default bridge. Remove unused networks (docker network prune) to restore isolation\x1b[0m"
                    )],
                ),
                Err(NetworkError::Other(e)) => return Err(format!("making the build's network: {e}")),
            },
        };
        *self.joined.lock().unwrap_or_else(|p| p.into_inner()) = joined;
        Ok((network, notes))
    }

    async fn hold_off_private_networks(&self) -> Result<(), String> {
        if !self.settings.egress_rules {
            return Err(no_egress_rules(self.engine_name));
        }
        egress::ensure().await.map_err(|e| e.to_string())
    }

    async fn allow_private_hosts(&self, nets: &[Ipv4Net]) -> Result<(), String> {
        let bridge = self
            .own_network
            .lock()
            .await
            .as_ref()
            .and_then(|own| own.bridge.clone())
            .ok_or_else(|| "the build has no network of its own to open hosts to".to_owned())?;
        let allowance = egress::allow(&bridge, nets).await.map_err(|e| e.to_string())?;
        self.debris().allowance = Some(allowance);
        Ok(())
    }

    async fn prepare_cache(&self, _cache: &CacheVolume) -> Result<(), ExecutorError> {
        let scratch = self.scratch_name();
        // Listed before it is made, so no early end can leave it behind.
        self.debris().volumes.push(scratch.clone());
        self.engine
            .create_volume(&scratch, &job_labels(&self.job, "scratch-cache"))
            .await
    }

    async fn create_step(&self, step: &StepSpec, source_tar: &Path) -> Result<StepId, ExecutorError> {
        let network = if step.networked {
            self.joined.lock().unwrap_or_else(|p| p.into_inner()).clone()
        } else {
            Network::Off
        };
        let mounts = if step.cache {
            vec![VolumeMount {
                volume: self.scratch_name(),
                target: CACHE_DIR.to_owned(),
                read_only: false,
            }]
        } else {
            Vec::new()
        };
        let name = match step.role {
            "build" => self.job.name.clone(),
            role => format!("{}-{role}", self.job.name),
        };
        let spec = ContainerSpec {
            name,
            image: step.image.clone(),
            command: step.command.clone(),
            working_dir: step.working_dir.clone(),
            env: step.env.clone(),
            labels: job_labels(&self.job, step.role),
            limits: step.limits,
            network,
            mounts,
        };
        let container = self.engine.create(&spec).await?;
        self.debris().containers.push(container.clone());
        self.engine.upload_tar_file(&container, source_tar).await?;
        Ok(StepId(container))
    }

    async fn restore_cache(
        &self,
        cache: &CacheVolume,
        stop: &CancellationToken,
    ) -> Result<Option<u64>, String> {
        let helper = self.helper();
        self.engine
            .ensure_image(&helper.image, PullPolicy::IfNotPresent)
            .await
            .map_err(|e| e.to_string())?;
        cache::restore(&self.engine, &helper, cache, &self.scratch_name(), stop).await
    }

    async fn run_step(
        &self,
        step: &StepId,
        output: &mpsc::Sender<LogItem>,
        stop: &CancellationToken,
        grace: Duration,
    ) -> Result<(Exit, Duration), ExecutorError> {
        let (exit, start) = self.engine.run(&step.0, output, stop, grace).await?;
        Ok(match exit {
            // 128 + SIGKILL; the runner's own stops end `Exit::Stopped`.
            Exit::Code { code: 137, .. } if self.settings.sigkill_means_out_of_memory => (
                Exit::Code {
                    code: 137,
                    oom_killed: true,
                },
                start,
            ),
            exit => (exit, start),
        })
    }

    async fn copy_out(
        &self,
        step: &StepId,
        path: &str,
        dest: &Path,
        limit: u64,
    ) -> Result<Downloaded, ExecutorError> {
        self.engine.download(&step.0, path, dest, limit).await
    }

    async fn has_entries(&self, step: &StepId, path: &str) -> Result<bool, ExecutorError> {
        self.engine.dir_has_entries(&step.0, path).await
    }

    async fn save_cache(
        &self,
        cache: &CacheVolume,
        scratch_is_empty: bool,
        version: &str,
        limit_bytes: u64,
        stop: &CancellationToken,
    ) -> Result<Saved, String> {
        cache::save(
            &self.engine,
            &self.helper(),
            cache,
            &self.scratch_name(),
            scratch_is_empty,
            version,
            limit_bytes,
            stop,
        )
        .await
    }

    async fn clean_up(&self) {
        if let Some(own) = self.own_network.lock().await.as_mut() {
            // Settled before removal, so it cannot appear after it.
            let _ = own.ready().await;
        }
        let leftovers = self.debris().take();
        leftovers.remove(&self.engine).await;
    }
}
