//! Controller settings. Every field has a default that works on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database and the local blob directory live.
    pub data_dir: PathBuf,
    /// Address the one HTTP listener binds: API, webhooks, runner API and
    /// the edge share it and are told apart by path and `Host`.
    pub listen: SocketAddr,
    /// Sites are served at `<site>.<domain>`; `localhost` resolves anywhere.
    pub domain: String,
    /// The GitHub webhook secret. When unset, one is made on first start and
    /// kept in the database.
    pub webhook_secret: Option<String>,
    /// How long a lease lasts without a heartbeat.
    pub lease_duration: Duration,
    /// How often runners are asked to send heartbeats.
    pub heartbeat_interval: Duration,
    /// Attempts of one build that may lose their runner (lease run out)
    /// before it fails; attempts handed back by a runner shutting down do
    /// not count.
    pub max_attempts: i64,
    /// The longest a runner's lease request is held open.
    pub max_lease_wait: Duration,
    /// Builds running longer are failed and their runner told to stop.
    pub max_build_duration: Duration,
    /// Jobs running at once across all sites and runners; 0 for no limit.
    pub max_concurrent_builds: i64,
    /// A build queued longer says why it waits (API, dashboard, commit
    /// status), so none waits in silence.
    pub queued_warning_after: Duration,
    /// The database URL; `None` for the SQLite file in the data directory.
    pub database_url: Option<String>,
    /// The controller's address as the world reaches it, e.g.
    /// `https://deploy.example.com`: links sent to GitHub (build logs) and
    /// the webhook URL registered on repositories start with it. Defaults
    /// to `http://<listen address>`.
    pub public_url: Option<String>,
    /// GitHub's REST API (GitHub Enterprise: `https://HOST/api/v3`).
    pub github_api_url: String,
    /// The GitHub App the controller acts as, if any.
    pub github_app: Option<GitHubApp>,
    /// GitHub's web address, where people sign in and approve apps
    /// (GitHub Enterprise: `https://HOST`).
    pub github_web_url: String,
    /// The OAuth app (or GitHub App) people sign in to the dashboard
    /// through; `None`: no "Sign in with GitHub".
    pub github_oauth: Option<GitHubOAuth>,
    /// The key that seals stored secrets (GitHub access tokens, generic
    /// webhook secrets). Defaults to `<data_dir>/secret.key`, made on first
    /// start; controllers sharing one database must share this file.
    pub secret_key_file: Option<PathBuf>,
    /// How calls to GitHub are retried when they fail.
    pub github_retry: RetryPolicy,
    /// Where blob bytes live.
    pub blob_store: BlobStoreConfig,
    /// What one deploy may hold.
    pub limits: DeployLimits,
    /// Which deploys are kept, and when unused blobs go.
    pub retention: Retention,
    /// The edge's memory.
    pub edge: EdgeSettings,
    /// The dashboard password's argon2 hash (a PHC string made by
    /// `jamstack-controller hash-password`); signing in with the admin token
    /// always works, with a password only when this is set.
    pub dashboard_password_hash: Option<String>,
    /// A second listener serving only `/metrics`, without a token, for a
    /// scraper on a private network. `None`: `/metrics` is served on the
    /// main listener only, to admin and API tokens.
    pub metrics_listen: Option<SocketAddr>,
    /// A second listener serving everything the main one does over TLS
    /// (HTTP/1.1 and h2), with the certificates in the database. When set,
    /// the main listener redirects sites to it (per site) and answers ACME
    /// HTTP-01 challenges.
    pub https_listen: Option<SocketAddr>,
    /// Outgoing notification webhooks.
    pub notifications: NotificationSettings,
    /// How the edge forwards proxy rewrites to upstreams.
    pub proxy: ProxySettings,
    /// How the edge tells where a visitor is (`Country` conditions).
    pub visitors: VisitorSettings,
    /// The SMTP server e-mail notifications go through; `None`: hooks of
    /// kind `email` are refused.
    pub smtp: Option<SmtpSettings>,
    /// Whether a site's repository may be a path on the runner's machine
    /// (or `file://`, or any URL but `https://`). Off: a `sites` token
    /// could otherwise have runners read any repository on their disk.
    pub allow_local_repositories: bool,
    /// What the listener allows a connection before it is authenticated.
    pub http: HttpLimits,
    /// The DNS server that TXT records proving control of custom domains
    /// are looked up at; `None` for the system's resolver.
    pub dns_resolver: Option<SocketAddr>,
    /// How often custom domains waiting for their TXT record are checked.
    pub domain_checks: CheckSchedule,
    /// Certificates by ACME (`--acme-*`); `None`: only uploaded
    /// certificates are served.
    pub acme: Option<AcmeSettings>,
    /// Dashboard sign-in through an OpenID Connect provider (`--oidc-*`);
    /// `None`: the sign-in page offers none.
    pub oidc: Option<OidcSettings>,
}

