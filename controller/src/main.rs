use clap::{Parser, Subcommand, ValueEnum};
use jamstack_controller::db::TokenKind;
use jamstack_controller::{Application, Config, demo, startup};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Self-hosted, Git-driven builds and atomic deploys for Jamstack sites.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Where the database and the deploy files live.
    #[arg(long, env = "JAMSTACK_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// The address to listen on.
    #[arg(long, env = "JAMSTACK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Sites are served at <site>.<domain>.
    #[arg(long, env = "JAMSTACK_DOMAIN", default_value = "localhost")]
    domain: String,
    /// The GitHub webhook secret; made and kept on first start when unset.
    #[arg(long, env = "JAMSTACK_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// The database: `postgres://USER:PASSWORD@HOST/DB` to share one between
    /// controllers; the SQLite file in the data directory when unset.
    #[arg(long, env = "JAMSTACK_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Builds running at once across all sites; 0 for no limit.
    #[arg(long, env = "JAMSTACK_MAX_CONCURRENT_BUILDS", default_value_t = 0)]
    max_concurrent_builds: i64,
    /// Builds running longer are stopped and failed.
    #[arg(long, env = "JAMSTACK_MAX_BUILD_MINUTES", default_value_t = 60)]
    max_build_minutes: u64,
    /// Seconds a runner's lease lasts without a heartbeat.
    #[arg(long, env = "JAMSTACK_LEASE_SECONDS", default_value_t = 60)]
    lease_seconds: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything on one machine: the controller with a runner inside it.
    Up {
        #[command(flatten)]
        server: ServerArgs,
        /// Also connect and build the bundled sample site.
        #[arg(long)]
        demo: bool,
        /// The image for sites whose jamstack.toml names none.
        #[arg(long, env = "JAMSTACK_DEFAULT_IMAGE", default_value = "jamstack/busybox:1")]
        default_image: String,
    },
    /// The controller alone; runners register with the registration token.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make a new token (revoking the previous one of that name) and print it.
    Token {
        kind: TokenChoice,
        /// The token's name.
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long, env = "JAMSTACK_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, env = "JAMSTACK_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokenChoice {
    /// The API's admin token.
    Admin,
    /// The token new runners exchange for their own
    /// (`jamstack-runner --registration-token`).
    Registration,
}

fn config_of(server: ServerArgs) -> Config {
    let mut config = Config::new(server.data_dir);
    config.listen = server.listen;
    config.domain = server.domain;
    config.webhook_secret = server.webhook_secret;
    config.database_url = server.database_url;
    config.max_concurrent_builds = server.max_concurrent_builds;
    config.max_build_duration = Duration::from_secs(server.max_build_minutes * 60);
    config.lease_duration = Duration::from_secs(server.lease_seconds.max(5));
    config.heartbeat_interval = (config.lease_duration / 3).min(config.heartbeat_interval);
    config
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Up {
            server,
            demo,
            default_image,
        } => {
            let app = Application::build(config_of(server)).await?;
            announce(&app);
            let mut runner =
                jamstack_runner::RunnerConfig::new(app.base_url(), &app.embedded_runner_token().await?);
            runner.name = "embedded".to_owned();
            runner.work_dir = app.state().config.data_dir.join("runner");
            runner.default_image = default_image;
            if demo {
                let (site, build_id) = demo::connect_and_build(app.state()).await?;
                println!(
                    "Demo site:     {}  (build {build_id} is running; the page appears when it ends)",
                    app.state().site_url(&site.name)
                );
                println!(
                    "Build log:     curl -H 'Authorization: Bearer <admin token>' {}/api/v1/builds/{build_id}/log",
                    app.base_url()
                );
            }
            let runner = tokio::spawn(jamstack_runner::run(runner));
            tokio::select! {
                served = app.run_until_stopped() => served,
                ran = runner => match ran {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.context("the embedded runner stopped")),
                    Err(e) => Err(anyhow::anyhow!("the embedded runner crashed: {e}")),
                },
            }
        }
        Command::Serve { server } => {
            let app = Application::build(config_of(server)).await?;
            announce(&app);
            app.run_until(shutdown_signal()).await?;
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Command::Token {
            kind,
            name,
            data_dir,
            database_url,
        } => {
            let kind = match kind {
                TokenChoice::Admin => TokenKind::Admin,
                TokenChoice::Registration => TokenKind::Registration,
            };
            let mut config = Config::new(data_dir);
            config.database_url = database_url;
            println!("{}", startup::mint_token(&config, kind, &name).await?);
            Ok(())
        }
    }
}

/// SIGTERM (systemd, Docker, Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn announce(app: &Application) {
    println!("Controller:    {}", app.base_url());
    println!("Sites:         {}", app.state().site_url("<site>"));
    println!(
        "Webhook:       {}/webhooks/github (secret: {})",
        app.base_url(),
        app.webhook_secret()
    );
    match &app.new_admin_token {
        Some(token) => println!("Admin token:   {token}   (shown once; keep it)"),
        None => {
            println!("Admin token:   made on first start; `jamstack-controller token admin` makes a new one")
        }
    }
    if let Some(token) = &app.new_registration_token {
        println!("Registration:  {token}   (for `jamstack-runner --registration-token`; shown once)");
    }
}
