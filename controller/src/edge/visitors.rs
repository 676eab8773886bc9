//! Who a visitor is, as far as rules ask: the country of a `Country`
//! condition. Worked out only for deploys whose rules ask.
//!
//! The country comes from a header a trusted proxy in front sets
//! (`--country-header`, e.g. Cloudflare's `CF-IPCountry`), else from the
//! operator's GeoIP2/GeoLite2 database (`--geoip-database`) looked up by the
//! visitor's address. That address is the connection's peer, unless the
//! peer is one of `--trusted-proxies`: then it is the last address in
//! `X-Forwarded-For` that is not a trusted proxy. A header from any other
//! peer is ignored: a visitor could otherwise pick their own country.

use crate::config::VisitorSettings;
use anyhow::Context as _;
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The operator's means of locating visitors, made once at startup.
pub struct Visitors {
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
    country_header: Option<HeaderName>,
    trusted_proxies: Vec<IpNet>,
}

/// The part of a GeoIP2 Country or City record read here.
#[derive(serde::Deserialize)]
struct GeoRecord<'a> {
    #[serde(borrow)]
    country: Option<GeoCountry<'a>>,
    /// Where the network is registered: GeoLite2 has only this for some
    /// networks.
    #[serde(borrow)]
    registered_country: Option<GeoCountry<'a>>,
}

#[derive(serde::Deserialize)]
struct GeoCountry<'a> {
    iso_code: Option<&'a str>,
}

impl Visitors {
    /// Opens the GeoIP database, if one is configured; a file that cannot
    /// be read stops the controller from starting, naming it.
    pub fn open(settings: &VisitorSettings) -> anyhow::Result<Visitors> {
        let geoip = settings
            .geoip_database
            .as_ref()
            .map(|path| {
                maxminddb::Reader::open_readfile(path).with_context(|| {
                    format!(
                        "--geoip-database {}: not a readable MaxMind DB (.mmdb) file; give a GeoIP2 or \
                         GeoLite2 Country or City database",
                        path.display()
                    )
                })
            })
            .transpose()?;
        let country_header = settings
            .country_header
            .as_deref()
            .map(|name| {
                HeaderName::from_bytes(name.trim().as_bytes())
                    .with_context(|| format!("--country-header `{name}` is not a valid header name"))
            })
            .transpose()?;
        Ok(Visitors {
            geoip,
            country_header,
            trusted_proxies: settings.trusted_proxies.clone(),
        })
    }

    fn trusted(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.trusted_proxies.iter().any(|net| net.contains(&address))
    }

    /// The visitor's address: the peer, or what trusted proxies say.
    pub fn address(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let peer = canonical(peer?.ip());
        if !self.trusted(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|item| item.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        // Each trusted proxy appended the address it was reached from; the
        // first from the right that is not one of ours is the visitor.
        Some(
            forwarded
                .iter()
                .rev()
                .find(|address| !self.trusted(**address))
                .or(forwarded.first())
                .copied()
                .unwrap_or(peer),
        )
    }

    /// The visitor's ISO country code (uppercase), if it can be told.
    pub fn country(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<String> {
        if let Some(name) = &self.country_header
            && peer.is_some_and(|peer| self.trusted(peer.ip()))
            && let Some(code) = headers.get(name).and_then(|v| v.to_str().ok())
        {
            let code = code.trim();
            if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Some(code.to_ascii_uppercase());
            }
        }
        let reader = self.geoip.as_ref()?;
        let address = self.address(headers, peer)?;
        let record: GeoRecord<'_> = match reader.lookup(address) {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%address, %error, "the GeoIP database could not be read for an address");
                return None;
            }
        };
        record
            .country
            .and_then(|c| c.iso_code)
            .or(record.registered_country.and_then(|c| c.iso_code))
            .map(str::to_ascii_uppercase)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:1.2.3.4`, as a dual-stack
/// listener reports it) is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn visitors(trusted: &[&str]) -> Visitors {
        Visitors {
            geoip: None,
            country_header: Some(HeaderName::from_static("cf-ipcountry")),
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_visitors_address_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let located = visitors(&["10.0.0.0/8"]);
        let forwarded = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.5, 10.0.0.2")]);
        let from_proxy = "10.0.0.1:4000".parse().ok();
        let from_visitor = "192.0.2.9:4000".parse().ok();
        assert_eq!(
            located.address(&forwarded, from_proxy),
            "203.0.113.5".parse().ok()
        );
        assert_eq!(
            located.address(&forwarded, from_visitor),
            "192.0.2.9".parse().ok()
        );
    }

    #[test]
    fn a_country_header_is_believed_only_from_a_trusted_proxy() {
        let located = visitors(&["10.0.0.0/8"]);
        let said = headers(&[("cf-ipcountry", "ca")]);
        assert_eq!(
            located.country(&said, "10.1.2.3:80".parse().ok()).as_deref(),
            Some("CA")
        );
        assert_eq!(located.country(&said, "192.0.2.9:80".parse().ok()), None);
        assert_eq!(located.country(&said, None), None);
    }
}
