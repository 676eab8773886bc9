//! Where a notification hook may send: public addresses only, unless the
//! controller allows private ones (`--allow-private-hook-targets`).
//!
//! A hook's URL is whatever a site's admin typed. Without this guard they
//! could make the controller POST to its own loopback services, to the
//! cloud's metadata endpoint (169.254.169.254) or to hosts of the private
//! network, and read each answer's status in the delivery log. Literal
//! addresses are refused when the hook is made and again when it is sent;
//! names are checked when they are resolved for each connection, so a name
//! that later resolves to a private address (DNS rebinding) is refused too.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a hook may not call a private address, and how to allow it.
const PUBLIC_ONLY: &str = "hooks call public addresses only (a controller started with --allow-private-hook-targets allows private ones)";

/// Why a hook may not call `url`, when it names a private or local host by
/// itself and such hosts are not `allowed`. Names are left to the resolver
/// ([`PublicOnly`]); a URL that does not parse is for its caller to refuse.
pub fn refusal(url: &str, allowed: bool) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    (!allowed && names_private_host(&parsed))
        .then(|| format!("`{url}` is a private or local address; {PUBLIC_ONLY}"))
}

/// Whether `url` names a private or local host by itself: an address
/// literal that is not public, or `localhost`.
fn names_private_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    }
}

/// Whether `ip` is on the public internet: not loopback, private, link-local
/// (cloud metadata), carrier-grade NAT, unspecified, multicast, broadcast,
/// documentation, benchmarking, IETF protocol assignments or unique-local.
/// An IPv6 address that carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`,
/// 6to4 `2002::/16`) is judged by the IPv4 address it reaches: a host that
/// routes or translates it would deliver to that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match embedded_ipv4(ip) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

/// The IPv4 address an IPv6 address carries, by the forms that translate or
/// tunnel to it.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible (deprecated, RFC 4291): `::a.b.c.d`, but not `::` and
    // `::1`, which are IPv6's own unspecified and loopback addresses.
    if s[..6] == [0; 6] && !(ip.is_unspecified() || ip.is_loopback()) {
        return Some(last32);
    }
    // NAT64 well-known prefix (RFC 6052) and local-use prefix (RFC 8215).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
        return Some(last32);
    }
    // 6to4 (RFC 3056): the IPv4 address is in bits 16..48.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let this_network = a == 0;
    let reserved = a >= 240;
    // 198.18.0.0/15 (RFC 2544) is for benchmarking networks, often internal.
    let benchmarking = a == 198 && (b & 0xfe) == 18;
    // 192.0.0.0/24 (RFC 6890): IETF protocol assignments, not hosts on the internet.
    let protocol_assignments = a == 192 && b == 0 && c == 0;
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || this_network
        || reserved
        || benchmarking
        || protocol_assignments)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    // fec0::/10, deprecated site-local: still private where it is routed.
    let site_local = first & 0xffc0 == 0xfec0;
    let documentation = first == 0x2001 && ip.segments()[1] == 0x0db8;
    // 100::/64 (RFC 6666): discard-only.
    let discard = ip.segments()[..4] == [0x100, 0, 0, 0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || site_local
        || documentation
        || discard)
}

/// Resolves hook hosts with the system's resolver and keeps their public
/// addresses only; a name with none fails the attempt, saying why.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(
                    format!("`{host}` resolves only to private or local addresses; {PUBLIC_ONLY}").into(),
                );
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Every form of a non-public address a hook might name, IPv4 and the
    /// IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
    /// 6to4): each is refused.
    #[test]
    fn private_addresses_hidden_in_ipv6_or_in_reserved_ranges_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "192.0.0.1",
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::10.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:0101::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "192.0.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn hook_urls_naming_ipv4_inside_ipv6_are_refused() {
        for url in [
            "http://[::127.0.0.1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
            "http://[2002:7f00:1::]/hook",
            "http://198.18.0.1/hook",
        ] {
            assert!(refusal(url, false).is_some(), "{url}");
            assert!(refusal(url, true).is_none(), "{url}");
        }
    }

    #[test]
    fn urls_naming_local_hosts_are_told_apart_from_names_to_resolve() {
        for local in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://localhost/hook",
            "http://LOCALHOST./hook",
            "http://hooks.localhost/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://0x7f000001/hook",
        ] {
            assert!(names_private_host(&url::Url::parse(local).unwrap()), "{local}");
        }
        for other in ["https://hooks.example.com/deploys", "http://93.184.215.14/hook"] {
            assert!(!names_private_host(&url::Url::parse(other).unwrap()), "{other}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_local_addresses_is_refused() {
        let error = match PublicOnly.resolve(Name::from_str("localhost").unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("resolves only to private or local addresses"),
            "{error}"
        );
    }
}
