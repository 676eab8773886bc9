//! What a build may reach over the network: the public internet, and not
//! the runner's host, private networks or link-local addresses (cloud
//! metadata at 169.254.169.254 among them).
//!
//! A build runs whatever its repository says, a fork's pull request
//! included, so its container must not be a way into the network the runner
//! stands in. Docker alone lets a container reach every address the host
//! routes to, and the host itself through its bridge's gateway.
//!
//! While the policy is on, every build network is a bridge whose interface
//! is named `jsb-…` ([`bridge_name`]), and iptables rules match the
//! interface wildcard `jsb-+`, so one set of rules covers every build
//! network of every runner on the host:
//!
//! - in the engine's `DOCKER-USER` chain (forwarded traffic: other hosts),
//!   a jump to [`FORWARD_CHAIN`], which lets replies through, lets DNS go to
//!   the host's resolvers, and refuses new connections to the
//!   [`BLOCKED_V4`] ranges;
//! - in `INPUT` (traffic to the host itself, which is where packets to the
//!   bridge's gateway address go, not through `FORWARD`), a jump to
//!   [`HOST_CHAIN`], which refuses every new connection;
//! - for IPv6 (build networks have no IPv6 route, but a container can reach
//!   the host's link-local addresses), the same jumps from `FORWARD` and
//!   `INPUT` to chains that refuse every new connection.
//!
//! Refusing is `REJECT` with "administratively prohibited", not `DROP`: the
//! build's tool fails at once with "No route to host" or "Host is
//! unreachable" instead of hanging until its own timeout.
//!
//! A site's allowed private hosts become rules of the job's own bridge at
//! the top of both IPv4 chains ([`allow`]), removed when the job ends.
//!
//! The rules are driven through the `iptables` and `ip6tables` commands
//! (whichever front end, legacy or nft, the engine uses too), with `-w` so
//! concurrent changes by the engine or other runners wait for the lock.
//! The `iptables` crate wraps the same commands, synchronously and without
//! the errors we want to show, so it saves nothing here.

use ipnet::Ipv4Net;
use std::net::IpAddr;
use std::sync::LazyLock;
use tokio::process::Command;
use tokio::sync::Mutex;

/// Build network interfaces start with this.
pub const BRIDGE_PREFIX: &str = "jsb-";

/// The iptables wildcard matching every build network's interface.
const BRIDGE_MATCH: &str = "jsb-+";

/// The chain of forwarded traffic from build networks.
pub const FORWARD_CHAIN: &str = "JAMSTACK-EGRESS";

/// The chain of traffic from build networks to the host itself.
pub const HOST_CHAIN: &str = "JAMSTACK-HOST";

/// IPv4 ranges no build reaches unless its site allows a host in them:
/// everything that is not the public internet.
pub const BLOCKED_V4: &[&str] = &[
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // carrier-grade NAT
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local, cloud metadata
    "172.16.0.0/12",   // private (Docker's own networks too)
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation
    "192.88.99.0/24",  // 6to4 relay anycast
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation
    "203.0.113.0/24",  // documentation
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, broadcast
];

/// Where the host's resolvers are written; Docker's embedded DNS forwards
/// a build's queries to them.
const RESOLV_CONF: &[&str] = &["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"];

/// One rule change at a time in this process (a process may run several
/// runners); other processes are held off by iptables' own lock (`-w`).
static RULES: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

/// Why the policy could not be put in place.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EgressError(String);

/// The interface name of a build network: [`BRIDGE_PREFIX`] and 11 hex
/// digits of the network's name (interface names hold 15 bytes).
pub fn bridge_name(network: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(network.as_bytes()));
    format!("{BRIDGE_PREFIX}{}", &digest[..11])
}

/// iptables or ip6tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn command(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn reject(self) -> &'static str {
        match self {
            Family::V4 => "icmp-admin-prohibited",
            Family::V6 => "icmp6-adm-prohibited",
        }
    }

    /// The chain that sees forwarded traffic first: Docker keeps
    /// `DOCKER-USER` first in `FORWARD` for IPv4 and leaves it to us; it
    /// does not manage IPv6 (without its experimental flag).
    fn forward_parent(self) -> &'static str {
        match self {
            Family::V4 => "DOCKER-USER",
            Family::V6 => "FORWARD",
        }
    }
}

