use clap::Parser;
use jamstack_runner::cli::{Args, ImagesCommand, RunnerCommand};
use jamstack_runner::executor::Limits;
use jamstack_runner::log_format::LogLimits;
use jamstack_runner::{Runner, RunnerConfig};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    jamstack_program::install_tls_provider();
    let args = Args::parse();
    match args.command {
        Some(RunnerCommand::ConfigReference) => {
            print!("{}", jamstack_runner::config_reference::markdown());
            return Ok(());
        }
        Some(command) => {
            jamstack_program::logging::init(args.log_format, "info");
            return run_command(command).await;
        }
        None => {}
    }
    jamstack_program::logging::init(args.log_format, "info");
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
    config.publish_limit_bytes = args.publish_limit_mib.saturating_mul(1024 * 1024);
    config.network_per_job = args.network_per_job;
    config.allow_private_networks = args.allow_private_networks;
    config.executor = args.executor;
    config.podman_socket = args.podman_socket;
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

async fn run_command(command: RunnerCommand) -> anyhow::Result<()> {
    match command {
        RunnerCommand::EmbeddedRunner => jamstack_runner::embedded::run().await,
        RunnerCommand::ConfigReference => {
            print!("{}", jamstack_runner::config_reference::markdown());
            Ok(())
        }
        RunnerCommand::Images {
            command: ImagesCommand::BuildDemo { tag },
        } => {
            use jamstack_runner::images::{BUSYBOX_PATHS, DemoImage, ensure_demo_image};
            // `up --demo` shows these lines among its own, hence the label.
            let say = |line: &str| println!("Demo image:    {line}");
            let busybox: Vec<&std::path::Path> = BUSYBOX_PATHS.iter().map(std::path::Path::new).collect();
            match ensure_demo_image(&tag, &busybox, &mut { say }).await? {
                DemoImage::Present => say(&format!("{tag} is in the Docker engine")),
                DemoImage::Built(took) => say(&format!("built {tag} in {:.1} s", took.as_secs_f64())),
            }
            Ok(())
        }
    }
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
