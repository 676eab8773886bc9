//! Custom domains: a site's own hostnames (`www.example.com`), beside the
//! `<site>.<domain>` the platform gives it.
//!
//! A hostname is normalised once, here ([`normalize_hostname`]), and then
//! belongs to one site in the installation. Until its control is proved
//! nothing is served or certified for it: an admin's word is proof, else a
//! TXT record `_jamstack-challenge.<hostname>` holding the domain's token,
//! looked up through `dns.rs` (the only user of hickory) when a user asks
//! ([`Domains::verify`]) and in the background for waiting domains, with
//! growing pauses and a bound ([`check_in_background`]). Every change that
//! alters what a hostname serves is announced as
//! [`DeployEvent::DomainsChanged`], so every controller's edge forgets its
//! table of custom hostnames at once.

pub mod dns;

pub use crate::config::CheckSchedule;
use crate::db::{AddRefused, Database, Domain, NewDomain, Site, VerifiedBy, now_millis};
use crate::deploys::events::{DeployEvent, DeployEvents};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The label under a hostname whose TXT record proves control of it.
pub const CHALLENGE_LABEL: &str = "_jamstack-challenge";

/// The longest hostname DNS carries (RFC 1035, without the final dot).
const MAX_HOSTNAME: usize = 253;

/// The longest input taken before normalising (IDNA may shorten it).
const MAX_INPUT: usize = 1024;

/// The name whose TXT record proves control of `hostname`.
pub fn challenge_name(hostname: &str) -> String {
    format!("{CHALLENGE_LABEL}.{hostname}")
}

/// Which names a site may never claim: the platform's own domain and every
/// name under it, and the controller's own public hostname.
#[derive(Debug, Clone)]
pub struct ReservedNames {
    /// Sites are served at `<site>.<domain>`.
    pub platform_domain: String,
    /// The host of the controller's public URL (dashboard, API), if named.
    pub controller_host: Option<String>,
}

/// A hostname as stored: lowercase ASCII (IDNA's UTS 46 applied), without
/// a trailing dot or port, a valid DNS name that is not an address, a
/// wildcard, or one of the platform's own. The error says what is wrong
/// and what would do.
pub fn normalize_hostname(input: &str, reserved: &ReservedNames) -> Result<String, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("give a hostname, such as www.example.com".to_owned());
    }
    if trimmed.len() > MAX_INPUT {
        return Err(format!(
            "that hostname is {} bytes long; a DNS name has at most {MAX_HOSTNAME}",
            trimmed.len()
        ));
    }
    if trimmed.contains("://") || trimmed.contains('/') {
        return Err(format!(
            "`{trimmed}` is a URL; give only its hostname, such as www.example.com"
        ));
    }
    if trimmed.contains('*') {
        return Err(format!(
            "`{trimmed}` is a wildcard; add each hostname on its own, such as www.example.com"
        ));
    }
    let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let unbracketed = bare.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "`{trimmed}` is an IP address; a custom domain is a name, such as www.example.com"
        ));
    }
    let ascii = idna::domain_to_ascii_strict(bare).map_err(|_| {
        format!(
            "`{trimmed}` is not a valid hostname: use letters, digits and hyphens in dot-separated \
             labels, such as www.example.com"
        )
    })?;
    let ascii = ascii.to_ascii_lowercase();
    if ascii.len() > MAX_HOSTNAME {
        return Err(format!(
            "`{trimmed}` is {} bytes long as a DNS name; the most is {MAX_HOSTNAME}",
            ascii.len()
        ));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "`{trimmed}` has no dot; a custom domain is a full name such as example.com or www.example.com"
        ));
    }
    for label in &labels {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "`{trimmed}` has the label `{label}`, which DNS does not take: each label is 1 to 63 \
                 letters, digits or inner hyphens"
            ));
        }
    }
    // A name of digits and dots would read as an address somewhere.
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "`{trimmed}` ends in a number; a custom domain is a name, such as www.example.com"
        ));
    }
    let platform = reserved
        .platform_domain
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if ascii == platform || ascii.ends_with(&format!(".{platform}")) {
        return Err(format!(
            "`{ascii}` is under this installation's own domain `{platform}`, whose names the platform \
             gives out (<site>.{platform}); add a domain of your own"
        ));
    }
    if let Some(controller) = &reserved.controller_host
        && ascii == controller.trim_end_matches('.').to_ascii_lowercase()
    {
        return Err(format!(
            "`{ascii}` is the controller's own hostname (its dashboard and API); add a domain of your own"
        ));
    }
    Ok(ascii)
}

