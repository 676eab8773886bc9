//! The seam between running a job and the engine that runs its
//! containers. `job.rs` orchestrates a job over an [`Executor`]; Docker
//! ([`docker`]) and rootless Podman (through the Docker implementation's engine) implement it, and a fake one
//! (`fake`, in tests) lets the orchestration be tested in milliseconds.
//!
//! A job's life on an executor, in this order:
//!
//! 1. [`Executor::open`] gives the job a [`Workspace`]: every object the job
//!    makes on the engine (network, volumes, containers) belongs to it from
//!    then on. The job's network is made in the background while the source
//!    is fetched.
//! 2. [`Workspace::ensure_image`]; [`Workspace::network`] waits for the
//!    network, then [`Workspace::hold_off_private_networks`] and
//!    [`Workspace::allow_private_hosts`] put the egress policy in place.
//! 3. [`Workspace::prepare_cache`] makes the build's scratch cache,
//!    [`Workspace::create_step`] a step's container with the source (a tar,
//!    [`source`]), [`Workspace::restore_cache`] fills the scratch cache,
//!    [`Workspace::run_step`] runs the step with its limits and environment,
//!    its output going to a log sink, until it ends or its stop token fires
//!    (cancel, timeout, lost lease and shutdown all come that way), and
//!    [`Workspace::copy_out`] takes the publish directory out as a tar.
//! 4. Once the deploy is finalized, [`Workspace::save_cache`] makes the
//!    scratch cache the site's.
//! 5. [`Workspace::clean_up`] removes everything the job made, whatever
//!    ended it; a workspace dropped before that cleans up in the background.
//!
//! Beside jobs: [`Executor::sweep`] removes what an earlier life of this
//! runner left (every object carries the [`labels`] naming its runner
//! instance), [`Executor::check_egress`] says at start whether builds can
//! be kept off private networks, and [`Executor::retire_cache`] removes the
//! caches of old generations.

pub mod cache;
pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod image;
pub mod podman;
pub mod private_hosts;
pub mod source;

use crate::build_log::LogItem;
use async_trait::async_trait;
use cache::{CacheVolume, Saved};
use image::PullPolicy;
use ipnet::Ipv4Net;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The labels on every container, volume and network the runner makes.
pub mod labels {
    /// The job id.
    pub const JOB: &str = "org.jamstack.job";
    /// The build id.
    pub const BUILD: &str = "org.jamstack.build";
    /// The runner's name.
    pub const RUNNER: &str = "org.jamstack.runner";
    /// The runner process's instance id (new at every start).
    pub const INSTANCE: &str = "org.jamstack.runner.instance";
    /// What the object is for: `build`, `cache-helper`, `scratch-cache`,
    /// `network`.
    pub const ROLE: &str = "org.jamstack.role";
    /// On cache volumes: the site's cache key, trust level and generation.
    pub const CACHE_KEY: &str = "org.jamstack.cache.key";
    pub const CACHE_TRUST: &str = "org.jamstack.cache.trust";
    pub const CACHE_GENERATION: &str = "org.jamstack.cache.generation";
}

/// Resource bounds for one step's container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 2 * 1024 * 1024 * 1024,
            nano_cpus: 2_000_000_000,
            pids: 512,
        }
    }
}

/// Where a build's source lives inside its container.
pub const WORKSPACE: &str = "/workspace";

/// The uid and gid builds run as: not root, the `builder` user of our images.
pub const BUILD_USER: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(
        "image `{image}` is not on this runner's container engine and could not be pulled ({detail}). \
         Build it on the runner's machine (scripts/build-images.sh makes jamstack/busybox:1 and jamstack/hugo:1), \
         or set `image` in jamstack.toml to an image the runner has"
    )]
    ImageUnavailable { image: String, detail: String },
    #[error(
        "`{path}` does not exist in the build container after the build; check `publish` in jamstack.toml"
    )]
    PublishDirMissing { path: String },
    #[error(
        "the build's output `{path}` is larger than this runner's limit of {limit} (--publish-limit-mib); \
         publish less, or ask the runner's operator to raise the limit"
    )]
    OutputTooLarge { path: String, limit: String },
    /// The engine refused or failed a call; the text names the engine.
    #[error("{0}")]
    Engine(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ExecutorError {
    /// Whether the engine could not make a network for lack of address space.
    pub fn is_address_pool_exhausted(&self) -> bool {
        self.to_string().contains("address pool")
    }
}

/// A build's output copied out of its container by [`Workspace::copy_out`].
#[derive(Debug)]
pub struct Downloaded {
    /// The folder the archive was unpacked in.
    pub folder: PathBuf,
    /// The name of the archive's top-level entry, the folder asked for.
    pub top: String,
    /// Entries left out: devices, hard links, paths leaving the folder.
    pub skipped: Vec<String>,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code {
        code: i64,
        oom_killed: bool,
    },
    /// Stopped on request (cancel, timeout, lost lease).
    Stopped,
}

impl Exit {
    pub fn succeeded(self) -> bool {
        self == Exit::Code {
            code: 0,
            oom_killed: false,
        }
    }
}

/// What [`Workspace::ensure_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReady {
    /// The engine had it.
    Present,
    Pulled,
    /// A pull failed but the engine has a copy, which is used.
    Stale {
        detail: String,
    },
}

