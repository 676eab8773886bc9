use clap::{Parser, Subcommand, ValueEnum};
use jamstack_controller::config::GitHubApp;
use jamstack_controller::config::{BlobStoreConfig, S3Config};
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
    /// The controller's address as GitHub and browsers reach it, e.g.
    /// https://deploy.example.com: links in commit statuses and the webhook
    /// URL registered on repositories start with it. Defaults to
    /// http://<listen address>.
    #[arg(long, env = "JAMSTACK_PUBLIC_URL")]
    public_url: Option<String>,
    /// The GitHub App to act as: its App ID (from the App's settings page).
    #[arg(long, env = "JAMSTACK_GITHUB_APP_ID", requires = "github_app_key_file")]
    github_app_id: Option<u64>,
    /// The GitHub App's private key, the .pem file GitHub made for it.
    #[arg(long, env = "JAMSTACK_GITHUB_APP_KEY_FILE", requires = "github_app_id")]
    github_app_key_file: Option<PathBuf>,
    /// GitHub's REST API; for GitHub Enterprise Server, https://HOST/api/v3.
    #[arg(
        long,
        env = "JAMSTACK_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    github_api_url: String,
    /// The key that seals stored secrets (access tokens, generic webhook
    /// secrets); made on first start. Default: <data-dir>/secret.key.
    #[arg(long, env = "JAMSTACK_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Also sign in to the dashboard with a password: its argon2 hash, as
    /// `jamstack-controller hash-password` prints it (never the password).
    #[arg(long, env = "JAMSTACK_DASHBOARD_PASSWORD_HASH", hide_env_values = true)]
    dashboard_password_hash: Option<String>,
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
    /// The controller alone; runners register with the registration token.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Connect a repository as a site, through a running controller's API.
    Connect(ConnectArgs),
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
    /// Read a dashboard password from standard input (its first line) and
    /// print its argon2 hash for --dashboard-password-hash.
    HashPassword,
}

#[derive(Debug, clap::Args)]
struct ConnectArgs {
    /// The site's name: its hostname label, e.g. `blog` for blog.localhost.
    name: String,
    /// The repository on GitHub, `owner/name`; its pushes and pull requests
    /// build the site.
    #[arg(long)]
    github_repo: Option<String>,
    /// Where runners clone from; defaults to https://github.com/<github-repo>.git.
    #[arg(long)]
    repo_url: Option<String>,
    #[arg(long, default_value = "main")]
    production_branch: String,
    /// Build branch deploys of pushes to other branches.
    #[arg(long)]
    branch_deploys: bool,
    /// Do not build deploy previews of pull requests.
    #[arg(long)]
    no_deploy_previews: bool,
    /// The GitHub App installation that reaches the repository (found from
    /// installation events when not given).
    #[arg(long)]
    github_installation_id: Option<i64>,
    /// Connect with a personal access token held in this environment
    /// variable (never on the command line, where others can read it): the
    /// controller registers the repository's webhook with it.
    #[arg(long, value_name = "VARIABLE")]
    github_token_env: Option<String>,
    /// The controller's API.
    #[arg(long, env = "JAMSTACK_CONTROLLER", default_value = "http://127.0.0.1:8080")]
    controller: String,
    /// An admin token.
    #[arg(long, env = "JAMSTACK_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
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
    const MIB: u64 = 1024 * 1024;
    let mut config = Config::new(server.data_dir);
    config.listen = server.listen;
    config.domain = server.domain;
    config.webhook_secret = server.webhook_secret;
    config.database_url = server.database_url;
    config.max_concurrent_builds = server.max_concurrent_builds;
    config.max_build_duration = Duration::from_secs(server.max_build_minutes * 60);
    config.lease_duration = Duration::from_secs(server.lease_seconds.max(5));
    config.heartbeat_interval = (config.lease_duration / 3).min(config.heartbeat_interval);
    config.public_url = server.public_url;
    config.github_api_url = server.github_api_url;
    config.secret_key_file = server.secret_key_file;
    config.dashboard_password_hash = server
        .dashboard_password_hash
        .map(|hash| hash.trim().to_owned())
        .filter(|hash| !hash.is_empty());
    config.github_app =
        server
            .github_app_id
            .zip(server.github_app_key_file)
            .map(|(app_id, private_key_file)| GitHubApp {
                app_id,
                private_key_file,
            });
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
    jamstack_runner::install_tls_provider();
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
        Command::Connect(args) => connect(args).await,
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
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.chars().count() < MIN_PASSWORD_CHARS {
                anyhow::bail!(
                    "the password is {} characters long; use at least {MIN_PASSWORD_CHARS} \
                     (or sign in with the admin token alone)",
                    password.chars().count()
                );
            }
            println!("{}", jamstack_controller::auth::hash_password(password)?);
            Ok(())
        }
    }
}

/// The shortest dashboard password `hash-password` takes.
const MIN_PASSWORD_CHARS: usize = 12;

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

async fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let github_token = match &args.github_token_env {
        Some(variable) => Some(std::env::var(variable).map_err(|_| {
            anyhow::anyhow!(
                "--github-token-env names `{variable}`, which is not set; export the token in it first"
            )
        })?),
        None => None,
    };
    let body = serde_json::json!({
        "name": args.name,
        "github_repo": args.github_repo,
        "repo_url": args.repo_url,
        "production_branch": args.production_branch,
        "branch_deploys": args.branch_deploys,
        "deploy_previews": !args.no_deploy_previews,
        "github_installation_id": args.github_installation_id,
        "github_token": github_token,
    });
    let url = format!("{}/api/v1/sites", args.controller.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&args.admin_token)
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("calling {url}: {e}; is the controller running there? (--controller)")
        })?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "the controller refused ({status}): {}",
            answer["error"].as_str().unwrap_or("no reason given")
        );
    }
    println!(
        "Connected site `{}`: {}",
        args.name,
        answer["url"].as_str().unwrap_or("")
    );
    println!(
        "Production branch `{}`; branch deploys {}; deploy previews {}",
        args.production_branch,
        if args.branch_deploys { "on" } else { "off" },
        if args.no_deploy_previews { "off" } else { "on" },
    );
    let hook = &answer["github_webhook"];
    if hook["registered"] == true {
        println!(
            "Repository webhook registered (id {}) to {}",
            hook["hook_id"],
            hook["url"].as_str().unwrap_or("")
        );
    } else if let Some(error) = hook["error"].as_str() {
        println!("The repository webhook was not registered: {error}");
    } else if args.github_repo.is_some() {
        println!(
            "Deliveries come from the GitHub App's webhook once it is installed on the repository, \
             or point the repository's webhook at {}/webhooks/github with the controller's secret",
            args.controller.trim_end_matches('/')
        );
    }
    Ok(())
}

fn announce(app: &Application) {
    println!("Controller:    {}", app.base_url());
    println!("Deploy files:  {}", app.state().blobs.describe());
    println!("Sites:         {}", app.state().site_url("<site>"));
    let state = app.state();
    println!(
        "Webhook:       {}/webhooks/github (secret: {})",
        state.public_url,
        app.webhook_secret()
    );
    if state.github.has_app() {
        println!("GitHub App:    configured; installations reach repositories as GitHub reports them");
    }
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