/// Where a domain stands, as users see it. The certificate states
/// (`issuing`, `active`, `renewal_due`) belong to the certificate store;
/// this module only decides up to `verified` and `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainState {
    /// Waiting for the TXT record to appear; checked in the background.
    WaitingForDns,
    /// Control proved: the hostname serves the site.
    Verified,
    /// A certificate is being issued for it.
    Issuing,
    /// Served with a valid certificate.
    Active,
    /// Its certificate is due for renewal.
    RenewalDue,
    /// The background check gave up, or issuing failed: see `last_error`
    /// and `next_step`.
    Failed,
}

impl DomainState {
    pub fn of(domain: &Domain) -> Self {
        if domain.is_verified() {
            DomainState::Verified
        } else if domain.next_check_at.is_none() && domain.check_attempts > 0 {
            DomainState::Failed
        } else {
            DomainState::WaitingForDns
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DomainState::WaitingForDns => "waiting_for_dns",
            DomainState::Verified => "verified",
            DomainState::Issuing => "issuing",
            DomainState::Active => "active",
            DomainState::RenewalDue => "renewal_due",
            DomainState::Failed => "failed",
        }
    }
}

/// What the user should do next about `domain`, or `None` when nothing.
pub fn next_step(domain: &Domain) -> Option<String> {
    if domain.is_verified() {
        return None;
    }
    let hostname = &domain.hostname;
    let add = format!(
        "add TXT {} = {} at your DNS host, then run `jamstack domains verify {hostname}`",
        challenge_name(hostname),
        domain.verification_token
    );
    Some(match DomainState::of(domain) {
        DomainState::Failed => format!("checks stopped after {} tries; {add}", domain.check_attempts),
        _ => add,
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Why a domain was not added, removed or verified.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The custom domains service: adding, removing and proving control.
#[derive(Clone)]
pub struct Domains {
    pub db: Database,
    pub events: DeployEvents,
    pub dns: Arc<dns::TxtResolver>,
    pub reserved: Arc<ReservedNames>,
    pub schedule: CheckSchedule,
    /// Where a removed domain's certificates are taken away.
    pub certificates: crate::tls::Certificates,
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domains").finish_non_exhaustive()
    }
}

/// Who adds a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedBy {
    /// The admin token: verified at once.
    Admin,
    /// Anyone else who may change sites: must prove control.
    SiteManager,
}

impl Domains {
    /// Adds `input` to `site`. An admin's domain is verified at once;
    /// anyone else's waits for its TXT record. With `primary`, a domain
    /// the site has already becomes its primary (then the flag is false:
    /// nothing was added).
    pub async fn add(
        &self,
        site: &Site,
        input: &str,
        primary: bool,
        added_by: AddedBy,
    ) -> Result<(Domain, bool), DomainError> {
        let hostname = normalize_hostname(input, &self.reserved).map_err(DomainError::Invalid)?;
        let token = crate::secrets::random_hex(16);
        let verified_by = (added_by == AddedBy::Admin).then_some(VerifiedBy::Admin);
        let first_check_at = now_millis().saturating_add(millis(self.schedule.first_delay));
        let added = self
            .db
            .insert_domain(&NewDomain {
                site_id: site.id,
                hostname: &hostname,
                verification_token: &token,
                primary,
                verified_by,
                first_check_at,
            })
            .await?;
        match added {
            Ok(domain) => {
                tracing::info!(site = %site.name, hostname = %domain.hostname, verified = domain.is_verified(), "custom domain added");
                self.events.announce(DeployEvent::DomainsChanged).await;
                Ok((domain, true))
            }
            Err(AddRefused::AlreadyThisSites(existing)) if primary && !existing.is_primary => {
                // Adding again with `--primary` switches the primary.
                Ok((self.set_primary(site, &existing.hostname).await?, false))
            }
            Err(AddRefused::AlreadyThisSites(existing)) => Err(DomainError::Conflict(format!(
                "site `{}` has `{}` already; see it with `jamstack domains list {}`",
                site.name, existing.hostname, site.name
            ))),
            Err(AddRefused::HeldByAnotherSite) => Err(DomainError::Conflict(format!(
                "`{hostname}` belongs to another site of this installation; a hostname serves one site. \
                 Ask that site's owner to remove it (or an admin to remove it for them), then add it here"
            ))),
        }
    }

    /// Makes one of the site's domains its primary.
    pub async fn set_primary(&self, site: &Site, input: &str) -> Result<Domain, DomainError> {
        let hostname = self.site_hostname(site, input)?;
        if !self.db.set_primary_domain(site.id, &hostname).await? {
            return Err(self.not_found(site, &hostname));
        }
        self.events.announce(DeployEvent::DomainsChanged).await;
        self.find(site, &hostname).await
    }

    /// Removes a domain: it stops serving at once, on every controller,
    /// its certificate is no longer renewed, and the certificates that
    /// served only it are deleted with their keys.
    pub async fn remove(&self, site: &Site, input: &str) -> Result<Domain, DomainError> {
        let hostname = self.site_hostname(site, input)?;
        let Some(removed) = self.db.delete_domain(site.id, &hostname).await? else {
            return Err(self.not_found(site, &hostname));
        };
        tracing::info!(site = %site.name, hostname = %removed.hostname, "custom domain removed");
        self.events.announce(DeployEvent::DomainsChanged).await;
        self.certificates
            .remove_for_removed_domain(&removed.hostname)
            .await?;
        Ok(removed)
    }

    /// Looks for the domain's TXT record now, and records what was found.
    pub async fn verify(&self, site: &Site, input: &str) -> Result<Domain, DomainError> {
        let hostname = self.site_hostname(site, input)?;
        let domain = self.find(site, &hostname).await?;
        if domain.is_verified() {
            return Ok(domain);
        }
        // Asked for by a person: the background check resumes from the
        // start of its schedule if this one fails.
        let next = now_millis().saturating_add(millis(self.schedule.first_delay));
        self.check(&domain, Some(next)).await?;
        self.find(site, &hostname).await
    }

    /// One check of `domain`'s TXT record; on failure, the next check is
    /// at `next_check_at`.
    async fn check(&self, domain: &Domain, next_check_at: Option<i64>) -> anyhow::Result<bool> {
        match self
            .dns
            .proves(&domain.hostname, &domain.verification_token)
            .await
        {
            Ok(()) => {
                self.db.mark_domain_verified(domain.id, VerifiedBy::Dns).await?;
                tracing::info!(hostname = %domain.hostname, "custom domain verified by its TXT record");
                self.events.announce(DeployEvent::DomainsChanged).await;
                Ok(true)
            }
            Err(failure) => {
                let message = failure.explain(&domain.hostname, &domain.verification_token);
                self.db
                    .record_failed_domain_check(domain.id, &message, next_check_at)
                    .await?;
                Ok(false)
            }
        }
    }

    /// The site's domain named `hostname`, or a 404 naming it.
    async fn find(&self, site: &Site, hostname: &str) -> Result<Domain, DomainError> {
        match self.db.domain_by_hostname(hostname).await? {
            Some(domain) if domain.site_id == site.id => Ok(domain),
            _ => Err(self.not_found(site, hostname)),
        }
    }

    /// `input` normalised as stored, for finding one of the site's domains.
    fn site_hostname(&self, site: &Site, input: &str) -> Result<String, DomainError> {
        normalize_hostname(input, &self.reserved).map_err(|_| self.not_found(site, input))
    }

    fn not_found(&self, site: &Site, hostname: &str) -> DomainError {
        DomainError::NotFound(format!(
            "site `{}` has no domain `{hostname}`; list its domains with `jamstack domains list {}`",
            site.name, site.name
        ))
    }
}

/// Checks waiting domains whose time has come, on every controller: each
/// check is claimed first, so one controller makes it.
pub async fn check_in_background(domains: Domains) {
    /// Checks made per round; the rest wait for the next.
    const PER_ROUND: i64 = 20;
    loop {
        let now = now_millis();
        // Held long enough for a check that times out on every server.
        let hold = now.saturating_add(millis(Duration::from_secs(120)));
        match domains.db.claim_due_domain_checks(now, hold, PER_ROUND).await {
            Ok(due) => {
                for domain in due {
                    let next = domains.schedule.next_check(
                        domain.created_at,
                        domain.check_attempts + 1,
                        now_millis(),
                    );
                    if let Err(error) = domains.check(&domain, next).await {
                        tracing::warn!(hostname = %domain.hostname, error = format!("{error:#}"), "checking a custom domain failed");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "looking for custom domains to check failed"
                );
            }
        }
        tokio::time::sleep(domains.schedule.poll_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserved() -> ReservedNames {
        ReservedNames {
            platform_domain: "sites.example.net".into(),
            controller_host: Some("deploy.example.net".into()),
        }
    }

    #[test]
    fn hostnames_are_stored_lowercase_ascii_without_a_trailing_dot() {
        for (input, stored) in [
            ("Example.COM", "example.com"),
            ("www.example.com.", "www.example.com"),
            ("  blog.example.org ", "blog.example.org"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
            ("a-b.example.co.uk", "a-b.example.co.uk"),
        ] {
            assert_eq!(
                normalize_hostname(input, &reserved()).as_deref(),
                Ok(stored),
                "{input}"
            );
        }
    }

    #[test]
    fn addresses_wildcards_urls_and_the_platforms_own_names_are_refused() {
        for (input, says) in [
            ("", "give a hostname"),
            ("192.0.2.1", "IP address"),
            ("[2001:db8::1]", "IP address"),
            ("2001:db8::1", "IP address"),
            ("1.2.3.4.5", "ends in a number"),
            ("*.example.com", "wildcard"),
            ("https://example.com/", "URL"),
            ("localhost", "no dot"),
            ("exa mple.com", "not a valid hostname"),
            ("-bad.example.com", "-bad"),
            ("under_score.example.com", "under_score"),
            ("sites.example.net", "own domain"),
            ("blog.sites.example.net", "own domain"),
            ("DEPLOY.example.net.", "controller's own hostname"),
        ] {
            let error = normalize_hostname(input, &reserved()).unwrap_err();
            assert!(error.contains(says), "{input}: {error}");
        }
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(
            normalize_hostname(&long, &reserved()).is_err(),
            "longer than DNS takes"
        );
    }

    #[test]
    fn background_checks_back_off_and_stop_after_the_bound() {
        let schedule = CheckSchedule {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(1),
        };
        let created = 0;
        assert_eq!(schedule.next_check(created, 0, 0), Some(60_000));
        assert_eq!(schedule.next_check(created, 1, 0), Some(120_000));
        assert_eq!(schedule.next_check(created, 10, 0), Some(3_600_000), "capped");
        assert_eq!(schedule.next_check(created, 99, 0), Some(3_600_000));
        assert_eq!(
            schedule.next_check(created, 5, 24 * 3600 * 1000 - 1_000),
            None,
            "given up"
        );
    }
}