/// The operator's OpenID Connect provider (`--oidc-*`): who may sign in to
/// the dashboard through it, and where their groups are.
#[derive(Clone)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its ID tokens name it; its
    /// discovery document is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// This controller's client id at the provider.
    pub client_id: String,
    /// The client secret the provider gave; never logged.
    pub client_secret: String,
    /// The sign-in button's label: "Sign in with <name>".
    pub name: String,
    /// The ID token claim holding the person's groups (an array of
    /// strings); each becomes the source `oidc-group:<group>`.
    pub groups_claim: String,
    /// A PEM root to trust for the provider's HTTPS besides the system's:
    /// for a private or test provider.
    pub ca_root: Option<PathBuf>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<hidden>")
            .field("name", &self.name)
            .field("groups_claim", &self.groups_claim)
            .field("ca_root", &self.ca_root)
            .finish()
    }
}

impl OidcSettings {
    /// Settings for `issuer` and a client, every other one at its default.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        OidcSettings {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            name: "OpenID Connect".to_owned(),
            groups_claim: "groups".to_owned(),
            ca_root: None,
        }
    }
}

/// The operator's ACME settings (`--acme-*`).
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The directory URL of the CA, e.g. Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Where the CA may write about the account (expiry, policy changes).
    pub contact_email: Option<String>,
    /// A PEM root to trust for the CA's own HTTPS instead of the system's:
    /// for a test CA such as pebble, never for a public one.
    pub ca_root: Option<PathBuf>,
    /// The executable that publishes DNS-01 TXT records
    /// (`--acme-dns-hook`); without it the platform's wildcard is not
    /// issued.
    pub dns_hook: Option<PathBuf>,
    /// How custom domains prove control.
    pub challenge: ChallengeKind,
    /// Renew this long before expiry, or at two thirds of a certificate's
    /// life when that comes later (short-lived certificates).
    pub renew_before: Duration,
    /// How often the manager looks for names due an order (besides at
    /// once when a custom domain changes); shorter only in tests.
    pub check_interval: Duration,
}

impl AcmeSettings {
    /// Settings for `directory_url` and every other one at its default.
    pub fn new(directory_url: impl Into<String>) -> Self {
        AcmeSettings {
            directory_url: directory_url.into(),
            contact_email: None,
            ca_root: None,
            dns_hook: None,
            challenge: ChallengeKind::Http01,
            renew_before: Duration::from_secs(30 * 24 * 3600),
            check_interval: Duration::from_secs(30),
        }
    }
}

/// The ways a name's control is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ChallengeKind {
    /// A file at `http://<name>/.well-known/acme-challenge/<token>`.
    #[value(name = "http-01")]
    Http01,
    /// A certificate offered on port 443 to a ClientHello asking ALPN
    /// `acme-tls/1`.
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
    /// A TXT record at `_acme-challenge.<name>`; the only one for wildcards.
    #[value(name = "dns-01")]
    Dns01,
}

impl ChallengeKind {
    /// Its name in RFC 8555 and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Dns01 => "dns-01",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "http-01" => Some(ChallengeKind::Http01),
            "tls-alpn-01" => Some(ChallengeKind::TlsAlpn01),
            "dns-01" => Some(ChallengeKind::Dns01),
            _ => None,
        }
    }
}