fn words(rule: &str) -> Vec<String> {
    rule.split_whitespace().map(str::to_owned).collect()
}

/// A chain and its rules, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChainRules {
    chain: &'static str,
    rules: Vec<Vec<String>>,
}

/// The rules of one family: the chains' contents, then the jumps into them.
fn rules(family: Family, resolvers: &[IpAddr]) -> (Vec<ChainRules>, Vec<(&'static str, Vec<String>)>) {
    let replies = words("-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN");
    let reject = |dest: Option<&str>| {
        let mut rule = Vec::new();
        if let Some(dest) = dest {
            rule.extend(["-d".to_owned(), dest.to_owned()]);
        }
        rule.extend(words(&format!("-j REJECT --reject-with {}", family.reject())));
        rule
    };
    let forward = match family {
        Family::V4 => {
            let mut rules = vec![replies.clone()];
            for resolver in resolvers.iter().filter(|ip| ip.is_ipv4() && !ip.is_loopback()) {
                for protocol in ["udp", "tcp"] {
                    rules.push(words(&format!(
                        "-d {resolver}/32 -p {protocol} -m {protocol} --dport 53 -j RETURN"
                    )));
                }
            }
            rules.extend(BLOCKED_V4.iter().map(|range| reject(Some(range))));
            rules
        }
        Family::V6 => vec![replies.clone(), reject(None)],
    };
    let chains = vec![
        ChainRules {
            chain: FORWARD_CHAIN,
            rules: forward,
        },
        ChainRules {
            chain: HOST_CHAIN,
            rules: vec![replies, reject(None)],
        },
    ];
    let jumps = vec![
        (
            family.forward_parent(),
            words(&format!("-i {BRIDGE_MATCH} -j {FORWARD_CHAIN}")),
        ),
        ("INPUT", words(&format!("-i {BRIDGE_MATCH} -j {HOST_CHAIN}"))),
    ];
    (chains, jumps)
}

/// Runs one iptables command (waiting up to 10 s for the xtables lock)
/// and returns what it did, whatever its exit status.
async fn output(family: Family, args: &[&str]) -> Result<std::process::Output, EgressError> {
    Command::new(family.command())
        .args(["-w", "10"])
        .args(args)
        .output()
        .await
        .map_err(|e| {
            EgressError(format!(
                "`{}` could not be run ({e}); install iptables on the runner's host",
                family.command()
            ))
        })
}

/// Runs one iptables command; `Ok(false)` when it exits non-zero.
async fn run(family: Family, args: &[String]) -> Result<(bool, String), EgressError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = output(family, &args).await?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    ))
}

/// Runs one iptables command that must succeed.
async fn must(family: Family, args: Vec<String>) -> Result<(), EgressError> {
    let (ok, stderr) = run(family, &args).await?;
    if ok {
        Ok(())
    } else {
        Err(EgressError(format!(
            "`{} {}` failed: {stderr}",
            family.command(),
            args.join(" ")
        )))
    }
}

async fn exists(family: Family, chain: &str, rule: &[String]) -> Result<bool, EgressError> {
    let mut args = vec!["-C".to_owned(), chain.to_owned()];
    args.extend_from_slice(rule);
    Ok(run(family, &args).await?.0)
}

fn with(op: &str, chain: &str, position: Option<u32>, rule: &[String]) -> Vec<String> {
    let mut args = vec![op.to_owned(), chain.to_owned()];
    args.extend(position.map(|p| p.to_string()));
    args.extend_from_slice(rule);
    args
}

/// The rules of `chain` as `iptables -S` prints them (without `-A
/// <chain>`), or `None` when there is no such chain.
async fn listing(family: Family, chain: &str) -> Result<Option<Vec<String>>, EgressError> {
    let output = output(family, &["-S", chain]).await?;
    if !output.status.success() {
        return Ok(None);
    }
    let prefix = format!("-A {chain} ");
    Ok(Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .collect(),
    ))
}

/// Whether `expected` appear in `listed` in their order (other rules, such
/// as the jobs' allowances, may stand between them).
fn in_order(listed: &[String], expected: &[Vec<String>]) -> bool {
    let mut listed = listed.iter();
    expected
        .iter()
        .all(|rule| listed.any(|line| *line == rule.join(" ")))
}

