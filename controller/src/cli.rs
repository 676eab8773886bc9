//! The `jamstack-controller` command line: every subcommand, flag and
//! environment variable. `main.rs` turns it into a [`crate::Config`];
//! `docs/configuration.md` is generated from it (`config_reference`).

use clap::{Parser, Subcommand, ValueEnum};
use jamstack_program::logging::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Self-hosted, Git-driven builds and atomic deploys for Jamstack sites.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines are written: text for people, json (one object per
    /// line, with the span fields such as build_id) for log collectors.
    #[arg(long, global = true, env = "JAMSTACK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Where the controller keeps what it must find again: its data directory,
/// its database and the key that seals stored secrets. One definition for
/// every command that opens them (`up`, `serve`, `token`), so one set of
/// flags or one environment file serves them all.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct StoreArgs {
    /// Where the database and the deploy files live.
    #[arg(long, env = "JAMSTACK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The database: `postgres://USER:PASSWORD@HOST/DB` to share one between
    /// controllers; the SQLite file in the data directory when unset.
    #[arg(long, env = "JAMSTACK_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The key that seals stored secrets (access tokens, generic webhook
    /// secrets); made on first start. Default: <data-dir>/secret.key.
    #[arg(long, env = "JAMSTACK_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The controller's settings with these in place and every other one
    /// at its default.
    pub fn config(self) -> crate::Config {
        let mut config = crate::Config::new(self.data_dir);
        config.database_url = self.database_url;
        config.secret_key_file = self.secret_key_file;
        config
    }
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The address to listen on.
    #[arg(long, env = "JAMSTACK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Sites are served at <site>.<domain>.
    #[arg(long, env = "JAMSTACK_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// The GitHub webhook secret; made and kept on first start when unset.
    #[arg(long, env = "JAMSTACK_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Builds running at once across all sites; 0 for no limit.
    #[arg(long, env = "JAMSTACK_MAX_CONCURRENT_BUILDS", default_value_t = 0)]
    pub max_concurrent_builds: i64,
    /// Builds running longer are stopped and failed.
    #[arg(long, env = "JAMSTACK_MAX_BUILD_MINUTES", default_value_t = 60)]
    pub max_build_minutes: u64,
    /// Seconds a build may wait in the queue before it says why it waits
    /// (API, dashboard, commit status); one needing labels no runner has
    /// says so at once.
    #[arg(long, env = "JAMSTACK_QUEUED_WARNING_SECONDS", default_value_t = 60)]
    pub queued_warning_seconds: u64,
    /// Seconds a runner's lease lasts without a heartbeat.
    #[arg(long, env = "JAMSTACK_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u64,
    /// The controller's address as GitHub and browsers reach it, e.g.
    /// https://deploy.example.com: links in commit statuses and the webhook
    /// URL registered on repositories start with it. Defaults to
    /// http://<listen address>.
    #[arg(long, env = "JAMSTACK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The GitHub App to act as: its App ID (from the App's settings page).
    #[arg(long, env = "JAMSTACK_GITHUB_APP_ID", requires = "github_app_key_file")]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key, the .pem file GitHub made for it.
    #[arg(long, env = "JAMSTACK_GITHUB_APP_KEY_FILE", requires = "github_app_id")]
    pub github_app_key_file: Option<PathBuf>,
    /// GitHub's REST API; for GitHub Enterprise Server, https://HOST/api/v3.
    #[arg(
        long,
        env = "JAMSTACK_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// GitHub's web address, where people sign in to GitHub and approve
    /// "Sign in with GitHub"; for GitHub Enterprise Server, https://HOST.
    #[arg(long, env = "JAMSTACK_GITHUB_WEB_URL", default_value = "https://github.com")]
    pub github_web_url: String,
    /// Offer "Sign in with GitHub" on the dashboard: the client ID of an
    /// OAuth app (or of the GitHub App) whose callback URL is
    /// <public-url>/login/github/callback. Needs its client secret too.
    #[arg(long, env = "JAMSTACK_GITHUB_OAUTH_CLIENT_ID")]
    pub github_oauth_client_id: Option<String>,
    /// The OAuth app's client secret. It is a secret: prefer the
    /// environment variable, or --github-oauth-client-secret-file.
    #[arg(
        long,
        env = "JAMSTACK_GITHUB_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        requires = "github_oauth_client_id",
        conflicts_with = "github_oauth_client_secret_file"
    )]
    pub github_oauth_client_secret: Option<String>,
    /// A file holding the OAuth app's client secret (its first line), e.g.
    /// a mounted secret.
    #[arg(
        long,
        env = "JAMSTACK_GITHUB_OAUTH_CLIENT_SECRET_FILE",
        requires = "github_oauth_client_id"
    )]
    pub github_oauth_client_secret_file: Option<PathBuf>,
    /// Also serve /metrics without a token on this address (e.g.
    /// 10.0.0.5:9100, reachable only by the scraper's network). Unset:
    /// /metrics is served on --listen only, to tokens with the `read` scope.
    #[arg(long, env = "JAMSTACK_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Also serve HTTPS on this address (e.g. 0.0.0.0:443): sites, the
    /// dashboard and the API, HTTP/1.1 and HTTP/2, with the certificates
    /// stored by `jamstack certificates upload`. Then plain HTTP answers
    /// ACME challenges and redirects sites to HTTPS (a per-site switch).
    #[arg(long, env = "JAMSTACK_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// Also sign in to the dashboard with a password: its argon2 hash, as
    /// `jamstack-controller hash-password` prints it (never the password).
    #[arg(long, env = "JAMSTACK_DASHBOARD_PASSWORD_HASH", hide_env_values = true)]
    pub dashboard_password_hash: Option<String>,
    /// Let notification hooks call private and local addresses (loopback,
    /// 10/8, 172.16/12, 192.168/16, link-local, ...), e.g. a receiver on the
    /// same private network. Off: hooks call public addresses only.
    #[arg(long, env = "JAMSTACK_ALLOW_PRIVATE_HOOK_TARGETS")]
    pub allow_private_hook_targets: bool,
    /// Let proxy rewrites (a `200` rule to an http(s):// URL) reach private
    /// and local addresses, as --allow-private-hook-targets does for hooks.
    /// Off: a proxied page on a private address gets a 502 page.
    #[arg(long, env = "JAMSTACK_ALLOW_PRIVATE_PROXY_TARGETS")]
    pub allow_private_proxy_targets: bool,
    /// How long a proxy rewrite's upstream may take to connect and to start
    /// answering before the visitor gets a 504 page.
    #[arg(long, env = "JAMSTACK_PROXY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub proxy_timeout_seconds: u64,
    /// The largest request or answer body a proxy rewrite forwards, in MiB.
    #[arg(long, env = "JAMSTACK_PROXY_MAX_BODY_MIB", default_value_t = 100)]
    pub proxy_max_body_mib: u64,
    /// A GeoIP2 or GeoLite2 Country or City database (.mmdb) that tells
    /// the edge which country a visitor's address is in, for rules with a
    /// `Country` condition. Unset (and no --country-header): deploys using
    /// `Country` are refused.
    #[arg(long, env = "JAMSTACK_GEOIP_DATABASE")]
    pub geoip_database: Option<PathBuf>,
    /// A header a proxy or CDN in front sets to the visitor's ISO country
    /// code (e.g. CF-IPCountry), believed only from --trusted-proxies.
    #[arg(long, env = "JAMSTACK_COUNTRY_HEADER", requires = "trusted_proxies")]
    pub country_header: Option<String>,
    /// Addresses or CIDR ranges of the proxies in front of the controller
    /// (e.g. 10.0.0.0/8,192.0.2.7), comma-separated: only from them are
    /// X-Forwarded-For (for --geoip-database) and --country-header believed.
    #[arg(long, env = "JAMSTACK_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The SMTP server e-mail notifications go through, as
    /// smtp://USER:PASSWORD@HOST:PORT (user and password percent-encoded;
    /// smtps:// is --smtp-tls tls). Unset: hooks of kind `email` are
    /// refused. The password is a secret: prefer the environment variable.
    #[arg(
        long,
        env = "JAMSTACK_SMTP_URL",
        hide_env_values = true,
        requires = "smtp_from"
    )]
    pub smtp_url: Option<String>,
    /// How the SMTP connection is secured: `starttls` (upgraded after
    /// connecting, port 587 by default), `tls` (from the first byte, port
    /// 465) or `none` (plain text, port 25: a relay on this host only).
    #[arg(long, env = "JAMSTACK_SMTP_TLS", value_enum, default_value_t = SmtpTlsChoice::Starttls)]
    pub smtp_tls: SmtpTlsChoice,
    /// The From address of notification e-mails, e.g.
    /// "Deploys <deploys@example.com>".
    #[arg(long, env = "JAMSTACK_SMTP_FROM", requires = "smtp_url")]
    pub smtp_from: Option<String>,
    /// Connections served at once; more wait until one closes. Bounds what
    /// idle or slow clients can hold.
    #[arg(long, env = "JAMSTACK_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's head (request line
    /// and headers) before its connection is closed.
    #[arg(long, env = "JAMSTACK_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_read_timeout_seconds: u64,
    /// Let sites clone from paths on the runner's machine, file:// and any
    /// other URL, not only https:// and ssh:// (a single machine, tests; `up --demo`
    /// turns it on). Off: a `sites` token could read any repository on the
    /// runners' disks.
    #[arg(long, env = "JAMSTACK_ALLOW_LOCAL_REPOSITORIES")]
    pub allow_local_repositories: bool,
    /// The DNS server (IP:PORT) that custom domains' proof of control, the
    /// TXT record _jamstack-challenge.<domain>, is looked up at. Unset: the
    /// system's resolver (/etc/resolv.conf).
    #[arg(long, env = "JAMSTACK_DNS_RESOLVER")]
    pub dns_resolver: Option<SocketAddr>,
    /// Get certificates by ACME from this CA's directory, e.g.
    /// https://acme-v02.api.letsencrypt.org/directory: for every verified
    /// custom domain, and for *.<domain> when --acme-dns-hook is set;
    /// renewed by themselves. Unset: only uploaded certificates are served.
    #[arg(long, env = "JAMSTACK_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// The address the CA writes to about the ACME account (expiry
    /// warnings, policy changes).
    #[arg(long, env = "JAMSTACK_ACME_EMAIL", requires = "acme_directory")]
    pub acme_email: Option<String>,
    /// A PEM file of the root to trust for the CA's own HTTPS instead of
    /// the system's roots: for a private or test CA (pebble) only.
    #[arg(long, env = "JAMSTACK_ACME_CA_ROOT", requires = "acme_directory")]
    pub acme_ca_root: Option<PathBuf>,
    /// An executable that publishes DNS-01 TXT records, called as
    /// `<hook> present|cleanup _acme-challenge.<name>. <value>` (lego's exec
    /// convention): with it, the wildcard *.<domain> is issued, so every
    /// site, preview and branch deploy is served over HTTPS.
    #[arg(long, env = "JAMSTACK_ACME_DNS_HOOK", requires = "acme_directory")]
    pub acme_dns_hook: Option<PathBuf>,
    /// How custom domains prove control to the CA: `http-01` (the CA asks
    /// http://<name>/.well-known/acme-challenge/ on port 80) or
    /// `tls-alpn-01` (the CA connects to port 443; needs --https-listen).
    #[arg(long, env = "JAMSTACK_ACME_CHALLENGE", value_enum, default_value_t = AcmeChallengeChoice::Http01)]
    pub acme_challenge: AcmeChallengeChoice,
    /// Renew a certificate this many days before it expires (or at two
    /// thirds of its life, for certificates shorter-lived than that).
    #[arg(
        long,
        env = "JAMSTACK_ACME_RENEW_BEFORE_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=365)
    )]
    pub acme_renew_before_days: u64,
    /// Also sign in to the dashboard through this OpenID Connect provider:
    /// its issuer URL, e.g. https://id.example.com/realms/staff (the one its
    /// ID tokens name). Register the redirect URL
    /// <public-url>/login/oidc/callback with it.
    #[arg(long, env = "JAMSTACK_OIDC_ISSUER", requires = "oidc_client_id")]
    pub oidc_issuer: Option<String>,
    /// This controller's client id at the OpenID Connect provider.
    #[arg(long, env = "JAMSTACK_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// The client secret the provider gave. It is a secret: prefer the
    /// environment variable or --oidc-client-secret-file.
    #[arg(
        long,
        env = "JAMSTACK_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        requires = "oidc_issuer",
        conflicts_with = "oidc_client_secret_file"
    )]
    pub oidc_client_secret: Option<String>,
    /// A file holding the client secret (its first line).
    #[arg(long, env = "JAMSTACK_OIDC_CLIENT_SECRET_FILE", requires = "oidc_issuer")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The sign-in button's label: "Sign in with <name>".
    #[arg(long, env = "JAMSTACK_OIDC_NAME", default_value = "OpenID Connect")]
    pub oidc_name: String,
    /// The ID token claim listing the person's groups (an array of
    /// strings); teams' automatic rules name them as oidc-group:<group>.
    #[arg(long, env = "JAMSTACK_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// A PEM file of a root to trust for the provider's HTTPS besides the
    /// system's: for a private or test provider only.
    #[arg(long, env = "JAMSTACK_OIDC_CA_ROOT", requires = "oidc_issuer")]
    pub oidc_ca_root: Option<PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// An address (a network of one) or a CIDR range.
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is neither an IP address nor a CIDR range like 10.0.0.0/8"))
}