/// How often waiting domains are checked in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSchedule {
    /// The pause after adding a domain, doubled after each failed check.
    pub first_delay: Duration,
    /// The longest pause between two checks.
    pub max_delay: Duration,
    /// After this long since it was added, a domain is no longer checked
    /// in the background (it is `failed`; asking to verify still works).
    pub give_up_after: Duration,
    /// How often the worker looks for due checks.
    pub poll_interval: Duration,
}

impl Default for CheckSchedule {
    /// A minute, doubling up to an hour, for three days.
    fn default() -> Self {
        CheckSchedule {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60 * 60),
            give_up_after: Duration::from_secs(3 * 24 * 60 * 60),
            poll_interval: Duration::from_secs(15),
        }
    }
}

impl CheckSchedule {
    /// When to check again after `attempts` failed checks of a domain
    /// added at `created_at`; `None` to give up.
    pub fn next_check(&self, created_at: i64, attempts: i64, now: i64) -> Option<i64> {
        let doublings = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
        let delay = self
            .first_delay
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max_delay);
        let at = now.saturating_add(millis(delay));
        (at <= created_at.saturating_add(millis(self.give_up_after))).then_some(at)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Bounds on what a client may hold of the listener before it has shown
/// who it is: connections, time to send a request's head, time to send an
/// unauthenticated body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; further ones wait in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's head (request line
    /// and headers); a connection still sending it then is closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send the body of a webhook or a runner
    /// registration, which are read before they are authenticated.
    pub body_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// How outgoing notifications are sent and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationSettings {
    /// Attempts per delivery and the waits between them; a delivery that
    /// fails every attempt is marked `failed`.
    pub retry: RetryPolicy,
    /// How long a receiver may take to answer before the attempt counts as
    /// failed.
    pub timeout: Duration,
    /// Whether hooks may call private and local addresses (loopback, the
    /// private networks, link-local such as cloud metadata). Off: a site's
    /// admin could otherwise reach the controller's own network.
    pub allow_private_targets: bool,
}

impl Default for NotificationSettings {
    /// Eight attempts over about 40 minutes.
    fn default() -> Self {
        NotificationSettings {
            retry: RetryPolicy {
                attempts: 8,
                first_delay: Duration::from_secs(10),
                max_delay: Duration::from_secs(30 * 60),
            },
            timeout: Duration::from_secs(10),
            allow_private_targets: false,
        }
    }
}

/// How the edge forwards a proxy rewrite (a `200` rule to an `http(s)://`
/// URL) to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySettings {
    /// How long an upstream may take to connect and to start answering
    /// before the visitor gets a 504 page.
    pub timeout: Duration,
    /// The largest request or answer body forwarded, in bytes.
    pub max_body_bytes: u64,
    /// Whether upstreams may be private and local addresses (loopback, the
    /// private networks, link-local such as cloud metadata). Off: a deploy's
    /// author could otherwise reach the controller's own network.
    pub allow_private_targets: bool,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            timeout: Duration::from_secs(30),
            max_body_bytes: 100 * 1024 * 1024,
            allow_private_targets: false,
        }
    }
}

/// How the edge learns a visitor's address and country, for rules with a
/// `Country` condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitorSettings {
    /// A GeoIP2 or GeoLite2 Country (or City) database, `.mmdb`.
    pub geoip_database: Option<PathBuf>,
    /// A header a proxy in front sets to the visitor's country code (e.g.
    /// `CF-IPCountry`); believed only from `trusted_proxies`.
    pub country_header: Option<String>,
    /// Peers whose `X-Forwarded-For` and country header are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl VisitorSettings {
    /// Whether a `Country` condition can be answered: deploys using one are
    /// refused otherwise.
    pub fn knows_countries(&self) -> bool {
        self.geoip_database.is_some() || self.country_header.is_some()
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// Plain text: a relay on this host or a test server only.
    None,
}

