use clap::Parser;
use jamstack_runner::docker::{Limits, PullPolicy};
use jamstack_runner::log_format::LogLimits;
use jamstack_runner::{Runner, RunnerConfig};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Leases build jobs from a jamstack controller and runs them in Docker.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The controller's base URL.
    #[arg(
        long,
        env = "JAMSTACK_CONTROLLER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    controller: String,
    /// This runner's own token. Usually not needed: on first start the runner
    /// registers with --registration-token and keeps its token in the work
    /// directory.
    #[arg(
        long,
        env = "JAMSTACK_RUNNER_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    token: String,
    /// The controller's registration token (printed on its first start, or
    /// by `jamstack-controller token registration`).
    #[arg(long, env = "JAMSTACK_REGISTRATION_TOKEN", hide_env_values = true)]
    registration_token: Option<String>,
    /// Labels this runner offers; jobs that require labels need all of theirs.
    #[arg(long, env = "JAMSTACK_RUNNER_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// Jobs run at once.
    #[arg(long, env = "JAMSTACK_RUNNER_SLOTS", default_value_t = 1)]
    slots: u32,
    /// The name this runner shows in the controller and on the labels of its
    /// containers.
    #[arg(long, env = "JAMSTACK_RUNNER_NAME")]
    name: Option<String>,
    /// Where checkouts and build outputs live while a job runs, and the
    /// runner's state (one runner per directory).
    #[arg(long, env = "JAMSTACK_RUNNER_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// The image for sites whose jamstack.toml names none.
    #[arg(long, env = "JAMSTACK_DEFAULT_IMAGE", default_value = "jamstack/busybox:1")]
    default_image: String,
    /// Memory limit of a build container, in MiB (swap is not added).
    #[arg(long, default_value_t = 2048)]
    memory_mib: i64,
    /// CPUs a build container may use.
    #[arg(long, default_value_t = 2.0)]
    cpus: f64,
    /// Processes a build container may run at once.
    #[arg(long, default_value_t = 512)]
    pids: i64,
    /// The most memory a site may ask for, in MiB. Default: --memory-mib.
    #[arg(long)]
    max_memory_mib: Option<i64>,
    /// The most CPUs a site may ask for. Default: --cpus.
    #[arg(long)]
    max_cpus: Option<f64>,
    /// The most processes a site may ask for. Default: --pids.
    #[arg(long)]
    max_pids: Option<i64>,
    /// How long a build may run when its site sets no timeout, in minutes.
    #[arg(long, default_value_t = 30)]
    timeout_minutes: u64,
    /// The longest timeout a site may ask for, in minutes.
    #[arg(long, default_value_t = 120)]
    max_timeout_minutes: u64,
    /// Seconds a stopped build gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5)]
    stop_grace_seconds: u64,
    /// When to pull build images: if-not-present (images tagged `latest` are
    /// pulled every time), always or never.
    #[arg(long, env = "JAMSTACK_PULL_POLICY", default_value = "if-not-present")]
    pull: PullPolicy,
    /// Images builds may use, comma-separated; `*` matches anything
    /// (`jamstack/*,node:*`). Default: any image.
    #[arg(long, env = "JAMSTACK_ALLOWED_IMAGES", value_delimiter = ',')]
    allowed_images: Vec<String>,
    /// The image the build cache is copied in (it needs sh, cp, mv, rm, du,
    /// cut and find).
    #[arg(long, env = "JAMSTACK_HELPER_IMAGE", default_value = "jamstack/busybox:1")]
    helper_image: String,
    /// The most build output stored per build, in MiB; the rest is dropped
    /// with a notice.
    #[arg(long, default_value_t = 16)]
    log_limit_mib: u64,
    /// The largest build cache kept per site, in MiB.
    #[arg(long, default_value_t = 2048)]
    cache_limit_mib: u64,
    /// Give every build a Docker network of its own (true) or run builds on
    /// the default bridge (false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    network_per_job: bool,
    /// Seconds a call to the controller retries while the controller cannot
    /// be reached (waiting for work, connecting). A running job waits for
    /// its controller as long as it takes, its log kept on disk meanwhile.
    #[arg(long, env = "JAMSTACK_CONTROLLER_RETRY_SECONDS", default_value_t = 300)]
    controller_retry_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    jamstack_runner::install_tls_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = RunnerConfig::new(&args.controller, &args.token);
    config.registration_token = args.registration_token;
    config.labels = args.labels;
    config.slots = args.slots;
    if let Some(name) = args.name {
        config.name = name;
    }
    if let Some(dir) = args.work_dir {
        config.work_dir = dir;
    }
    config.default_image = args.default_image;
    let limits = |memory_mib: i64, cpus: f64, pids: i64| Limits {
        memory_bytes: memory_mib * 1024 * 1024,
        nano_cpus: (cpus * 1e9) as i64,
        pids,
    };
    config.limits = limits(args.memory_mib, args.cpus, args.pids);
    config.max_limits = limits(
        args.max_memory_mib.unwrap_or(args.memory_mib),
        args.max_cpus.unwrap_or(args.cpus),
        args.max_pids.unwrap_or(args.pids),
    );
    config.default_timeout = Duration::from_secs(args.timeout_minutes * 60);
    config.max_timeout = Duration::from_secs(args.max_timeout_minutes * 60);
    config.stop_grace = Duration::from_secs(args.stop_grace_seconds);
    config.pull_policy = args.pull;
    config.allowed_images = args
        .allowed_images
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    config.helper_image = args.helper_image;
    config.log_limits = LogLimits {
        build_bytes: args.log_limit_mib * 1024 * 1024,
        ..LogLimits::default()
    };
    config.cache_limit_bytes = args.cache_limit_mib * 1024 * 1024;
    config.network_per_job = args.network_per_job;
    config.controller_retry = Duration::from_secs(args.controller_retry_seconds);

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("stopping: the current build is stopped and cleaned up");
            shutdown.cancel();
        }
    });
    Runner::start(config).await?.run_until(shutdown).await
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