/// How custom domains prove control to the ACME CA (`--acme-challenge`);
/// the platform's wildcard always uses DNS-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AcmeChallengeChoice {
    #[value(name = "http-01")]
    Http01,
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
}

/// How the SMTP connection is secured (`--smtp-tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTlsChoice {
    Starttls,
    Tls,
    None,
}

/// Where deploy files live, what a deploy may hold, and what is kept.
#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Store blobs in this S3-compatible bucket instead of <data-dir>/blobs.
    /// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    /// (or the usual AWS sources).
    #[arg(long, env = "JAMSTACK_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// The S3 endpoint for stores other than AWS, e.g. http://127.0.0.1:9000.
    #[arg(long, env = "JAMSTACK_S3_ENDPOINT", requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "JAMSTACK_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// A key prefix inside the bucket, so several installations can share it.
    #[arg(long, env = "JAMSTACK_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// The largest file a deploy may hold, in MiB.
    #[arg(long, env = "JAMSTACK_MAX_FILE_SIZE_MB", default_value_t = 256)]
    pub max_file_size_mb: u64,
    /// The most files one deploy may hold.
    #[arg(long, env = "JAMSTACK_MAX_FILES", default_value_t = 100_000)]
    pub max_files: u64,
    /// The most bytes one deploy may hold, in MiB.
    #[arg(long, env = "JAMSTACK_MAX_DEPLOY_SIZE_MB", default_value_t = 10_240)]
    pub max_deploy_size_mb: u64,
    /// Deploys kept per site and context (production, previews, branches),
    /// besides the published one and those a hostname serves; 0 keeps all.
    #[arg(long, env = "JAMSTACK_KEEP_DEPLOYS", default_value_t = 20)]
    pub keep_deploys: u32,
    /// Minutes between garbage collections; 0 runs them only on
    /// POST /api/v1/gc.
    #[arg(long, env = "JAMSTACK_GC_INTERVAL_MINUTES", default_value_t = 60)]
    pub gc_interval_minutes: u64,
    /// Days the audit log keeps an entry; older ones are removed every
    /// hour. 0 keeps every entry forever.
    #[arg(long, env = "JAMSTACK_AUDIT_RETENTION_DAYS", default_value_t = 365)]
    pub audit_retention_days: u32,
    /// Memory for the hottest small files the edge serves, in MiB.
    #[arg(long, env = "JAMSTACK_EDGE_CACHE_MB", default_value_t = 256)]
    pub edge_cache_mb: u64,
    /// Memory for the file lists (indexes) of the deploys the edge serves,
    /// in MiB, shared by all sites; the least recently served are dropped
    /// past it and read again from the database when next requested. About
    /// 0.15 KB a file, 0.3 KB with both compressed variants: 256 MiB holds
    /// the entries of 900,000 to 1,800,000 files.
    #[arg(long, env = "JAMSTACK_EDGE_INDEX_CACHE_MIB", default_value_t = 256)]
    pub edge_index_cache_mib: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything on one machine: the controller, and a runner in a child
    /// process it restarts when it dies.
    Up {
        #[command(flatten)]
        server: ServerArgs,
        /// Also connect and build the bundled sample site.
        #[arg(long)]
        demo: bool,
        /// The image for sites whose jamstack.toml names none.
        #[arg(long, env = "JAMSTACK_DEFAULT_IMAGE", default_value = "jamstack/busybox:1")]
        default_image: String,
        /// Let builds reach this host and its private networks (10/8,
        /// 172.16/12, 192.168/16, 100.64/10, link-local and cloud metadata).
        /// Off, builds reach the public internet only, through iptables rules
        /// the runner installs (it needs root and iptables); a runner that
        /// cannot install them refuses builds with network until this is given.
        #[arg(long, env = "JAMSTACK_ALLOW_PRIVATE_NETWORKS")]
        allow_private_networks: bool,
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
        /// Which token to make.
        kind: TokenChoice,
        /// The token's name.
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Read a dashboard password from standard input (its first line) and
    /// print its argon2 hash for --dashboard-password-hash.
    HashPassword,
    /// Print docs/configuration.md, the reference of every flag, made from
    /// these definitions and the `jamstack-runner` program's.
    #[command(hide = true)]
    ConfigReference,
}

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The site's name: its hostname label, e.g. `blog` for blog.localhost.
    pub name: String,
    /// The repository on GitHub, `owner/name`; its pushes and pull requests
    /// build the site.
    #[arg(long)]
    pub github_repo: Option<String>,
    /// Where runners clone from; defaults to https://github.com/<github-repo>.git.
    #[arg(long)]
    pub repo_url: Option<String>,
    /// The branch whose builds go live; without it, the GitHub repository's
    /// default branch, as its deliveries name it.
    #[arg(long)]
    pub production_branch: Option<String>,
    /// Build branch deploys of pushes to other branches.
    #[arg(long)]
    pub branch_deploys: bool,
    /// Do not build deploy previews of pull requests.
    #[arg(long)]
    pub no_deploy_previews: bool,
    /// The GitHub App installation that reaches the repository (found from
    /// installation events when not given).
    #[arg(long)]
    pub github_installation_id: Option<i64>,
    /// Connect with a personal access token held in this environment
    /// variable (never on the command line, where others can read it): the
    /// controller registers the repository's webhook with it.
    #[arg(long, value_name = "VARIABLE")]
    pub github_token_env: Option<String>,
    /// The controller's API.
    #[arg(long, env = "JAMSTACK_CONTROLLER", default_value = "http://127.0.0.1:8080")]
    pub controller: String,
    /// An admin token.
    #[arg(long, env = "JAMSTACK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenChoice {
    /// The API's admin token.
    Admin,
    /// The token new runners exchange for their own
    /// (`jamstack-runner --registration-token`).
    Registration,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store each command would open, parsed from `args`.
    fn store_of(args: &[&str]) -> StoreArgs {
        let cli = Cli::try_parse_from(std::iter::once("jamstack-controller").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} is refused: {e}"));
        match cli.command {
            Command::Up { server, .. } | Command::Serve { server } => server.store,
            Command::Token { store, .. } => store,
            other => panic!("{other:?} opens no store"),
        }
    }

    #[test]
    fn every_command_that_opens_the_store_takes_the_same_flags() {
        let store = [
            "--data-dir",
            "/srv/jamstack",
            "--database-url",
            "postgres://jamstack@db/jamstack",
            "--secret-key-file",
            "/etc/jamstack/secret.key",
        ];
        let expected = StoreArgs {
            data_dir: "/srv/jamstack".into(),
            database_url: Some("postgres://jamstack@db/jamstack".to_owned()),
            secret_key_file: Some("/etc/jamstack/secret.key".into()),
        };
        for command in [
            &["up"][..],
            &["serve"],
            &["token", "admin"],
            &["token", "registration"],
        ] {
            let args: Vec<&str> = command.iter().chain(&store).copied().collect();
            assert_eq!(store_of(&args), expected, "{command:?}");
        }
    }
}