/// The operator's SMTP server, which e-mail notifications go through.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    /// `None`: the usual port of `tls` (587, 465 or 25).
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From header, e.g. `Deploys <deploys@example.com>`.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log.
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpSettings {
    /// Reads `smtp://[USER[:PASSWORD]@]HOST[:PORT]` (`smtps://` for TLS
    /// from the first byte, whatever `tls` says). Errors name the flag and
    /// never repeat the URL, which may hold the password.
    pub fn from_url(url: &str, tls: SmtpTls, from: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url.trim()).map_err(|e| {
            format!("--smtp-url is not a URL ({e}); write it as smtp://USER:PASSWORD@HOST:PORT")
        })?;
        let tls = match parsed.scheme() {
            "smtp" => tls,
            "smtps" => SmtpTls::Tls,
            other => {
                return Err(format!(
                    "--smtp-url has the scheme `{other}`; write it as smtp://USER:PASSWORD@HOST:PORT \
                     (smtps:// for TLS from the first byte)"
                ));
            }
        };
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or("--smtp-url names no host; write it as smtp://USER:PASSWORD@HOST:PORT")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| "--smtp-url's user or password is not UTF-8 once percent-decoded".to_owned())
        };
        let username = Some(parsed.username())
            .filter(|user| !user.is_empty())
            .map(decode)
            .transpose()?;
        let password = parsed.password().map(decode).transpose()?;
        if password.is_some() && username.is_none() {
            return Err("--smtp-url has a password but no user; write smtp://USER:PASSWORD@HOST".into());
        }
        let from = from.trim();
        if from.is_empty() {
            return Err(
                "--smtp-from is empty; give the notifications' sender, e.g. deploys@example.com".into(),
            );
        }
        Ok(SmtpSettings {
            host,
            port: parsed.port(),
            tls,
            username,
            password,
            from: from.to_owned(),
        })
    }
}

/// A GitHub App: its id and the private key GitHub made for it.
#[derive(Debug, Clone)]
pub struct GitHubApp {
    pub app_id: u64,
    /// The `.pem` file downloaded from the App's settings page.
    pub private_key_file: PathBuf,
}

/// The OAuth client the dashboard's "Sign in with GitHub" uses: an OAuth
/// app's, or a GitHub App's (its user authorization takes the same calls).
#[derive(Clone)]
pub struct GitHubOAuth {
    pub client_id: String,
    pub client_secret: secrecy::SecretString,
}

impl std::fmt::Debug for GitHubOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("GitHubOAuth")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Exponential backoff: the first retry waits `first_delay`, each next one
/// twice as long up to `max_delay`, for at most `attempts` calls in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The shorter of two policies, step by step.
    pub fn min_of(self, other: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            attempts: self.attempts.min(other.attempts),
            first_delay: self.first_delay.min(other.first_delay),
            max_delay: self.max_delay.min(other.max_delay),
        }
    }

    /// The policy as a backoff for calls retried in place: `attempts`
    /// calls in all means one fewer retries.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.first_delay.min(self.max_delay))
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }

    /// The wait before retry number `retry` (1 for the first retry), for
    /// retries scheduled in the database rather than slept on.
    pub fn delay(&self, retry: u32) -> Duration {
        use backon::BackoffBuilder;
        self.backoff()
            .without_max_times()
            .build()
            .nth(retry.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay)
    }
}

impl Default for RetryPolicy {
    /// About ten minutes of retries before a report is given up.
    fn default() -> Self {
        RetryPolicy {
            attempts: 12,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(120),
        }
    }
}

/// Where blobs are stored: a local directory (one controller), or an
/// S3-compatible bucket that several controllers share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStoreConfig {
    /// `<data_dir>/blobs`.
    Local,
    S3(S3Config),
}

/// An S3-compatible bucket: AWS S3, MinIO, Cloudflare R2, Ceph, moto.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub region: String,
    /// The endpoint URL for stores other than AWS (`http://127.0.0.1:9000`);
    /// `None` means AWS itself. Requests use path-style addressing.
    pub endpoint: Option<String>,
    /// Credentials; when unset, the usual AWS environment variables, web
    /// identity or instance metadata are used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: String::new(),
            region: "us-east-1".to_owned(),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

