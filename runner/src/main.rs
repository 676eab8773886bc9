use clap::Parser;
use jamstack_runner::{RunnerConfig, docker::Limits, run};
use std::path::PathBuf;

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
    /// The name this runner shows in the controller.
    #[arg(long, env = "JAMSTACK_RUNNER_NAME")]
    name: Option<String>,
    /// Where checkouts and build outputs live while a job runs, and where the
    /// runner keeps its token.
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
    config.limits = Limits {
        memory_bytes: args.memory_mib * 1024 * 1024,
        nano_cpus: (args.cpus * 1e9) as i64,
        pids: args.pids,
    };
    run(config).await
}