/// Which executor a runner uses (`--executor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutorKind {
    /// The Docker engine (`DOCKER_HOST` or the local socket).
    #[default]
    Docker,
    /// Podman's API service (`--podman-socket`), rootless where it runs as
    /// an ordinary user.
    Podman,
}

/// Who a job's objects on the engine belong to; their names and labels
/// come from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIds {
    /// The job's containers, network and volumes are named after this:
    /// unique even when several controllers hand out the same job id.
    pub name: String,
    pub job_id: i64,
    pub build_id: i64,
    /// The runner's name.
    pub runner: String,
    /// The runner process's instance id.
    pub instance: String,
}

/// The network a job's steps join once [`Workspace::network`] is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobNetwork {
    /// No network at all (the site turned it off).
    Off,
    /// The engine's default network, shared with other containers: no
    /// egress rule can single the job out there.
    Shared,
    /// A network of the job's own, which the egress policy can hold off
    /// the host and private networks.
    Own,
}

/// One step of a job (the build, the `ignore` command) in a container of
/// its own.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// What the step is (`build`, `ignore`): in its container's name and
    /// labels.
    pub role: &'static str,
    pub image: String,
    /// Run with `sh -c`.
    pub command: String,
    /// Absolute path inside the container the command runs in.
    pub working_dir: String,
    pub env: Vec<(String, String)>,
    pub limits: Limits,
    /// Whether the step joins the job's network; without, it has none.
    pub networked: bool,
    /// Whether the job's scratch cache is mounted at [`cache::CACHE_DIR`].
    pub cache: bool,
}

/// A step made by [`Workspace::create_step`], ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepId(pub String);

/// What an earlier life of the runner left on the engine and
/// [`Executor::sweep`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
}

/// An engine that runs jobs' steps in containers.
#[async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// The engine's name for messages: "Docker", "Podman".
    fn engine_name(&self) -> &'static str;

    /// A workspace for one job. With `offline`, the job gets no network;
    /// otherwise its network starts being made now, in the background.
    fn open(&self, job: JobIds, offline: bool) -> Box<dyn Workspace>;

    /// Removes every object runner instance `instance` made: what a runner
    /// that died left behind. Nothing of other runners is touched.
    async fn sweep(&self, instance: &str) -> Result<Swept, String>;

    /// Puts in place (or checks) what keeps builds off the runner's host
    /// and private networks; the error says what the operator can do.
    async fn check_egress(&self) -> Result<(), String>;

    /// Removes the site's caches of generations before `current` that no
    /// build uses; returns how many.
    async fn retire_cache(&self, key: &str, current: u64) -> usize;
}

/// A job's objects on the engine, and the steps that run among them.
#[async_trait]
pub trait Workspace: Send + Sync {
    /// Makes sure `image` is there, pulling it as `policy` says.
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageReady, ExecutorError>;

    /// Waits for the job's network. Returns it with lines for the build
    /// log (a fallback the build should know about); the error is the
    /// build's failure message.
    async fn network(&self) -> Result<(JobNetwork, Vec<String>), String>;

    /// Keeps the job's own network off the host and private networks for
    /// its life; the error says what the operator can do.
    async fn hold_off_private_networks(&self) -> Result<(), String>;

    /// Opens `nets` (private hosts the site allows) to the job's network
    /// until the workspace is cleaned up.
    async fn allow_private_hosts(&self, nets: &[Ipv4Net]) -> Result<(), String>;

    /// Makes the job's scratch cache, an empty copy the build writes to.
    async fn prepare_cache(&self, cache: &CacheVolume) -> Result<(), ExecutorError>;

    /// Makes a step's container and puts the source in (`source_tar`,
    /// written by [`source::write_workspace_tar`]).
    async fn create_step(&self, step: &StepSpec, source_tar: &Path) -> Result<StepId, ExecutorError>;

    /// Fills the scratch cache from the site's cache. `None`: no cache yet.
    async fn restore_cache(
        &self,
        cache: &CacheVolume,
        stop: &CancellationToken,
    ) -> Result<Option<u64>, String>;

    /// Runs a step to its end, its output sent to `output` as it comes. On
    /// `stop` it is stopped (SIGTERM, SIGKILL after `grace`) and ends
    /// [`Exit::Stopped`]. Also returns how long the engine took to start it.
    async fn run_step(
        &self,
        step: &StepId,
        output: &mpsc::Sender<LogItem>,
        stop: &CancellationToken,
        grace: Duration,
    ) -> Result<(Exit, Duration), ExecutorError>;

    /// Copies `path` out of the step's container into `dest`, at most
    /// `limit` bytes, unpacked with [`crate::inside::unpack`].
    async fn copy_out(
        &self,
        step: &StepId,
        path: &str,
        dest: &Path,
        limit: u64,
    ) -> Result<Downloaded, ExecutorError>;

    /// Whether directory `path` of the step's container holds anything.
    async fn has_entries(&self, step: &StepId, path: &str) -> Result<bool, ExecutorError>;

    /// Makes the scratch cache the site's cache `cache` (after the deploy).
    async fn save_cache(
        &self,
        cache: &CacheVolume,
        scratch_is_empty: bool,
        version: &str,
        limit_bytes: u64,
        stop: &CancellationToken,
    ) -> Result<Saved, String>;

    /// Removes everything the job made: containers first, then volumes,
    /// the network and its egress rules. Never interrupted by a stop.
    async fn clean_up(&self);
}
