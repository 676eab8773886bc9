//! The TXT lookups that prove control of a domain: the only user of
//! hickory. The resolver is the system's, or the one the operator names
//! with `--dns-resolver` (tests point it at a test DNS server). Answers are
//! not cached, so a record just added is seen at the next check.

use super::challenge_name;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use std::net::SocketAddr;
use std::time::Duration;

/// The most TXT values of one name quoted back to the user.
const MAX_SHOWN_VALUES: usize = 3;
/// The most bytes of one value quoted back to the user.
const MAX_SHOWN_VALUE: usize = 80;

/// Looks up the challenge records of hostnames.
pub struct TxtResolver {
    resolver: TokioResolver,
}

impl std::fmt::Debug for TxtResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxtResolver").finish_non_exhaustive()
    }
}

/// Why a lookup did not prove control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unproved {
    /// No TXT record at the challenge name.
    NoRecord,
    /// TXT records there, none holding the token (the first few values).
    OtherValues(Vec<String>),
    /// The resolver failed (timeout, refused, server failure).
    LookupFailed(String),
}

impl Unproved {
    /// What the user reads: what was found and what to do.
    pub fn explain(&self, hostname: &str, token: &str) -> String {
        let name = challenge_name(hostname);
        let then = format!("then run `jamstack domains verify {hostname}`");
        match self {
            Unproved::NoRecord => {
                format!("no TXT record {name} found; add TXT {name} = {token} at your DNS host, {then}")
            }
            Unproved::OtherValues(values) => format!(
                "TXT {name} holds {} but not this domain's token; set it to {token} at your DNS host, {then}",
                values
                    .iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Unproved::LookupFailed(error) => format!(
                "looking up TXT {name} failed ({error}); check that {hostname}'s DNS host answers, \
                 with TXT {name} = {token}, {then}"
            ),
        }
    }
}

impl TxtResolver {
    /// The resolver at `server`, or the system's (`/etc/resolv.conf`).
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut builder = match server {
            Some(server) => TokioResolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => TokioResolver::builder_tokio().map_err(|e| {
                anyhow::anyhow!(
                    "reading the system's DNS settings failed ({e}); name a resolver with --dns-resolver IP:PORT"
                )
            })?,
        };
        let options = builder.options_mut();
        options.timeout = Duration::from_secs(5);
        options.attempts = 2;
        // A record just added must be seen at the next check.
        options.cache_size = 0;
        Ok(TxtResolver {
            resolver: builder.build(),
        })
    }

    /// Whether the TXT record `_jamstack-challenge.<hostname>` holds `token`.
    pub async fn proves(&self, hostname: &str, token: &str) -> Result<(), Unproved> {
        // Fully qualified: no search domain is tried.
        let name = format!("{}.", challenge_name(hostname));
        let lookup = match self.resolver.txt_lookup(name).await {
            Ok(lookup) => lookup,
            Err(error) if no_record(&error) => return Err(Unproved::NoRecord),
            Err(error) => return Err(Unproved::LookupFailed(error.to_string())),
        };
        let mut values = Vec::new();
        for txt in lookup.iter() {
            // A value may be split into strings of 255 bytes; they join.
            let value: Vec<u8> = txt
                .txt_data()
                .iter()
                .flat_map(|part| part.iter().copied())
                .collect();
            let value = String::from_utf8_lossy(&value);
            if value.trim() == token {
                return Ok(());
            }
            if values.len() < MAX_SHOWN_VALUES {
                // Written by whoever runs that DNS: no control characters shown.
                values.push(
                    value
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_SHOWN_VALUE)
                        .collect(),
                );
            }
        }
        if values.is_empty() {
            Err(Unproved::NoRecord)
        } else {
            Err(Unproved::OtherValues(values))
        }
    }
}

fn no_record(error: &ResolveError) -> bool {
    error.is_no_records_found() || error.is_nx_domain()
}
