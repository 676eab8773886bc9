//! The private hosts a site lets its builds reach, resolved on the runner
//! (whatever engine then opens them to the build's network).

use ipnet::Ipv4Net;
use std::net::IpAddr;

/// The private hosts a site allows, resolved to IPv4 blocks, with what
/// each entry became (for the build log). Entries that resolve to nothing
/// are reported, not fatal: the build then fails where it needs them,
/// with the log saying why.
pub async fn resolve_allowed(entries: &[String]) -> (Vec<Ipv4Net>, Vec<String>) {
    let mut nets = Vec::new();
    let mut notes = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        if let Ok(net) = entry.parse::<Ipv4Net>() {
            nets.push(net.trunc());
            notes.push(net.trunc().to_string());
        } else if let Ok(ip) = entry.parse::<IpAddr>() {
            match ip {
                IpAddr::V4(v4) => {
                    nets.push(Ipv4Net::from(v4));
                    notes.push(v4.to_string());
                }
                IpAddr::V6(_) => notes.push(format!("{entry} (skipped: builds have no IPv6)")),
            }
        } else if entry.parse::<ipnet::IpNet>().is_ok() {
            notes.push(format!("{entry} (skipped: builds have no IPv6)"));
        } else {
            match tokio::net::lookup_host((entry, 0)).await {
                Ok(addresses) => {
                    let v4: Vec<_> = addresses
                        .filter_map(|a| match a.ip() {
                            IpAddr::V4(v4) => Some(v4),
                            IpAddr::V6(_) => None,
                        })
                        .collect();
                    if v4.is_empty() {
                        notes.push(format!("{entry} (no IPv4 address found)"));
                    } else {
                        let listed: Vec<_> = v4.iter().map(ToString::to_string).collect();
                        notes.push(format!("{entry} ({})", listed.join(", ")));
                        nets.extend(v4.into_iter().map(Ipv4Net::from));
                    }
                }
                Err(e) => notes.push(format!("{entry} (not resolved on the runner: {e})")),
            }
        }
    }
    nets.sort();
    nets.dedup();
    (nets, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allowed_hosts_are_addresses_blocks_or_names_and_ipv6_is_said_to_be_skipped() {
        let entries = [
            "10.213.0.2".to_owned(),
            "10.1.2.0/24".to_owned(),
            "10.1.2.9/24".to_owned(),
            "fd00::1".to_owned(),
            "localhost".to_owned(),
        ];
        let (nets, notes) = resolve_allowed(&entries).await;
        let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert!(nets.contains(&"10.213.0.2/32".to_owned()));
        assert!(nets.contains(&"10.1.2.0/24".to_owned()));
        assert!(nets.contains(&"127.0.0.1/32".to_owned()), "{nets:?}");
        assert_eq!(nets.iter().filter(|n| *n == "10.1.2.0/24").count(), 1);
        assert!(notes.iter().any(|n| n.contains("fd00::1 (skipped")), "{notes:?}");
    }
}
