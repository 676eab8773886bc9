//! The `jamstack-runner` command line: every flag and environment
//! variable. `main.rs` turns it into a [`crate::RunnerConfig`];
//! [`crate::config_reference`] documents it.

use crate::executor::ExecutorKind;
use crate::executor::image::PullPolicy;
use clap::{Parser, Subcommand};
use jamstack_program::logging::LogFormat;
use std::path::PathBuf;

/// Leases build jobs from a jamstack controller and runs them in Docker or Podman.
#[derive(Debug, Parser)]
#[command(version, disable_help_subcommand = true)]
pub struct Args {
    /// Something other than running: without one, the runner runs with
    /// these flags.
    #[command(subcommand)]
    pub command: Option<RunnerCommand>,
    /// The controller's base URL.
    #[arg(
        long,
        env = "JAMSTACK_CONTROLLER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub controller: String,
    /// This runner's own token. Usually not needed: on first start the runner
    /// registers with --registration-token and keeps its token in the work
    /// directory.
    #[arg(
        long,
        env = "JAMSTACK_RUNNER_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub token: String,
    /// The controller's registration token (printed on its first start, or
    /// by `jamstack-controller token registration`).
    #[arg(long, env = "JAMSTACK_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,
    /// Labels this runner offers; jobs that require labels need all of theirs.
    #[arg(long, env = "JAMSTACK_RUNNER_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Jobs run at once.
    #[arg(long, env = "JAMSTACK_RUNNER_SLOTS", default_value_t = 1)]
    pub slots: u32,
    /// The name this runner shows in the controller and on the labels of its
    /// containers.
    #[arg(long, env = "JAMSTACK_RUNNER_NAME")]
    pub name: Option<String>,
    /// Where checkouts and build outputs live while a job runs, and the
    /// runner's state, its token among it (one runner per directory; made
    /// readable by the runner's user only). Default: /var/lib/jamstack-runner
    /// for root, $XDG_STATE_HOME/jamstack-runner (~/.local/state/jamstack-runner)
    /// for other users.
    #[arg(long, env = "JAMSTACK_RUNNER_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// The image for sites whose jamstack.toml names none.
    #[arg(long, env = "JAMSTACK_DEFAULT_IMAGE", default_value = "jamstack/busybox:1")]
    pub default_image: String,
    /// Memory limit of a build container, in MiB (swap is not added).
    #[arg(long, default_value_t = 2048)]
    pub memory_mib: i64,
    /// CPUs a build container may use.
    #[arg(long, default_value_t = 2.0)]
    pub cpus: f64,
    /// Processes a build container may run at once.
    #[arg(long, default_value_t = 512)]
    pub pids: i64,
    /// The most memory a site may ask for, in MiB. Default: --memory-mib.
    #[arg(long)]
    pub max_memory_mib: Option<i64>,
    /// The most CPUs a site may ask for. Default: --cpus.
    #[arg(long)]
    pub max_cpus: Option<f64>,
    /// The most processes a site may ask for. Default: --pids.
    #[arg(long)]
    pub max_pids: Option<i64>,
    /// How long a build may run when its site sets no timeout, in minutes.
    #[arg(long, default_value_t = 30)]
    pub timeout_minutes: u64,
    /// The longest timeout a site may ask for, in minutes.
    #[arg(long, default_value_t = 120)]
    pub max_timeout_minutes: u64,
    /// Seconds a stopped build gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5)]
    pub stop_grace_seconds: u64,
    /// When to pull build images: if-not-present (images tagged `latest` are
    /// pulled every time), always or never.
    #[arg(long, env = "JAMSTACK_PULL_POLICY", default_value = "if-not-present")]
    pub pull: PullPolicy,
    /// Images builds may use, comma-separated; `*` matches anything
    /// (`jamstack/*,node:*`). Default: any image.
    #[arg(long, env = "JAMSTACK_ALLOWED_IMAGES", value_delimiter = ',')]
    pub allowed_images: Vec<String>,
    /// The image the build cache is copied in (it needs sh, cp, mv, rm, du,
    /// cut and find).
    #[arg(long, env = "JAMSTACK_HELPER_IMAGE", default_value = "jamstack/busybox:1")]
    pub helper_image: String,
    /// The most build output stored per build, in MiB; the rest is dropped
    /// with a notice.
    #[arg(long, default_value_t = 16)]
    pub log_limit_mib: u64,
    /// The largest build cache kept per site, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub cache_limit_mib: u64,
    /// The largest build output taken from a build container, in MiB (as
    /// the engine archives it); a larger one fails the build. Default: the
    /// controller's default --max-deploy-size-mb.
    #[arg(long, default_value_t = crate::DEFAULT_PUBLISH_LIMIT_MIB)]
    pub publish_limit_mib: u64,
    /// Give every build a Docker network of its own (true) or run builds on
    /// the default bridge (false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub network_per_job: bool,
    /// Let builds reach this host and its private networks (10/8,
    /// 172.16/12, 192.168/16, 100.64/10, link-local and cloud metadata).
    /// Off, builds reach the public internet only, through iptables rules
    /// the runner installs (it needs root and iptables); a runner that
    /// cannot install them refuses builds with network until this is given.
    #[arg(long, env = "JAMSTACK_ALLOW_PRIVATE_NETWORKS")]
    pub allow_private_networks: bool,
    /// What runs the builds' containers: the Docker engine (DOCKER_HOST or
    /// the local socket), or Podman's API service on --podman-socket
    /// (rootless where the host has cgroup v2; see scripts/start-podman.sh).
    /// On Podman, builds with network are refused unless
    /// --allow-private-networks is given: the firewall rules that keep
    /// builds off private networks hook Docker's bridges only.
    #[arg(long, env = "JAMSTACK_RUNNER_EXECUTOR", value_enum, default_value_t = ExecutorKind::Docker)]
    pub executor: ExecutorKind,
    /// The unix socket of Podman's API service, for --executor podman.
    #[arg(long, env = "JAMSTACK_PODMAN_SOCKET", default_value = crate::executor::podman::DEFAULT_SOCKET)]
    pub podman_socket: PathBuf,
    /// Seconds a call to the controller retries while the controller cannot
    /// be reached (waiting for work, connecting). A running job waits for
    /// its controller as long as it takes, its log kept on disk meanwhile.
    #[arg(long, env = "JAMSTACK_CONTROLLER_RETRY_SECONDS", default_value_t = 300)]
    pub controller_retry_seconds: u64,
    /// How log lines are written: text for people, json (one object per
    /// line, with the span fields such as build_id) for log collectors.
    #[arg(long, env = "JAMSTACK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum RunnerCommand {
    /// Build images on this machine, for the Docker engine the runner uses.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// The runner of `jamstack-controller up`, started by `up` with its
    /// settings on standard input; it stops when its standard input closes
    /// (see [`crate::embedded`]). Not for people.
    #[command(name = "embedded-runner", hide = true)]
    EmbeddedRunner,
    /// Print the runner's section of docs/configuration.md, made from these
    /// definitions; `jamstack-controller config-reference` adds it to its own.
    #[command(hide = true)]
    ConfigReference,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build the demo site's image from this machine's static busybox
    /// (Debian's busybox-static) when the engine lacks it; `up --demo` runs
    /// this before it starts.
    BuildDemo {
        /// The tag to give it.
        #[arg(long, default_value = crate::images::DEMO_IMAGE)]
        tag: String,
    },
}
