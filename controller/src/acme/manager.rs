//! The worker that keeps certificates: every [`AcmeManager::interval`] it
//! picks the hostnames that need an order (none issued yet, renewal time
//! come, or a failure's wait over), claims each in the database so no other
//! controller orders it at the same time, orders it, and stores what it
//! got. A failure waits before the next try: one minute, doubling up to six
//! hours, each wait moved by up to a fifth either way so names that failed
//! together do not retry together. A failed renewal is counted in
//! `/metrics` and told to the name's site's notification hooks.

use super::{AcmeClient, AcmeFailure, AcmeSettings, ChallengeKind, ChallengeResponder, IssuedCertificate};
use crate::db::{AcmeIssued, AcmeOrder, Database, now_millis};
use crate::deploys::events::{DeployEvent, DeployEvents, Origin};
use crate::metrics::Metrics;
use crate::secrets::SecretBox;
use rand::Rng as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often the worker looks for due names.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// Names ordered per round; more wait for the next.
const DUE_PER_ROUND: i64 = 20;
/// How long a claim lasts: longer than any order may take, so a holder
/// still working never loses its name; a crashed holder's name is free
/// again after this.
const HOLD: Duration = Duration::from_secs(super::ORDER_TIMEOUT.as_secs() + 60);

/// Where issued certificates go: the certificate store the TLS listener of
/// every controller serves from.
#[async_trait::async_trait]
pub trait CertificateSink: Send + Sync {
    async fn store(&self, hostname: &str, certificate: &IssuedCertificate) -> anyhow::Result<()>;
    /// Deletes the certificate issued for `hostname`, no longer kept (its
    /// domain removed); one uploaded for it stays. True if one was deleted.
    async fn discard(&self, hostname: &str) -> anyhow::Result<bool>;
}

/// Told when a renewal fails, with the hostname's state after it.
#[async_trait::async_trait]
pub trait RenewalFailureListener: Send + Sync {
    async fn renewal_failed(&self, order: &AcmeOrder, failure: &AcmeFailure);
}

/// Who answers each kind of challenge on this controller.
#[derive(Clone, Default)]
pub struct Responders {
    pub http01: Option<Arc<dyn ChallengeResponder>>,
    pub tls_alpn01: Option<Arc<dyn ChallengeResponder>>,
    pub dns01: Option<Arc<dyn ChallengeResponder>>,
}

impl Responders {
    fn of(&self, kind: ChallengeKind) -> Result<&dyn ChallengeResponder, AcmeFailure> {
        let (responder, fix) = match kind {
            ChallengeKind::Http01 => (
                &self.http01,
                "start the controller with a plain HTTP listener on port 80",
            ),
            ChallengeKind::TlsAlpn01 => (
                &self.tls_alpn01,
                "start the controller with --https-listen on port 443",
            ),
            ChallengeKind::Dns01 => (
                &self.dns01,
                "set --acme-dns-hook to a program that publishes TXT records",
            ),
        };
        responder.as_deref().ok_or_else(|| AcmeFailure {
            problem_type: "client".into(),
            detail: format!(
                "this controller cannot answer {} challenges: {fix}",
                kind.as_str()
            ),
        })
    }
}