/// Removes allowances of build bridges that are gone: a runner that
/// stopped mid-job (killed, or the machine went down) could not revoke
/// them. Bridge names are never used twice, so such a rule opens nothing,
/// but rules should not pile up.
async fn forget_vanished_allowances(
    family: Family,
    chain: &str,
    listed: &[String],
) -> Result<(), EgressError> {
    for line in listed {
        let rule = words(line);
        let bridge = rule
            .windows(2)
            .find(|pair| pair[0] == "-i" && pair[1].starts_with(BRIDGE_PREFIX) && !pair[1].ends_with('+'))
            .map(|pair| pair[1].clone());
        if let Some(bridge) = bridge
            && !std::path::Path::new("/sys/class/net").join(&bridge).exists()
        {
            must(family, with("-D", chain, None, &rule)).await?;
        }
    }
    Ok(())
}

/// Puts the rules of one family in place, changing only what is missing.
/// The rules are written as `iptables -S` prints them, so that when all is
/// in place (the usual case, before every build) checking costs one
/// listing per chain.
async fn ensure_family(family: Family, resolvers: &[IpAddr]) -> Result<(), EgressError> {
    let (chains, jumps) = rules(family, resolvers);
    for ChainRules { chain, rules } in &chains {
        let listed = match listing(family, chain).await? {
            Some(listed) => listed,
            None => {
                must(family, vec!["-N".to_owned(), (*chain).to_owned()]).await?;
                Vec::new()
            }
        };
        forget_vanished_allowances(family, chain, &listed).await?;
        if !in_order(&listed, rules) {
            // Order matters (replies and DNS before the refusals), so a
            // chain missing any rule gets all of them again, in order,
            // after the jobs' own allowances, which stay at its top.
            for rule in rules {
                while exists(family, chain, rule).await? {
                    must(family, with("-D", chain, None, rule)).await?;
                }
            }
            for rule in rules {
                must(family, with("-A", chain, None, rule)).await?;
            }
        }
    }
    for (parent, jump) in &jumps {
        let listed = listing(family, parent).await?.unwrap_or_default();
        if !listed.contains(&jump.join(" ")) && !exists(family, parent, jump).await? {
            must(family, with("-I", parent, Some(1), jump)).await?;
        }
    }
    Ok(())
}

/// The host's resolvers, from its resolv.conf files.
fn host_resolvers() -> Vec<IpAddr> {
    let mut found = Vec::new();
    for path in RESOLV_CONF {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            if fields.next() == Some("nameserver")
                && let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>)
                && !found.contains(&ip)
            {
                found.push(ip);
            }
        }
    }
    found
}

/// Puts the policy's rules in place (idempotent; only what is missing is
/// added), or says why it cannot and what to do. Called when the runner
/// starts and again before every build with network, so rules removed
/// meanwhile (a firewall reload) are back before a build runs.
pub async fn ensure() -> Result<(), EgressError> {
    let _one_at_a_time = RULES.lock().await;
    let resolvers = host_resolvers();
    ensure_family(Family::V4, &resolvers)
        .await
        .map_err(|e| explain(e, "IPv4"))?;
    // A host without IPv6 has no IPv6 to keep builds from.
    if std::path::Path::new("/proc/net/if_inet6").exists() {
        ensure_family(Family::V6, &resolvers)
            .await
            .map_err(|e| explain(e, "IPv6"))?;
    }
    Ok(())
}

fn explain(EgressError(detail): EgressError, family: &str) -> EgressError {
    EgressError(format!(
        "this runner cannot keep builds off its host and private networks: setting up the {family} \
         firewall rules failed ({detail}). Run the runner as root on a host with iptables, \
         or turn the site's build network off (PUT /api/v1/sites/<site>/build-network \
         {{\"network\": \"off\"}}), or start the runner with --allow-private-networks to accept \
         that builds can reach the host and its private networks"
    ))
}

