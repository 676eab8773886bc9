use anyhow::Context as _;
use clap::Parser;
use jamstack_controller::acme::{AcmeSettings, ChallengeKind};
use jamstack_controller::cli::{
    AcmeChallengeChoice, Cli, Command, ConnectArgs, ServerArgs, SmtpTlsChoice, TokenChoice,
};
use jamstack_controller::config::{BlobStoreConfig, S3Config, SmtpSettings, SmtpTls};
use jamstack_controller::config::{GitHubApp, GitHubOAuth, OidcSettings};
use jamstack_controller::db::TokenKind;
use jamstack_controller::{Application, Config, demo, embedded_runner, startup};
use std::time::Duration;

/// mimalloc rather than glibc's malloc: the edge allocates and frees a
/// few small buffers per request from many threads, where glibc's arenas
/// spend their time consolidating free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config_of(server: ServerArgs) -> anyhow::Result<Config> {
    const MIB: u64 = 1024 * 1024;
    let mut config = server.store.config();
    config.listen = server.listen;
    config.domain = server.domain;
    config.webhook_secret = server.webhook_secret;
    config.max_concurrent_builds = server.max_concurrent_builds;
    config.max_build_duration = Duration::from_secs(server.max_build_minutes * 60);
    config.lease_duration = Duration::from_secs(server.lease_seconds.max(5));
    config.queued_warning_after = Duration::from_secs(server.queued_warning_seconds);
    config.heartbeat_interval = (config.lease_duration / 3).min(config.heartbeat_interval);
    config.public_url = server.public_url;
    config.metrics_listen = server.metrics_listen;
    config.https_listen = server.https_listen;
    config.github_api_url = server.github_api_url;
    config.notifications.allow_private_targets = server.allow_private_hook_targets;
    config.proxy.allow_private_targets = server.allow_private_proxy_targets;
    config.proxy.timeout = Duration::from_secs(server.proxy_timeout_seconds.max(1));
    config.proxy.max_body_bytes = server.proxy_max_body_mib.saturating_mul(1024 * 1024);
    config.visitors.geoip_database = server.geoip_database;
    config.visitors.country_header = server.country_header;
    config.visitors.trusted_proxies = server.trusted_proxies;
    if let (Some(url), Some(from)) = (&server.smtp_url, &server.smtp_from) {
        let tls = match server.smtp_tls {
            SmtpTlsChoice::Starttls => SmtpTls::Starttls,
            SmtpTlsChoice::Tls => SmtpTls::Tls,
            SmtpTlsChoice::None => SmtpTls::None,
        };
        config.smtp = Some(SmtpSettings::from_url(url, tls, from).map_err(anyhow::Error::msg)?);
    }
    config.http.max_connections = server.max_connections.max(1);
    config.http.header_read_timeout = Duration::from_secs(server.header_read_timeout_seconds.max(1));
    config.allow_local_repositories = server.allow_local_repositories;
    config.dns_resolver = server.dns_resolver;
    config.acme = server.acme_directory.map(|directory| {
        let mut acme = AcmeSettings::new(directory.trim());
        acme.contact_email = server.acme_email.map(|email| email.trim().to_owned());
        acme.ca_root = server.acme_ca_root;
        acme.dns_hook = server.acme_dns_hook;
        acme.challenge = match server.acme_challenge {
            AcmeChallengeChoice::Http01 => ChallengeKind::Http01,
            AcmeChallengeChoice::TlsAlpn01 => ChallengeKind::TlsAlpn01,
        };
        acme.renew_before = Duration::from_secs(server.acme_renew_before_days * 24 * 3600);
        acme
    });
    config.oidc = match server.oidc_issuer.zip(server.oidc_client_id) {
        Some((issuer, client_id)) => {
            let secret = match (server.oidc_client_secret, server.oidc_client_secret_file) {
                (Some(secret), _) => secret,
                (None, Some(file)) => std::fs::read_to_string(&file)
                    .with_context(|| format!("reading --oidc-client-secret-file {}", file.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                (None, None) => anyhow::bail!(
                    "--oidc-issuer needs the client secret the provider gave: --oidc-client-secret-file \
                     FILE or the JAMSTACK_OIDC_CLIENT_SECRET environment variable"
                ),
            };
            let mut oidc = OidcSettings::new(issuer.trim(), client_id.trim(), secret.trim());
            oidc.name = server.oidc_name.trim().to_owned();
            oidc.groups_claim = server.oidc_groups_claim.trim().to_owned();
            oidc.ca_root = server.oidc_ca_root;
            Some(oidc)
        }
        None => None,
    };
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
    config.github_web_url = server.github_web_url.trim().trim_end_matches('/').to_owned();
    config.github_oauth = github_oauth_of(
        server.github_oauth_client_id,
        server.github_oauth_client_secret,
        server.github_oauth_client_secret_file,
    )?;
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
    config.retention.audit_days = storage.audit_retention_days;
    config.edge.memory_cache_bytes = storage.edge_cache_mb.saturating_mul(MIB);
    config.edge.index_cache_bytes = storage.edge_index_cache_mib.saturating_mul(MIB);
    Ok(config)
}

/// The OAuth client of "Sign in with GitHub", from its flags: an id
/// needs a secret, given as a value or in a file.
fn github_oauth_of(
    client_id: Option<String>,
    secret: Option<String>,
    secret_file: Option<std::path::PathBuf>,
) -> anyhow::Result<Option<GitHubOAuth>> {
    let Some(client_id) = client_id.map(|id| id.trim().to_owned()) else {
        return Ok(None);
    };
    if client_id.is_empty() {
        anyhow::bail!(
            "--github-oauth-client-id is empty; give the client ID shown on the OAuth app's page on GitHub"
        );
    }
    let secret = match (secret, secret_file) {
        (Some(secret), _) => secret,
        (None, Some(file)) => std::fs::read_to_string(&file)
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading the GitHub OAuth client secret from {}: {e}; give a file holding the secret \
                     GitHub generated for the OAuth app",
                    file.display()
                )
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (None, None) => anyhow::bail!(
            "--github-oauth-client-id needs the app's client secret too: set JAMSTACK_GITHUB_OAUTH_CLIENT_SECRET \
             or give --github-oauth-client-secret-file"
        ),
    };
    let secret = secret.trim();
    if secret.is_empty() {
        anyhow::bail!(
            "the GitHub OAuth client secret is empty; generate one on the OAuth app's page on GitHub"
        );
    }
    Ok(Some(GitHubOAuth {
        client_id,
        client_secret: secret.to_owned().into(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    jamstack_program::install_tls_provider();
    let cli = Cli::parse();
    jamstack_program::logging::init(cli.log_format, "info,tower_http=warn,sqlx=warn");
    match cli.command {
        Command::Up {
            server,
            demo,
            default_image,
            allow_private_networks,
        } => {
            // Found before anything starts, so a missing one stops `up` at once.
            let runner_program = embedded_runner::runner_program()?;
            if demo {
                // Before anything is made or bound: a machine that cannot
                // build the demo is told so, and no first start is spent.
                demo::ensure_image(&runner_program).await?;
            }
            let mut config = config_of(server)?;
            // The demo site's repository is a folder in the data directory.
            config.allow_local_repositories |= demo;
            let app = Application::build(config).await?;
            announce(&app);
            let runner = jamstack_proto::embedded_runner::EmbeddedRunnerSettings {
                controller_url: app.base_url().to_owned(),
                token: app.embedded_runner_token().await?,
                name: "embedded".to_owned(),
                work_dir: app.state().config.data_dir.join("runner"),
                // A build's output past what the controller would take as a
                // deploy is refused by the runner before it fills the disk.
                publish_limit_bytes: app.state().config.limits.max_deploy_size,
                default_image,
                allow_private_networks,
            };
            if demo {
                let (site, build_id) = {
                    let state = app.state();
                    demo::connect_and_build(&state.config.data_dir, &state.db, &state.queue).await?
                };
                println!(
                    "Demo site:     {}  (build {build_id} is running; the page appears when it ends)",
                    app.state().urls.site_url(&site.name)
                );
                println!(
                    "Build log:     curl -H 'Authorization: Bearer <admin token>' {}/api/v1/builds/{build_id}/log",
                    app.base_url()
                );
            }
            // The runner stops first, while the controller still answers,
            // so it can hand its job back; then the controller stops.
            let stop_runner = tokio_util::sync::CancellationToken::new();
            let supervisor = tokio::spawn(embedded_runner::supervise(
                runner_program,
                runner,
                cli.log_format,
                stop_runner.clone(),
            ));
            app.run_until(async move {
                shutdown_signal().await;
                stop_runner.cancel();
                let _ = supervisor.await;
            })
            .await?;
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Command::Serve { server } => {
            let app = Application::build(config_of(server)?).await?;
            announce(&app);
            app.run_until(shutdown_signal()).await?;
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Command::Connect(args) => connect(args).await,
        Command::ConfigReference => {
            print!(
                "{}",
                jamstack_controller::config_reference::with_runner_section()?
            );
            Ok(())
        }
        Command::Token { kind, name, store } => {
            let kind = match kind {
                TokenChoice::Admin => TokenKind::Admin,
                TokenChoice::Registration => TokenKind::Registration,
            };
            println!("{}", startup::mint_token(&store.config(), kind, &name).await?);
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
    let production_branch = if answer["production_branch_follows_default"] == true {
        "the repository's default branch (`main` until GitHub's first delivery names it)".to_owned()
    } else {
        format!("`{}`", answer["production_branch"].as_str().unwrap_or_default())
    };
    println!(
        "Production branch {production_branch}; branch deploys {}; deploy previews {}",
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
    println!("Deploy files:  {}", app.state().deploys.blobs.describe());
    println!("Sites:         {}", app.state().urls.site_url("<site>"));
    let state = app.state();
    println!(
        "Webhook:       {}/webhooks/github (secret: {})",
        state.urls.public_url,
        app.webhook_secret()
    );
    if state.github.client.has_app() {
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
