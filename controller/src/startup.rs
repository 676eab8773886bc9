//! Building and running the controller: bind first (port 0 works), then
//! serve. Tests and the binary start it the same way.

use crate::auth::Auth;
use crate::auth::{hash_token, new_token};
use crate::builds::Queue;
use crate::config::{BlobStoreConfig, Config};
use crate::db::{Database, TokenKind};
use crate::deploys::events::DeployEvents;
use crate::deploys::s3::S3BlobStore;
use crate::deploys::{BlobStore, Deploys, LocalBlobStore};
use crate::edge::protection::SiteAccess;
use crate::edge::{Edge, EdgeCache};
use crate::events::Events;
use crate::github::GitHubService;
use crate::github::client::GitHub;
use crate::lease_writes::LeaseWrites;
use crate::metrics::Metrics;
use crate::notifications::Notifications;
use crate::push_batches::PushBatches;
use crate::router::service;
use crate::schedules::Schedules;
use crate::secrets::SecretBox;
use crate::secrets::random_hex;
use crate::state::{AppState, Installation};
use crate::supervisor::Supervisor;
use crate::triggers::Triggers;
use crate::urls::Urls;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub struct Application {
    listener: TcpListener,
    /// The open `/metrics` listener, when `Config::metrics_listen` asks for one.
    metrics_listener: Option<TcpListener>,
    /// The HTTPS listener, when `Config::https_listen` asks for one.
    https_listener: Option<TcpListener>,
    state: AppState,
    /// Set when this start made the admin token (first start): the only
    /// time it can be shown.
    pub new_admin_token: Option<String>,
    /// Set when this start made the first runner registration token.
    pub new_registration_token: Option<String>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        jamstack_program::install_tls_provider();
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
        let db = Database::connect(&config.database_url()).await?;
        if let Some(public) = &config.public_url {
            let parsed = url::Url::parse(public).ok();
            if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
                anyhow::bail!(
                    "the public URL `{public}` is not an http(s) address; give the controller's address as \
                     GitHub reaches it, e.g. https://deploy.example.com"
                );
            }
        }
        if let Some(public) = &config.public_url
            && shares_site_domain(public, &config.domain)
        {
            tracing::warn!(
                public_url = %public,
                domain = %config.domain,
                "the dashboard's public URL and the sites' domain share a parent domain: a site's pages \
                 are then same-site with the dashboard (cookies scoped to the parent domain, weaker \
                 isolation). Serve sites on a domain of their own (--domain), e.g. example-sites.net \
                 for a dashboard at deploy.example.com"
            );
        }
        if let Some(acme) = &config.acme {
            acme.check(config.https_listen.is_some())?;
        }
        if let Some(hash) = &config.dashboard_password_hash {
            crate::auth::check_password_hash(hash).map_err(anyhow::Error::msg)?;
        }
        let secrets = SecretBox::load_or_create(&config.secret_key_path())?;
        seal_plain_secret_variables(&db, &secrets).await?;
        let webhook_secret = match &config.webhook_secret {
            Some(secret) => secret.clone(),
            None => stored_webhook_secret(&db, &secrets, &config.secret_key_path()).await?,
        };
        let github = GitHub::new(&config)?;
        let installation_id = db.setting_or_insert("installation_id", &random_hex(4)).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}; is another controller running there?", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("binding the metrics listener {address} (--metrics-listen); is the port taken?")
            })?),
            None => None,
        };
        let https_listener = match config.https_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("binding the HTTPS listener {address} (--https-listen); is the port taken?")
            })?),
            None => None,
        };
        // The port bound (port 0 picks one) is the one redirects name.
        if let Some(https) = &https_listener {
            config.https_listen = Some(https.local_addr()?);
        }
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let public_url = config
            .public_url
            .as_deref()
            .map(|url| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| base_url.clone());
        let blobs: Arc<dyn BlobStore> = match &config.blob_store {
            BlobStoreConfig::Local => Arc::new(LocalBlobStore::new(config.blob_dir())),
            BlobStoreConfig::S3(s3) => Arc::new(S3BlobStore::connect(s3).await?),
        };
        crate::deploys::durability::forget_torn_blobs(&db, blobs.as_ref())
            .await
            .with_context(|| {
                format!(
                    "checking the blobs stored since the last sync in {}",
                    blobs.describe()
                )
            })?;
        tracing::info!(store = %blobs.describe(), "blob store ready");
        // The first tokens are made last, once nothing else can fail: they
        // are shown only by the start that makes them, so a start that made
        // them and then failed (a port taken, a key unreadable, a bucket
        // unreachable) would leave an admin token nobody ever saw.
        let certificate_store = Arc::new(crate::tls::CertificateStore::new(&config.domain));
        certificate_store
            .reload(&db, &secrets)
            .await
            .context("loading the stored certificates")?;
        certificate_store
            .reload_alpn_challenges(&db, &secrets)
            .await
            .context("loading the ACME challenge certificates")?;
        let oidc = match &config.oidc {
            Some(settings) => {
                let provider = crate::auth::oidc::OidcProvider::new(settings, &public_url)?;
                // A provider that is down does not keep the controller from
                // starting: its button says so until the worker reaches it.
                match tokio::time::timeout(std::time::Duration::from_secs(10), provider.discover()).await {
                    Ok(Ok(())) => {
                        tracing::info!(issuer = %provider.issuer(), "OpenID Connect provider ready")
                    }
                    Ok(Err(e)) => tracing::warn!(
                        error = format!("{e:#}"),
                        "OpenID Connect sign-in waits for its provider"
                    ),
                    Err(_) => {
                        tracing::warn!(issuer = %provider.issuer(), "the OpenID Connect provider did not answer discovery within 10s; sign-in through it waits for it")
                    }
                }
                crate::auth::oidc::OidcSignIn(Some(Arc::new(provider)))
            }
            None => crate::auth::oidc::OidcSignIn::default(),
        };
        let new_admin_token = first_token(&db, TokenKind::Admin, "admin").await?;
        let new_registration_token = first_token(&db, TokenKind::Registration, "default").await?;
        let config = Arc::new(config);
        let secrets = Arc::new(secrets);
        let metrics = Arc::new(Metrics::default());
        let events = Events::default();
        let urls = Urls {
            base_url: base_url.into(),
            public_url: public_url.into(),
            domain: config.domain.as_str().into(),
        };
        let jobs_available = Arc::new(Notify::new());
        let queue = Queue {
            db: db.clone(),
            config: config.clone(),
            events: events.clone(),
            jobs_available: jobs_available.clone(),
            log_activity: Arc::new(Notify::new()),
            cancellations: Arc::new(Notify::new()),
            lease_writes: LeaseWrites::start(
                db.clone(),
                config.lease_duration,
                config.max_concurrent_builds,
                jobs_available,
            ),
        };
        let edge_cache = Arc::new(EdgeCache::new(config.edge, metrics.edge_index.clone()));
        let deploys = Deploys {
            db: db.clone(),
            config: config.clone(),
            blobs: blobs.clone(),
            variants: Arc::default(),
            metrics: metrics.clone(),
            // The edge of this process forgets what a publish makes stale
            // before the publish is answered.
            events: DeployEvents::telling_first(edge_cache.clone()),
        };
        let site_access = Arc::new(SiteAccess::new(secrets.derive_key("site-access")));
        let edge = Edge {
            db: db.clone(),
            config: config.clone(),
            cache: edge_cache,
            blobs,
            metrics: metrics.clone(),
            access: site_access.clone(),
            upstreams: Arc::new(crate::edge::proxy::Upstreams::new(config.proxy)?),
            visitors: Arc::new(crate::edge::visitors::Visitors::open(&config.visitors)?),
            identities: Arc::new(crate::edge::identity::Identities::new(
                config.proxy.allow_private_targets,
            )?),
            secrets: secrets.clone(),
            urls: urls.clone(),
        };
        let certificates = crate::tls::Certificates {
            store: certificate_store,
            db: db.clone(),
            secrets: secrets.clone(),
            events: deploys.events.clone(),
        };
        let domains = crate::domains::Domains {
            db: db.clone(),
            events: deploys.events.clone(),
            dns: Arc::new(crate::domains::dns::TxtResolver::new(config.dns_resolver)?),
            reserved: Arc::new(crate::domains::ReservedNames {
                platform_domain: config.domain.clone(),
                controller_host: url::Url::parse(&urls.public_url)
                    .ok()
                    .and_then(|url| match url.host() {
                        Some(url::Host::Domain(name)) => Some(name.to_owned()),
                        _ => None,
                    }),
            }),
            schedule: config.domain_checks,
            certificates: certificates.clone(),
        };
        let github = GitHubService {
            db: db.clone(),
            config: config.clone(),
            client: Arc::new(github),
            secrets: secrets.clone(),
            urls: urls.clone(),
            events: events.clone(),
            sign_in: config
                .github_oauth
                .as_ref()
                .map(|oauth| crate::github::sign_in::OAuthClient::new(&config.github_web_url, oauth))
                .transpose()?
                .map(Arc::new),
        };
        let mailer = config
            .smtp
            .as_ref()
            .map(|smtp| crate::notifications::email::Mailer::new(smtp, config.notifications.timeout))
            .transpose()?;
        let notifications = Notifications {
            db: db.clone(),
            config: config.clone(),
            urls: urls.clone(),
            events,
            queued: Arc::new(Notify::new()),
            secrets: secrets.clone(),
            mailer,
        };
        let triggers = Triggers {
            queue: queue.clone(),
            deploys: deploys.clone(),
            urls: urls.clone(),
        };
        let audit = crate::audit::AuditLog {
            db: db.clone(),
            notifications: notifications.clone(),
        };
        let push_batches = PushBatches::start(
            db.clone(),
            queue.events.clone(),
            queue.jobs_available.clone(),
            audit.clone(),
        );
        let schedules = Schedules {
            db: db.clone(),
            queue: queue.clone(),
            audit: audit.clone(),
            changed: Arc::new(Notify::new()),
        };
        let state = AppState {
            auth: Auth::new(db.clone()),
            db,
            config,
            urls,
            queue,
            push_batches,
            deploys,
            edge,
            github,
            notifications,
            audit,
            metrics,
            secrets,
            site_access,
            triggers,
            build_hook_limiter: Arc::default(),
            schedules,
            domains,
            installation: Installation {
                id: installation_id.into(),
                webhook_secret: webhook_secret.into(),
            },
            certificates,
            oidc,
        };
        Ok(Application {
            listener,
            metrics_listener,
            https_listener,
            state,
            new_admin_token,
            new_registration_token,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the open `/metrics` listener is bound, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Where the HTTPS listener is bound, if there is one.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn base_url(&self) -> &str {
        &self.state.urls.base_url
    }

    pub fn webhook_secret(&self) -> &str {
        &self.state.installation.webhook_secret
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A fresh token for a runner started in this process; earlier tokens of
    /// the embedded runner are revoked.
    pub async fn embedded_runner_token(&self) -> anyhow::Result<String> {
        self.register_local_runner("embedded", &[], 1).await
    }

    /// Registers a runner directly in the database, as `/runner/v1/register`
    /// would, and returns its token; earlier runners of that name are
    /// revoked.
    pub async fn register_local_runner(
        &self,
        name: &str,
        labels: &[String],
        slots: i64,
    ) -> anyhow::Result<String> {
        self.state.db.revoke_runners_named(name).await?;
        self.state.auth.known_runners.forget(|runner| runner.name == name);
        let token = new_token(TokenKind::Runner);
        self.state
            .db
            .register_runner(name, labels, slots, &hash_token(&token))
            .await?;
        Ok(token)
    }

    /// Serves until the process ends, with the background workers (lease
    /// reaper, GitHub reporter, garbage collector, the edge's event
    /// listener, the maker of compressed variants, ...) beside it.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then stops taking connections,
    /// finishes the requests in flight, and stops the background workers
    /// before returning.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let workers = Supervisor::new(self.state.metrics.clone());
        start_workers(&workers, &self.state);
        let limits = self.state.config.http;
        // The open metrics listener is held to the same bounds as the main
        // one: whoever reaches its address has shown nothing either.
        let open_metrics = self.metrics_listener.map(|listener| {
            let app = crate::router::metrics_router(self.state.clone());
            tokio::spawn(crate::http_server::serve(
                listener,
                app,
                limits,
                None,
                workers.stopping().cancelled_owned(),
            ))
        });
        let app = service(self.state.clone());
        // The HTTPS listener serves the same service, and stops taking
        // connections when the main one does.
        let stopping = tokio_util::sync::CancellationToken::new();
        let https = match self.https_listener {
            Some(listener) => {
                let tls = crate::tls::server_config(self.state.certificates.store.clone())?;
                Some(tokio::spawn(crate::http_server::serve(
                    listener,
                    app.clone(),
                    limits,
                    Some(tokio_rustls::TlsAcceptor::from(tls)),
                    stopping.clone().cancelled_owned(),
                )))
            }
            None => None,
        };
        crate::http_server::serve(self.listener, app, limits, None, shutdown).await;
        stopping.cancel();
        if let Some(https) = https {
            let _ = https.await;
        }
        workers.shutdown(crate::supervisor::SHUTDOWN_GRACE).await;
        if let Some(open_metrics) = open_metrics {
            open_metrics.abort();
        }
        Ok(())
    }
}

/// Every background worker of a controller, each under `workers`, each
/// given the services it works with.
fn start_workers(workers: &Supervisor, state: &AppState) {
    let queue = state.queue.clone();
    workers.spawn_until_stopped("lease_reaper", move || {
        crate::builds::reap_expired_leases(queue.clone())
    });
    let github = state.github.clone();
    workers.spawn_until_stopped("github_reporter", move || {
        crate::github::reporter::start(github.clone())
    });
    let db = state.db.clone();
    workers.spawn_until_stopped("delivery_pruner", move || {
        crate::api::webhooks::prune_deliveries(db.clone())
    });
    let (db, retention) = (state.db.clone(), state.config.retention);
    workers.spawn_until_stopped("audit_pruner", move || {
        crate::audit::prune_periodically(db.clone(), retention)
    });
    let deploys = state.deploys.clone();
    workers.spawn_until_stopped("garbage_collector", move || {
        crate::deploys::retention::collect_periodically(deploys.clone())
    });
    let (cache, db, events) = (
        state.edge.cache.clone(),
        state.db.clone(),
        state.deploys.events.clone(),
    );
    workers.spawn_until_stopped("edge_forgetter", move || {
        forget_on_events(cache.clone(), db.clone(), events.clone())
    });
    let deploys = state.deploys.clone();
    workers.spawn_until_stopped("variant_maker", move || {
        crate::deploys::compress::make_variants_in_background(deploys.clone())
    });
    let (db, events) = (state.db.clone(), state.deploys.events.clone());
    workers.spawn_until_stopped("deploy_event_relay", move || {
        crate::deploys::events::relay_between_controllers(db.clone(), events.clone())
    });
    let (db, events, metrics) = (
        state.db.clone(),
        state.queue.events.clone(),
        state.metrics.clone(),
    );
    workers.spawn_until_stopped("build_metrics", move || {
        crate::metrics::record_build_events(db.clone(), events.clone(), metrics.clone())
    });
    let notifications = state.notifications.clone();
    workers.spawn_until_stopped("notifier", move || {
        crate::notifications::run(notifications.clone())
    });
    let notifications = state.notifications.clone();
    workers.spawn_until_stopped("build_notices", move || {
        crate::notifications::queue_build_events(notifications.clone())
    });
    let schedules = state.schedules.clone();
    workers.spawn_until_stopped("scheduled_builds", move || {
        crate::schedules::run(schedules.clone())
    });
    let (certificates, db, secrets, events) = (
        state.certificates.store.clone(),
        state.db.clone(),
        state.secrets.clone(),
        state.deploys.events.clone(),
    );
    workers.spawn_until_stopped("certificate_reloader", move || {
        crate::tls::keep_current(certificates.clone(), db.clone(), secrets.clone(), events.clone())
    });
    let domains = state.domains.clone();
    workers.spawn_until_stopped("domain_checks", move || {
        crate::domains::check_in_background(domains.clone())
    });
    if let Some(provider) = state.oidc.0.clone() {
        workers.spawn_until_stopped("oidc_discovery", move || provider.clone().keep_discovered());
    }
    if let Some(manager) = acme_manager(state) {
        workers.spawn("acme_manager", move |stop| manager.clone().run(stop));
    }
}

/// The ACME manager of a controller started with `--acme-directory`: it
/// keeps certificates for the verified custom domains (and the platform's
/// wildcard with a DNS hook), answering HTTP-01 on the plain listener,
/// TLS-ALPN-01 on the HTTPS one, DNS-01 by the hook.
fn acme_manager(state: &AppState) -> Option<crate::acme::manager::AcmeManager> {
    use crate::acme::service::{AlpnChallenges, HttpChallenges, IssuedToStore, WantedNames};
    use crate::acme::{ChallengeResponder, DnsHook};
    let settings = state.config.acme.clone()?;
    let responders = crate::acme::manager::Responders {
        http01: Some(Arc::new(HttpChallenges(state.db.clone()))),
        tls_alpn01: state
            .config
            .https_listen
            .map(|_| Arc::new(AlpnChallenges(state.certificates.clone())) as Arc<dyn ChallengeResponder>),
        dns01: settings
            .dns_hook
            .clone()
            .map(|hook| Arc::new(DnsHook::new(hook)) as Arc<dyn ChallengeResponder>),
    };
    let wanted = WantedNames {
        custom_domains: settings.challenge,
        platform_wildcard: settings.dns_hook.as_ref().map(|_| {
            format!(
                "*.{}",
                state.config.domain.trim_end_matches('.').to_ascii_lowercase()
            )
        }),
    };
    let mut manager = crate::acme::manager::AcmeManager::new(
        state.db.clone(),
        state.secrets.clone(),
        settings,
        responders,
        Arc::new(IssuedToStore(state.certificates.clone())),
        state.metrics.clone(),
    );
    manager.on_renewal_failure = Some(Arc::new(NotifySite(state.notifications.clone())));
    manager.wanted = Some(Arc::new(wanted));
    manager.wake = Some(state.deploys.events.clone());
    Some(manager)
}

/// Tells the hooks of the site a name belongs to that its certificate's
/// renewal failed (`certificate.failed`). The platform's wildcard belongs
/// to no site: its failures are in the log and `/metrics`.
pub struct NotifySite(pub crate::notifications::Notifications);

#[async_trait::async_trait]
impl crate::acme::manager::RenewalFailureListener for NotifySite {
    async fn renewal_failed(&self, order: &crate::db::AcmeOrder, failure: &crate::acme::AcmeFailure) {
        match self.0.db.domain_by_hostname(&order.hostname).await {
            Ok(Some(domain)) => {
                let told = crate::notifications::CertificateFailure {
                    problem_type: &failure.problem_type,
                    detail: &failure.detail,
                    advice: failure.advice(),
                };
                crate::notifications::certificate_failed(&self.0, domain.site_id, order, &told).await;
            }
            Ok(None) => {}
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                hostname = %order.hostname,
                "finding the site of a failed renewal failed"
            ),
        }
    }
}

