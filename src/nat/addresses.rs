//! The host's own addresses, classified: which IPv4 addresses are public
//! (reachable from the internet if nothing filters), which IPv6 addresses
//! are global and stable (not temporary/privacy, deprecated or still being
//! checked), and which private IPv4 addresses face a LAN (where an IGD may
//! answer).

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 blocks that are not reachable from the internet (RFC 6890 and
/// friends): this network, private, CGNAT shared space, loopback,
/// link-local, IETF protocol assignments, documentation, 6to4 relay
/// anycast, benchmarking, multicast, reserved and broadcast.
const NOT_PUBLIC_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// Global unicast IPv6 blocks that are still no good as a stable endpoint:
/// documentation, Teredo, 6to4, ORCHID and the newer documentation block.
const NOT_GLOBAL_V6: &[&str] = &[
    "2001:db8::/32",
    "2001::/32",
    "2002::/16",
    "2001:10::/28",
    "2001:20::/28",
    "3fff::/20",
];

/// Whether `ip` is a public IPv4 address.
pub fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NOT_PUBLIC_V4
        .iter()
        .any(|net| net.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&ip)))
}

/// Whether `ip` is a private (RFC 1918) IPv4 address, the kind a home LAN
/// hands out and an IGD serves.
pub fn is_lan_v4(ip: Ipv4Addr) -> bool {
    ip.is_private()
}

/// Whether `ip` is a global unicast IPv6 address (2000::/3, without the
/// blocks in [`NOT_GLOBAL_V6`]).
pub fn is_global_v6(ip: Ipv6Addr) -> bool {
    let unicast: Ipv6Net = "2000::/3".parse().expect("a valid prefix");
    unicast.contains(&ip)
        && !NOT_GLOBAL_V6
            .iter()
            .any(|net| net.parse::<Ipv6Net>().is_ok_and(|n| n.contains(&ip)))
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
