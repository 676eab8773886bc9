use clap::{Parser, Subcommand, ValueEnum};
use jamstack_controller::config::{BlobStoreConfig, S3Config};
use jamstack_controller::db::TokenKind;
use jamstack_controller::{Application, Config, demo, startup};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    #[command(flatten)]
    storage: StorageArgs,
}

/// Where deploy files live, what a deploy may hold, and what is kept.
#[derive(Debug, clap::Args)]
struct StorageArgs {
    /// Store blobs in this S3-compatible bucket instead of <data-dir>/blobs.
    /// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    /// (or the usual AWS sources).
    #[arg(long, env = "JAMSTACK_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// The S3 endpoint for stores other than AWS, e.g. http://127.0.0.1:9000.
    #[arg(long, env = "JAMSTACK_S3_ENDPOINT", requires = "s3_bucket")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "JAMSTACK_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// A key prefix inside the bucket, so several installations can share it.
    #[arg(long, env = "JAMSTACK_S3_PREFIX", default_value = "")]
    s3_prefix: String,
    /// The largest file a deploy may hold, in MiB.
    #[arg(long, env = "JAMSTACK_MAX_FILE_SIZE_MB", default_value_t = 256)]
    max_file_size_mb: u64,
    /// The most files one deploy may hold.
    #[arg(long, env = "JAMSTACK_MAX_FILES", default_value_t = 100_000)]
    max_files: u64,
    /// The most bytes one deploy may hold, in MiB.
    #[arg(long, env = "JAMSTACK_MAX_DEPLOY_SIZE_MB", default_value_t = 10_240)]
    max_deploy_size_mb: u64,
    /// Deploys kept per site and context (production, previews, branches),
    /// besides the published one and those a hostname serves; 0 keeps all.
    #[arg(long, env = "JAMSTACK_KEEP_DEPLOYS", default_value_t = 20)]
    keep_deploys: u32,
    /// Minutes between garbage collections; 0 runs them only on
    /// POST /api/v1/gc.
    #[arg(long, env = "JAMSTACK_GC_INTERVAL_MINUTES", default_value_t = 60)]
    gc_interval_minutes: u64,
    /// Memory for the hottest small files the edge serves, in MiB.
    #[arg(long, env = "JAMSTACK_EDGE_CACHE_MB", default_value_t = 256)]
    edge_cache_mb: u64,
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
    /// The controller alone; runners connect to it with a runner token.
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
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokenChoice {
    Admin,
    Runner,
}

fn config_of(server: ServerArgs) -> Config {
    const MIB: u64 = 1024 * 1024;
    let mut config = Config::new(server.data_dir);
    config.listen = server.listen;
    config.domain = server.domain;
    config.webhook_secret = server.webhook_secret;
    let storage = server.storage;
    if let Some(bucket) = storage.s3_bucket {
        let mut s3 = S3Config::new(bucket);
        s3.endpoint = storage.s3_endpoint;
        s3.region = storage.s3_region;
        s3.prefix = storage.s3_prefix.trim_matches('/').to_owned();
        config.blob_store = BlobStoreConfig::S3(s3);
    }
    config.limits.max_file_size = storage.max_file_size_mb.saturating_mul(MIB);
    config.limits.max_files = storage.max_files;
    config.limits.max_deploy_size = storage.max_deploy_size_mb.saturating_mul(MIB);
    config.retention.keep_deploys = storage.keep_deploys;
    config.retention.gc_interval = std::time::Duration::from_secs(storage.gc_interval_minutes * 60);
    config.edge.memory_cache_bytes = storage.edge_cache_mb.saturating_mul(MIB);
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
            app.run_until_stopped().await
        }
        Command::Token { kind, name, data_dir } => {
            let kind = match kind {
                TokenChoice::Admin => TokenKind::Admin,
                TokenChoice::Runner => TokenKind::Runner,
            };
            println!(
                "{}",
                startup::mint_token(&Config::new(data_dir), kind, &name).await?
            );
            Ok(())
        }
    }
}

fn announce(app: &Application) {
    println!("Controller:    {}", app.base_url());
    println!("Deploy files:  {}", app.state().blobs.describe());
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
    if let Some(token) = &app.new_runner_token {
        println!("Runner token:  {token}   (for `jamstack-runner --token`; shown once)");
    }
}
