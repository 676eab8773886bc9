//! Custom hostnames at the edge: which verified hostname serves which site,
//! and which are aliases answering with a permanent redirect to the site's
//! primary (as Netlify does).
//!
//! The whole table of verified hostnames is kept in memory, read from the
//! database when first needed and again after a
//! [`DeployEvent::DomainsChanged`](crate::deploys::events::DeployEvent)
//! (this controller's or another's, relayed) or after `ttl`, a bound on
//! staleness should a notification be lost. A read that raced with such an
//! event is used once and not kept, so a removed hostname stops serving at
//! once. An unverified hostname serves nothing: it is answered "no such
//! site". A hostname nobody claimed reaches the API router (the dashboard
//! and API answer under any name the operator gives the controller).

use crate::db::{Database, VerifiedHostname};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What a verified custom hostname answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomHost {
    /// The production deploy of the site named so, as `<site>.<domain>`.
    Serve { site: String },
    /// A permanent redirect to the site's primary hostname.
    RedirectTo { primary: String },
    /// Claimed by a site but not proved yet: nothing is served.
    Unverified,
}

#[derive(Debug, Default)]
struct Table {
    /// Moved on by every change: a read begun under an older generation
    /// is not kept.
    generation: u64,
    loaded: Option<(Instant, Arc<HashMap<String, CustomHost>>)>,
}

/// The edge's table of custom hostnames.
#[derive(Debug)]
pub struct CustomHosts {
    table: RwLock<Table>,
    ttl: Duration,
}

impl CustomHosts {
    pub fn new(ttl: Duration) -> Self {
        CustomHosts {
            table: RwLock::new(Table::default()),
            ttl,
        }
    }

    /// What `hostname` answers, from memory: `None` when the table must be
    /// read first ([`CustomHosts::lookup`]).
    pub fn lookup_now(&self, hostname: &str) -> Option<Option<CustomHost>> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let (loaded, hosts) = table.loaded.as_ref()?;
        (loaded.elapsed() < self.ttl).then(|| hosts.get(hostname).cloned())
    }

    /// What `hostname` answers, reading the table from the database when
    /// it is not in memory.
    pub async fn lookup(&self, db: &Database, hostname: &str) -> anyhow::Result<Option<CustomHost>> {
        if let Some(answer) = self.lookup_now(hostname) {
            return Ok(answer);
        }
        let generation = self.table.read().unwrap_or_else(|e| e.into_inner()).generation;
        let hosts = Arc::new(table_of(db.claimed_hostnames().await?));
        let answer = hosts.get(hostname).cloned();
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if table.generation == generation {
            table.loaded = Some((Instant::now(), hosts));
        }
        Ok(answer)
    }

    /// Forgets the table: the next request reads it again.
    pub fn forget(&self) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        table.generation += 1;
        table.loaded = None;
    }
}

/// The table of what each claimed hostname answers: a site's verified
/// primary serves it, and so does every other verified hostname of a site
/// whose primary is not verified yet (there is nowhere to redirect to);
/// the other verified ones redirect to the primary; unverified ones serve
/// nothing.
fn table_of(claimed: Vec<(VerifiedHostname, bool)>) -> HashMap<String, CustomHost> {
    let primaries: HashMap<i64, String> = claimed
        .iter()
        .filter(|(v, verified)| v.primary && *verified)
        .map(|(v, _)| (v.site_id, v.hostname.clone()))
        .collect();
    claimed
        .into_iter()
        .map(|(v, verified)| {
            if !verified {
                return (v.hostname, CustomHost::Unverified);
            }
            let answer = match primaries.get(&v.site_id) {
                Some(primary) if *primary != v.hostname => CustomHost::RedirectTo {
                    primary: primary.clone(),
                },
                _ => CustomHost::Serve { site: v.site_name },
            };
            (v.hostname, answer)
        })
        .collect()
}

/// The hostname of a `Host` header that may be a custom domain: lowercase,
/// without port or trailing dot; `None` for addresses and single labels
/// (`localhost`), which never are.
pub fn candidate(host: &str) -> Option<(String, Option<&str>)> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            (name, Some(port))
        }
        _ => (host, None),
    };
    let name = name.trim_end_matches('.');
    if name.is_empty() || !name.contains('.') || name.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some((name.to_ascii_lowercase(), port.filter(|p| !p.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(hostname: &str, site_id: i64, primary: bool) -> VerifiedHostname {
        VerifiedHostname {
            hostname: hostname.into(),
            site_id,
            site_name: format!("site{site_id}"),
            primary,
        }
    }

    #[test]
    fn aliases_redirect_to_a_verified_primary_and_serve_without_one() {
        let table = table_of(vec![
            (verified("example.com", 1, true), true),
            (verified("www.example.com", 1, false), true),
            (verified("shop.example.org", 2, true), false),
            (verified("www.example.org", 2, false), true),
        ]);
        assert_eq!(table["example.com"], CustomHost::Serve { site: "site1".into() });
        assert_eq!(
            table["www.example.com"],
            CustomHost::RedirectTo {
                primary: "example.com".into()
            }
        );
        assert_eq!(table["shop.example.org"], CustomHost::Unverified);
        assert_eq!(
            table["www.example.org"],
            CustomHost::Serve { site: "site2".into() },
            "its primary is not verified: nowhere to redirect to"
        );
    }

    #[test]
    fn only_names_with_a_dot_are_looked_up() {
        assert_eq!(
            candidate("WWW.Example.com.:8080"),
            Some(("www.example.com".into(), Some("8080")))
        );
        assert_eq!(candidate("example.com"), Some(("example.com".into(), None)));
        for host in [
            "",
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "::1",
        ] {
            assert_eq!(candidate(host), None, "{host}");
        }
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let hosts = CustomHosts::new(Duration::from_secs(60));
        assert_eq!(hosts.lookup_now("example.com"), None, "nothing read yet");
        {
            let mut table = hosts.table.write().unwrap();
            table.loaded = Some((
                Instant::now(),
                Arc::new(table_of(vec![(verified("example.com", 1, true), true)])),
            ));
        }
        assert!(matches!(hosts.lookup_now("example.com"), Some(Some(_))));
        assert_eq!(hosts.lookup_now("other.example"), Some(None));
        hosts.forget();
        assert_eq!(hosts.lookup_now("example.com"), None, "read again after a change");
    }
}
