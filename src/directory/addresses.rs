//! Address lists of the directory's configuration: trusted proxies (whose
//! forwarding headers are believed) and the extra ranges the liveness probe
//! may reach in local mode.

use ipnet::IpNet;
use std::net::IpAddr;

/// Parses a CIDR range (`10.0.0.0/8`, `fd00::/8`) or a single address (taken
/// as `/32` or `/128`). Host bits of a range are cleared (`10.1.2.3/8` is
/// `10.0.0.0/8`).
pub fn parse_cidr(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    value
        .parse::<IpAddr>()
        .map(|ip| IpNet::from(ip.to_canonical()))
        .map_err(|_| "expected an IP address or a CIDR range such as 10.0.0.0/8".to_owned())
}

/// Whether the local-mode liveness probe may connect to `target`: the
/// registrant's own address `source`, a loopback address when the
/// registrant is itself on this machine (a remote registrant could
/// otherwise learn which of the directory's local ports answer), or an
/// address inside one of the operator's `allow` ranges. IPv4-mapped
/// addresses count as IPv4.
pub(crate) fn probe_allowed(target: IpAddr, source: IpAddr, allow: &[IpNet]) -> bool {
    let (target, source) = (target.to_canonical(), source.to_canonical());
    target == source
        || (target.is_loopback() && source.is_loopback())
        || allow.iter().any(|net| net.contains(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_lists_take_ranges_and_single_addresses() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr(" ::1 ").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_cidr("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
    }

    #[test]
    fn the_probe_reaches_loopback_the_registrant_and_allowed_ranges_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let source = ip("192.168.1.20");
        let allow = [parse_cidr("10.8.0.0/16").unwrap()];
        for (target, allowed) in [
            ("127.0.0.1", false),
            ("::1", false),
            ("192.168.1.20", true),
            ("::ffff:192.168.1.20", true),
            ("10.8.3.4", true),
            ("192.168.1.21", false),
            ("10.9.0.1", false),
            ("169.254.169.254", false),
            ("8.8.8.8", false),
            ("fd00::1", false),
        ] {
            assert_eq!(
                probe_allowed(ip(target), source, &allow),
                allowed,
                "{target}"
            );
        }
        assert!(
            !probe_allowed(ip("10.8.3.4"), source, &[]),
            "nothing extra by default"
        );
        // A registrant on this machine may have its loopback endpoint probed.
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            for target in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
                assert!(
                    probe_allowed(ip(target), ip(local), &[]),
                    "{local} -> {target}"
                );
            }
            assert!(!probe_allowed(ip("192.168.1.21"), ip(local), &[]));
        }
    }
}