/// Limits on one deploy, each refused with a message naming the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployLimits {
    /// The largest single file, in bytes.
    pub max_file_size: u64,
    /// The most files one deploy may hold.
    pub max_files: u64,
    /// The largest sum of file sizes of one deploy, in bytes.
    pub max_deploy_size: u64,
}

impl Default for DeployLimits {
    fn default() -> Self {
        DeployLimits {
            max_file_size: 256 * 1024 * 1024,
            max_files: 100_000,
            max_deploy_size: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// Retention and garbage collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Ready deploys kept per site and context, newest first; older ones are
    /// removed unless published or served by a preview or branch hostname.
    /// 0 keeps every deploy.
    pub keep_deploys: u32,
    /// How often retention and blob collection run; zero never (the API's
    /// `POST /api/v1/gc` still runs them).
    pub gc_interval: Duration,
    /// Blobs younger than this are never collected, whatever references
    /// them, so uploads and deploys in flight are safe.
    pub blob_grace: Duration,
    /// Days an audit log entry is kept; 0 keeps every entry.
    pub audit_days: u32,
}

impl Retention {
    /// How long an audit log entry is kept; `None` for ever.
    pub fn audit_log(&self) -> Option<Duration> {
        (self.audit_days > 0).then(|| Duration::from_secs(u64::from(self.audit_days) * 24 * 60 * 60))
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_deploys: 20,
            gc_interval: Duration::from_secs(3600),
            blob_grace: Duration::from_secs(3600),
            audit_days: 365,
        }
    }
}

/// The edge's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSettings {
    /// Bytes of small files kept in memory, so hot pages are served without
    /// touching the blob store.
    pub memory_cache_bytes: u64,
    /// Files up to this size are eligible for the memory cache.
    pub memory_cache_max_file: u64,
    /// Bytes (estimated) of deploy indexes kept in memory, across all
    /// sites: the least recently used go past it.
    pub index_cache_bytes: u64,
    /// How long the deploy a hostname serves is remembered at most. A
    /// publish takes effect at once through a notification; this bounds
    /// staleness should a notification from another controller be lost.
    pub pointer_ttl: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            memory_cache_bytes: 256 * 1024 * 1024,
            memory_cache_max_file: 1024 * 1024,
            index_cache_bytes: 256 * 1024 * 1024,
            pointer_ttl: Duration::from_secs(60),
        }
    }
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            domain: "localhost".to_owned(),
            webhook_secret: None,
            lease_duration: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(20),
            max_attempts: 3,
            max_lease_wait: Duration::from_secs(30),
            max_build_duration: Duration::from_secs(60 * 60),
            max_concurrent_builds: 0,
            queued_warning_after: Duration::from_secs(60),
            database_url: None,
            public_url: None,
            github_api_url: "https://api.github.com".to_owned(),
            github_app: None,
            github_web_url: "https://github.com".to_owned(),
            github_oauth: None,
            secret_key_file: None,
            github_retry: RetryPolicy::default(),
            blob_store: BlobStoreConfig::Local,
            limits: DeployLimits::default(),
            retention: Retention::default(),
            edge: EdgeSettings::default(),
            dashboard_password_hash: None,
            metrics_listen: None,
            https_listen: None,
            notifications: NotificationSettings::default(),
            proxy: ProxySettings::default(),
            visitors: VisitorSettings::default(),
            smtp: None,
            http: HttpLimits::default(),
            allow_local_repositories: false,
            dns_resolver: None,
            domain_checks: CheckSchedule::default(),
            acme: None,
            oidc: None,
        }
    }

    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("jamstack.db")
    }

    /// The database URL in force: the configured one, or the SQLite file.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.database_path().display()))
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Where uploads are received before they are verified and stored.
    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("staging")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        let delays: Vec<u128> = (1..=5).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }
}