/// A job's allowed private hosts, open from its bridge until [`revoke`].
#[derive(Debug, Default)]
pub struct Allowance {
    rules: Vec<(&'static str, Vec<String>)>,
}

fn allowance_rules(bridge: &str, nets: &[Ipv4Net]) -> Vec<(&'static str, Vec<String>)> {
    nets.iter()
        .flat_map(|net| {
            [FORWARD_CHAIN, HOST_CHAIN]
                .map(|chain| (chain, words(&format!("-i {bridge} -d {net} -j RETURN"))))
        })
        .collect()
}

/// Opens `nets` to the build network on `bridge`: rules at the top of both
/// IPv4 chains, ahead of the refusals.
pub async fn allow(bridge: &str, nets: &[Ipv4Net]) -> Result<Allowance, EgressError> {
    let one_at_a_time = RULES.lock().await;
    let mut allowance = Allowance::default();
    for (chain, rule) in allowance_rules(bridge, nets) {
        if let Err(e) = must(Family::V4, with("-I", chain, Some(1), &rule)).await {
            drop(one_at_a_time);
            revoke(allowance).await;
            return Err(e);
        }
        allowance.rules.push((chain, rule));
    }
    Ok(allowance)
}

/// Closes what [`allow`] opened.
pub async fn revoke(allowance: Allowance) {
    let _one_at_a_time = RULES.lock().await;
    for (chain, rule) in allowance.rules {
        if let Err(e) = must(Family::V4, with("-D", chain, None, &rule)).await {
            tracing::warn!(error = %e, "removing a build's allowed private host failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_an_interface_name_and_match_the_wildcard() {
        let name = bridge_name("jamstack-job-7-0123456789abcdef");
        assert_eq!(name.len(), 15, "{name}");
        assert!(name.starts_with(BRIDGE_PREFIX));
        assert_ne!(name, bridge_name("jamstack-job-8-0123456789abcdef"));
    }

    #[test]
    fn forwarded_traffic_gets_replies_and_dns_then_every_private_range_is_refused() {
        let resolvers = ["10.255.255.53".parse().unwrap(), "127.0.0.53".parse().unwrap()];
        let (chains, jumps) = rules(Family::V4, &resolvers);
        let forward = &chains[0];
        assert_eq!(forward.chain, FORWARD_CHAIN);
        let text: Vec<String> = forward.rules.iter().map(|r| r.join(" ")).collect();
        assert_eq!(text[0], "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN");
        assert_eq!(text[1], "-d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN");
        assert_eq!(text[2], "-d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j RETURN");
        assert!(
            !text.iter().any(|r| r.contains("127.0.0.53")),
            "a loopback resolver is the host's own"
        );
        for range in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "100.64.0.0/10",
        ] {
            assert!(
                text.contains(&format!(
                    "-d {range} -j REJECT --reject-with icmp-admin-prohibited"
                )),
                "{range}"
            );
        }
        let host: Vec<String> = chains[1].rules.iter().map(|r| r.join(" ")).collect();
        assert_eq!(
            host.last().unwrap(),
            "-j REJECT --reject-with icmp-admin-prohibited",
            "nothing new reaches the host itself"
        );
        assert_eq!(jumps[0].0, "DOCKER-USER");
        assert_eq!(jumps[0].1.join(" "), "-i jsb-+ -j JAMSTACK-EGRESS");
        assert_eq!(jumps[1].0, "INPUT");
    }

    #[test]
    fn rules_count_as_in_place_when_listed_in_order_whatever_stands_between() {
        let expected = vec![words("-a 1"), words("-b 2")];
        let listed = |lines: &[&str]| lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
        assert!(in_order(&listed(&["-x 9", "-a 1", "-y 8", "-b 2"]), &expected));
        assert!(!in_order(&listed(&["-b 2", "-a 1"]), &expected));
        assert!(!in_order(&listed(&["-a 1"]), &expected));
    }

    #[test]
    fn ipv6_from_a_build_network_is_refused_whatever_its_destination() {
        let (chains, jumps) = rules(Family::V6, &[]);
        for chain in &chains {
            assert_eq!(
                chain.rules.last().unwrap().join(" "),
                "-j REJECT --reject-with icmp6-adm-prohibited"
            );
        }
        assert_eq!(jumps[0].0, "FORWARD");
    }

    #[test]
    fn a_sites_allowed_host_opens_to_its_own_bridge_only() {
        let rules = allowance_rules(
            "jsb-0123456789a",
            &[Ipv4Net::from(std::net::Ipv4Addr::new(10, 213, 0, 2))],
        );
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0].1.join(" "),
            "-i jsb-0123456789a -d 10.213.0.2/32 -j RETURN"
        );
    }
}