/// The edge forgets what every event makes stale, also events relayed from
/// other controllers (this process's own were applied when announced).
async fn forget_on_events(cache: Arc<EdgeCache>, db: Database, events: DeployEvents) {
    let mut events = events.subscribe();
    loop {
        match events.recv().await {
            Ok((event, _origin)) => {
                cache.apply(&event).await;
                // New variants are read into the index in memory, which
                // serves the files as they are meanwhile.
                if let crate::deploys::events::DeployEvent::VariantsMade { deploy_id } = &event
                    && let Err(error) = cache.refresh_variants(&db, deploy_id).await
                {
                    tracing::warn!(
                        deploy = %deploy_id,
                        error = format!("{error:#}"),
                        "reading new variants failed; the deploy is served uncompressed until reloaded"
                    );
                }
            }
            // Missed some: forget everything rather than serve stale.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                cache
                    .apply(&crate::deploys::events::DeployEvent::Everything)
                    .await;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Whether the host of `public_url` (the dashboard) and `domain` (where
/// sites are served, `<site>.<domain>`) share a registrable domain, so
/// that a site's page is "same-site" with the dashboard. Judged by the last
/// two labels rather than the public suffix list: it over-warns for
/// domains under a two-label public suffix (`a.co.uk` and `b.co.uk`), which
/// is the safe side for a warning. Addresses are never the same site as a
/// name.
pub fn shares_site_domain(public_url: &str, domain: &str) -> bool {
    let Some(host) = url::Url::parse(public_url).ok().and_then(|u| match u.host() {
        Some(url::Host::Domain(name)) => Some(name.trim_end_matches('.').to_ascii_lowercase()),
        _ => None,
    }) else {
        return false;
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let registrable = |name: &str| -> String {
        let labels: Vec<&str> = name.rsplitn(3, '.').collect();
        labels.iter().take(2).rev().copied().collect::<Vec<_>>().join(".")
    };
    host == domain || host.ends_with(&format!(".{domain}")) || registrable(&host) == registrable(&domain)
}

async fn first_token(db: &Database, kind: TokenKind, name: &str) -> anyhow::Result<Option<String>> {
    if db.count_tokens(kind).await? > 0 {
        return Ok(None);
    }
    let token = new_token(kind);
    db.insert_token(kind, name, &hash_token(&token)).await?;
    Ok(Some(token))
}

/// Makes a new token of `kind` (for the `token` command), revoking earlier
/// ones of the same name.
pub async fn mint_token(config: &Config, kind: TokenKind, name: &str) -> anyhow::Result<String> {
    let db = Database::connect(&config.database_url()).await?;
    db.revoke_tokens_named(kind, name).await?;
    let token = new_token(kind);
    db.insert_token(kind, name, &hash_token(&token)).await?;
    Ok(token)
}

/// The GitHub webhook secret the controller made for itself, stored sealed
/// like every secret it must use again: made on first start, and sealed
/// now if an older version stored it in clear (the value stays the same,
/// so GitHub's signatures still match).
async fn stored_webhook_secret(
    db: &Database,
    secrets: &SecretBox,
    key_file: &std::path::Path,
) -> anyhow::Result<String> {
    const KEY: &str = "github_webhook_secret";
    let purpose = crate::secrets::GITHUB_WEBHOOK_SECRET_PURPOSE;
    let fresh = secrets.seal(purpose, &random_hex(20));
    // A start racing this one may store its own first or seal a clear one:
    // read again until the stored value is sealed.
    let mut stored = db.setting_or_insert(KEY, &fresh).await?;
    loop {
        if crate::secrets::looks_sealed(&stored) {
            return secrets.open(purpose, &stored).with_context(|| {
                format!(
                    "opening the stored GitHub webhook secret; restore the secret key file {}, or give \
                     the secret GitHub signs with by --webhook-secret",
                    key_file.display()
                )
            });
        }
        if db
            .replace_setting(KEY, &stored, &secrets.seal(purpose, &stored))
            .await?
        {
            tracing::info!("the GitHub webhook secret stored in clear is now sealed");
        }
        stored = db.setting(KEY).await?.unwrap_or(fresh.clone());
    }
}

/// Seals secret build variables stored in clear by an older version, so the
/// database holds none: done at every start, cheap when there is nothing
/// to do.
async fn seal_plain_secret_variables(db: &Database, secrets: &SecretBox) -> anyhow::Result<()> {
    let mut sealed = 0;
    for (site_id, name, value) in db.all_secret_env_vars().await? {
        if crate::secrets::looks_sealed(&value) {
            continue;
        }
        let purpose = crate::secrets::env_var_purpose(site_id, &name);
        if db
            .replace_env_value(site_id, &name, &value, &secrets.seal(&purpose, &value))
            .await?
        {
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(sealed, "secret build variables stored in clear are now sealed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shares_site_domain;

    #[test]
    fn a_dashboard_on_the_sites_parent_domain_is_told_apart_from_one_on_its_own() {
        for (public, domain) in [
            ("https://deploy.example.com", "example.com"),
            ("https://deploy.example.com", "sites.example.com"),
            ("https://example.com/", "example.com"),
            ("https://DEPLOY.Example.com.", "pages.example.com"),
            ("http://localhost:8080", "localhost"),
        ] {
            assert!(shares_site_domain(public, domain), "{public} and {domain}");
        }
        for (public, domain) in [
            ("https://deploy.example.com", "example-sites.net"),
            ("http://127.0.0.1:8080", "localhost"),
            ("https://deploy.example.org", "example.com"),
        ] {
            assert!(!shares_site_domain(public, domain), "{public} and {domain}");
        }
    }
}
