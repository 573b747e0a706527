//! The host's own addresses, classified: which IPv4 addresses are public
//! (reachable from the internet if nothing filters), which IPv6 addresses
//! are global and stable (not temporary/privacy, deprecated or still being
//! checked), and which private IPv4 addresses face a LAN (where an IGD may
//! answer).

use crate::wire::endpoint::{classify_v4, classify_v6};
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// The 6to4 relay anycast block (RFC 7526 deprecated it): public by the
/// wire's routability rules, but no host's own endpoint.
static SIX_TO_FOUR_RELAY: LazyLock<Ipv4Net> =
    LazyLock::new(|| "192.88.99.0/24".parse().expect("a valid prefix"));

/// Global unicast IPv6 blocks the wire's rules judge by an embedded address
/// or leave public, that are still no good as a stable endpoint: Teredo,
/// 6to4, ORCHID and the newer documentation block.
static UNSTABLE_V6: LazyLock<Vec<Ipv6Net>> = LazyLock::new(|| {
    [
        "2001::/32",
        "2002::/16",
        "2001:10::/28",
        "2001:20::/28",
        "3fff::/20",
    ]
    .iter()
    .map(|net| net.parse().expect("a valid prefix"))
    .collect()
});

/// Whether `ip` is a public IPv4 address: routable by the wire's rules
/// (`wire::endpoint::classify_v4`: not private, CGNAT, loopback,
/// link-local, documentation, benchmarking, multicast, reserved, …) and
/// not the 6to4 relay anycast block.
pub fn is_public_v4(ip: Ipv4Addr) -> bool {
    classify_v4(ip).is_none() && !SIX_TO_FOUR_RELAY.contains(&ip)
}

/// Whether `ip` is a private (RFC 1918) IPv4 address, the kind a home LAN
/// hands out and an IGD serves.
pub fn is_lan_v4(ip: Ipv4Addr) -> bool {
    ip.is_private()
}

/// Whether `ip` is a global unicast IPv6 address fit to advertise: in
/// 2000::/3, routable by the wire's rules (`classify_v6`: not
/// documentation, …) and not in [`UNSTABLE_V6`].
pub fn is_global_v6(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xe000 == 0x2000
        && classify_v6(ip).is_none()
        && !UNSTABLE_V6.iter().any(|net| net.contains(&ip))
}

/// Whether `ip` is public: a public IPv4 or a global IPv6 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| is_global_v6(v6), is_public_v4),
    }
}

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// The interface's name.
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// For IPv6: not temporary, deprecated, tentative or failed duplicate
    /// detection. IPv4 addresses are always stable.
    pub stable: bool,
}

/// Flags of `/proc/net/if_inet6` that make an IPv6 address unfit to
/// advertise: temporary (privacy), failed DAD, deprecated, tentative.
const UNSTABLE_V6_FLAGS: u32 = 0x01 | 0x08 | 0x20 | 0x40;

/// Every address of every interface that is up, loopback excluded.
pub fn host_addresses() -> Vec<HostAddress> {
    let mut out: Vec<HostAddress> = match if_addrs::get_if_addrs() {
        Ok(ifaces) => ifaces
            .into_iter()
            .filter(|i| !i.is_loopback())
            .map(|i| HostAddress {
                ip: i.ip(),
                interface: i.name,
                stable: true,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the network interfaces");
            Vec::new()
        }
    };
    // Linux tells which IPv6 addresses are temporary or deprecated.
    if let Ok(table) = std::fs::read_to_string("/proc/net/if_inet6") {
        let flags = parse_if_inet6(&table);
        for a in out.iter_mut() {
            if let IpAddr::V6(v6) = a.ip {
                if let Some((_, f)) = flags.iter().find(|(ip, _)| *ip == v6) {
                    a.stable = f & UNSTABLE_V6_FLAGS == 0;
                }
            }
        }
    }
    out
}

/// `(address, flags)` of each line of `/proc/net/if_inet6`
/// (`<32 hex digits> <ifindex> <prefix len> <scope> <flags> <name>`);
/// malformed lines are skipped.
pub fn parse_if_inet6(table: &str) -> Vec<(Ipv6Addr, u32)> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hex = fields.next()?;
            let flags = fields.nth(3)?;
            if hex.len() != 32 {
                return None;
            }
            let bits = u128::from_str_radix(hex, 16).ok()?;
            Some((Ipv6Addr::from(bits), u32::from_str_radix(flags, 16).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_v4() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("11.77.5.1", true),
            ("10.1.2.3", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("100.128.0.1", true),
            ("172.16.0.1", false),
            ("172.32.0.1", true),
            ("192.168.77.2", false),
            ("169.254.1.1", false),
            ("203.0.113.9", false),
            ("198.19.0.1", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("0.1.2.3", false),
            ("192.88.99.1", false),
            ("192.0.0.9", false),
        ] {
            assert_eq!(is_public_v4(ip.parse().unwrap()), public, "{ip}");
        }
        assert!(is_lan_v4("192.168.1.10".parse().unwrap()));
        assert!(!is_lan_v4("100.64.0.1".parse().unwrap()));
    }

    #[test]
    fn global_v6_and_mapped_v4() {
        for (ip, global) in [
            ("2a01:4f8::1", true),
            ("2001:db8::1", false),
            ("2002:c000:204::1", false),
            ("fe80::1", false),
            ("fd00::1", false),
            ("::1", false),
            ("ff02::1", false),
            ("3fff::1", false),
        ] {
            assert_eq!(is_global_v6(ip.parse().unwrap()), global, "{ip}");
        }
        assert!(is_public("::ffff:8.8.8.8".parse().unwrap()));
        assert!(!is_public("::ffff:192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn if_inet6_flags_are_read_and_garbage_skipped() {
        let table = "2a0100000000000000000000000000aa 02 40 00 00 eth0\n\
                     2a0100000000000000000000000000bb 02 40 00 01 eth0\n\
                     2a0100000000000000000000000000cc 02 40 00 20 eth0\n\
                     fe800000000000000000000000000001 02 40 20 80 eth0\n\
                     nonsense\n\
                     zz0100000000000000000000000000cc 02 40 00 20 eth0\n";
        let parsed = parse_if_inet6(table);
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[0], ("2a01::aa".parse().unwrap(), 0));
        assert_eq!(parsed[1].1 & UNSTABLE_V6_FLAGS, 0x01);
        assert_eq!(parsed[2].1 & UNSTABLE_V6_FLAGS, 0x20);
        assert_eq!(parsed[3].1 & UNSTABLE_V6_FLAGS, 0);
    }
}