/// How long to wait after failures: `first`, doubling per failure up to
/// `max`, then moved by up to a fifth either way.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(60),
            max: Duration::from_secs(6 * 3600),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`th failure in a row (1 for the first).
    pub fn wait(&self, failures: i64) -> Duration {
        let doublings = failures.clamp(1, 32) - 1;
        let base = self
            .first
            .checked_mul(1u32 << doublings.min(31) as u32)
            .unwrap_or(self.max)
            .min(self.max);
        base.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
    }
}

/// The certificate keeper, built once in `startup.rs`.
#[derive(Clone)]
pub struct AcmeManager {
    pub db: Database,
    pub secrets: Arc<SecretBox>,
    pub settings: Arc<AcmeSettings>,
    pub responders: Responders,
    pub sink: Arc<dyn CertificateSink>,
    pub metrics: Arc<Metrics>,
    pub on_renewal_failure: Option<Arc<dyn RenewalFailureListener>>,
    /// Which names to keep, brought up to date at the start of each round;
    /// `None`: only the names asked for by `want_acme_certificate`.
    pub wanted: Option<Arc<super::service::WantedNames>>,
    /// Events that start a round at once when a custom domain changes
    /// (verified, removed), rather than at the next interval.
    pub wake: Option<DeployEvents>,
    /// This controller's name in `held_by`.
    pub holder: String,
    pub interval: Duration,
    pub backoff: Backoff,
    client: Arc<tokio::sync::OnceCell<AcmeClient>>,
}

impl AcmeManager {
    pub fn new(
        db: Database,
        secrets: Arc<SecretBox>,
        settings: AcmeSettings,
        responders: Responders,
        sink: Arc<dyn CertificateSink>,
        metrics: Arc<Metrics>,
    ) -> Self {
        AcmeManager {
            db,
            secrets,
            interval: settings.check_interval,
            settings: Arc::new(settings),
            responders,
            sink,
            metrics,
            on_renewal_failure: None,
            wanted: None,
            wake: None,
            holder: format!("controller-{}", crate::secrets::random_hex(8)),
            backoff: Backoff::default(),
            client: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The account, registered or loaded on first need and kept.
    pub async fn client(&self) -> anyhow::Result<&AcmeClient> {
        self.client
            .get_or_try_init(|| AcmeClient::load_or_register(&self.db, &self.secrets, &self.settings))
            .await
    }

    /// Runs rounds until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        let mut changes = self.wake.as_ref().map(DeployEvents::subscribe);
        loop {
            match self.round().await {
                Ok(0) => {}
                Ok(worked) => tracing::debug!(worked, "ACME round done"),
                Err(error) => tracing::warn!(error = format!("{error:#}"), "ACME round failed"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
                () = domains_changed(&mut changes) => {}
            }
        }
    }

    /// One round: orders every due name this controller manages to claim.
    /// Answers how many it worked on.
    pub async fn round(&self) -> anyhow::Result<usize> {
        if let Some(wanted) = &self.wanted {
            for hostname in wanted.sync(&self.db).await? {
                if self.sink.discard(&hostname).await? {
                    tracing::info!(%hostname, "the certificate of a name no longer kept is deleted");
                }
            }
        }
        let now = now_millis();
        let due = self.db.due_acme_orders(now, DUE_PER_ROUND).await?;
        let mut worked = 0;
        for order in due {
            let now = now_millis();
            if !self
                .db
                .claim_acme_order(&order.hostname, &self.holder, now, now + HOLD.as_millis() as i64)
                .await?
            {
                continue;
            }
            worked += 1;
            self.work_on(order).await?;
        }
        Ok(worked)
    }

    /// Orders `order`'s hostname, which this controller holds, and records
    /// the outcome.
    async fn work_on(&self, order: AcmeOrder) -> anyhow::Result<()> {
        let hostname = order.hostname.clone();
        let renewal = order.not_after.is_some();
        let outcome = self.issue(&order).await;
        match outcome {
            Ok(certificate) => {
                let stored = self.sink.store(&hostname, &certificate).await;
                if let Err(error) = stored {
                    let failure = AcmeFailure {
                        problem_type: "client".into(),
                        detail: format!("{hostname}: storing the issued certificate failed: {error:#}"),
                    };
                    return self.failed(&order, renewal, failure).await;
                }
                let issued = AcmeIssued {
                    not_before: certificate.not_before,
                    not_after: certificate.not_after,
                    renew_at: certificate.renew_at(self.settings.renew_before),
                };
                if !self.db.finish_acme_order(&hostname, &self.holder, issued).await? {
                    tracing::warn!(%hostname, "ACME order finished after this controller lost its hold");
                    // The name was let go meanwhile (its domain removed):
                    // what was just stored must not be served.
                    if self.db.acme_order(&hostname).await?.is_none() {
                        self.sink.discard(&hostname).await?;
                    }
                }
                tracing::info!(%hostname, not_after = certificate.not_after, renewal, "certificate issued");
                Ok(())
            }
            Err(failure) => self.failed(&order, renewal, failure).await,
        }
    }

    async fn issue(&self, order: &AcmeOrder) -> Result<IssuedCertificate, AcmeFailure> {
        let kind = ChallengeKind::parse(&order.challenge).ok_or_else(|| AcmeFailure {
            problem_type: "client".into(),
            detail: format!("{}: unknown challenge `{}`", order.hostname, order.challenge),
        })?;
        let responder = self.responders.of(kind)?;
        let client = self.client().await.map_err(|error| AcmeFailure {
            problem_type: "client".into(),
            detail: format!("{error:#}"),
        })?;
        client
            .issue(std::slice::from_ref(&order.hostname), kind, responder)
            .await
    }

    async fn failed(&self, order: &AcmeOrder, renewal: bool, failure: AcmeFailure) -> anyhow::Result<()> {
        let hostname = &order.hostname;
        let failures = order.attempts + 1;
        let retry_at = now_millis() + self.backoff.wait(failures).as_millis() as i64;
        tracing::warn!(%hostname, %failure, renewal, failures, "ACME order failed");
        if self
            .db
            .fail_acme_order(
                hostname,
                &self.holder,
                &failure.problem_type,
                &failure.detail,
                retry_at,
            )
            .await?
            .is_none()
        {
            return Ok(());
        }
        if renewal {
            self.metrics.record_acme_renewal_failure();
            if let Some(listener) = &self.on_renewal_failure
                && let Some(stored) = self.db.acme_order(hostname).await?
            {
                listener.renewal_failed(&stored, &failure).await;
            }
        }
        Ok(())
    }
}

/// Returns when a custom domain changed (or the relay may have missed
/// some changes); never without `changes`.
async fn domains_changed(changes: &mut Option<broadcast::Receiver<(DeployEvent, Origin)>>) {
    let Some(changes) = changes else {
        return std::future::pending().await;
    };
    loop {
        match changes.recv().await {
            Ok((DeployEvent::DomainsChanged | DeployEvent::Everything, _))
            | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}
