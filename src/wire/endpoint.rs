//! Endpoint routability rules, without I/O (PROTOCOL.md §1.3 step 3, §5.1
//! step 4; vectors in `endpoint-security-v1.json`).
//!
//! The directory uses these to refuse non-routable registrations, and the
//! client uses them as its SSRF guard on discovered nodes. Resolving a name is
//! the caller's job; [`check_resolved`] then judges the answer as a whole (a
//! mixed public/private answer is refused, so DNS rebinding gains nothing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Name suffixes that never denote a public host.
const LOCAL_SUFFIXES: &[&str] = &[
    ".local",
    ".localhost",
    ".test",
    ".example",
    ".invalid",
    ".lan",
    ".internal",
    ".home.arpa",
];

/// Why an address or name is not publicly routable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPublic {
    /// 127/8, ::1.
    Loopback,
    /// RFC 1918, fc00::/7.
    Private,
    /// 169.254/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// 100.64/10.
    Cgnat,
    /// 0.0.0.0, ::.
    Unspecified,
    /// TEST-NET ranges, 2001:db8::/32.
    Documentation,
    /// Multicast, broadcast, reserved and other special-purpose ranges.
    SpecialPurpose,
    /// `localhost`, `.local`, `.internal` and the other local suffixes.
    LocalName,
    /// A name without a dot, such as `ollama`.
    BareHostname,
}

impl NonPublic {
    /// A short human description.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::Cgnat => "a carrier-grade NAT address",
            Self::Unspecified => "an unspecified address",
            Self::Documentation => "a documentation address",
            Self::SpecialPurpose => "a special-purpose address",
            Self::LocalName => "a local-only host name",
            Self::BareHostname => "a bare host name",
        }
    }
}

/// Classifies an IPv4 address; `None` means publicly routable.
pub fn classify_v4(ip: Ipv4Addr) -> Option<NonPublic> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (127, _, _) => NonPublic::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => NonPublic::Private,
        (169, 254, _) => NonPublic::LinkLocal,
        (100, 64..=127, _) => NonPublic::Cgnat,
        (0, _, _) => NonPublic::Unspecified,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => NonPublic::Documentation,
        (192, 0, 0) | (198, 18..=19, _) | (224..=255, _, _) => NonPublic::SpecialPurpose,
        _ => return None,
    })
}

/// Classifies an IPv6 address; `None` means publicly routable. IPv4-mapped,
/// IPv4-compatible and NAT64 addresses are judged by the IPv4 inside them.
pub fn classify_v6(ip: Ipv6Addr) -> Option<NonPublic> {
    if ip.is_loopback() {
        return Some(NonPublic::Loopback);
    }
    if ip.is_unspecified() {
        return Some(NonPublic::Unspecified);
    }
    let seg = ip.segments();
    let embedded_v4 = || Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if seg[..6] == [0; 6] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded_v4()).or(Some(NonPublic::SpecialPurpose));
    }
    Some(match seg[0] {
        s if s & 0xfe00 == 0xfc00 => NonPublic::Private,
        s if s & 0xffc0 == 0xfe80 => NonPublic::LinkLocal,
        0x2001 if seg[1] == 0x0db8 => NonPublic::Documentation,
        s if s & 0xe000 == 0x2000 => return None, // global unicast 2000::/3
        _ => NonPublic::SpecialPurpose,
    })
}

/// Classifies any IP address; `None` means publicly routable.
pub fn classify_ip(ip: IpAddr) -> Option<NonPublic> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Classifies a host name by its form alone; `None` means it may be public
/// (it still has to resolve to public addresses).
pub fn classify_name(name: &str) -> Option<NonPublic> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || LOCAL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        Some(NonPublic::LocalName)
    } else if !name.contains('.') {
        Some(NonPublic::BareHostname)
    } else {
        None
    }
}

/// Judges the complete answer of one resolution: every address must be
/// public unless private ones are explicitly allowed. An empty answer is
/// refused.
pub fn check_resolved(addrs: &[IpAddr], allow_private: bool) -> Result<(), NonPublic> {
    if addrs.is_empty() {
        return Err(NonPublic::SpecialPurpose);
    }
    if allow_private {
        return Ok(());
    }
    addrs
        .iter()
        .find_map(|ip| classify_ip(*ip))
        .map_or(Ok(()), Err)
}

/// Why an endpoint URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not a URL at all.
    #[error("endpoint is not a valid URL")]
    Invalid,
    /// A scheme other than http or https.
    #[error("endpoint scheme `{0}` is not http or https")]
    Scheme(String),
    /// No host part.
    #[error("endpoint has no host")]
    NoHost,
    /// User name or password in the URL.
    #[error("endpoint must not carry credentials")]
    Credentials,
    /// Not publicly routable.
    #[error("endpoint host is {}", .0.describe())]
    NonPublic(NonPublic),
}

/// The host of an endpoint, once its URL form has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointHost {
    /// A literal address.
    Ip(IpAddr),
    /// A name that still needs resolving.
    Name(String),
}

/// A parsed `http(s)://host[:port][/path]` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEndpoint {
    /// The URL itself.
    pub url: Url,
    /// Its host.
    pub host: EndpointHost,
    /// Its port, explicit or the scheme's default.
    pub port: u16,
}

/// Parses an endpoint URL and checks its scheme and form (no routability).
pub fn parse_endpoint(endpoint: &str) -> Result<ParsedEndpoint, EndpointError> {
    let url = Url::parse(endpoint).map_err(|_| EndpointError::Invalid)?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(EndpointError::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::Credentials);
    }
    let host = match url.host() {
        Some(Host::Ipv4(v4)) => EndpointHost::Ip(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => EndpointHost::Ip(IpAddr::V6(v6)),
        Some(Host::Domain(d)) => EndpointHost::Name(d.to_owned()),
        None => return Err(EndpointError::NoHost),
    };
    let port = url.port_or_known_default().ok_or(EndpointError::NoHost)?;
    Ok(ParsedEndpoint { url, host, port })
}

/// Parses an endpoint and applies every check that needs no DNS: literal
/// addresses must be public, names must not be local-only or bare. Names that
/// pass still need [`check_resolved`] on their addresses.
pub fn check_endpoint_form(endpoint: &str) -> Result<ParsedEndpoint, EndpointError> {
    let parsed = parse_endpoint(endpoint)?;
    let verdict = match &parsed.host {
        EndpointHost::Ip(ip) => classify_ip(*ip),
        EndpointHost::Name(name) => classify_name(name),
    };
    match verdict {
        Some(np) => Err(EndpointError::NonPublic(np)),
        None => Ok(parsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_checks() {
        assert!(check_endpoint_form("https://node.example.com").is_ok());
        assert!(check_endpoint_form("http://8.8.8.8:9484/base").is_ok());
        assert_eq!(
            check_endpoint_form("ftp://node.example.com"),
            Err(EndpointError::Scheme("ftp".into()))
        );
        assert_eq!(
            check_endpoint_form("http://127.0.0.1:9484"),
            Err(EndpointError::NonPublic(NonPublic::Loopback))
        );
        assert_eq!(
            check_endpoint_form("http://[::ffff:10.0.0.1]:1"),
            Err(EndpointError::NonPublic(NonPublic::Private))
        );
        assert_eq!(
            check_endpoint_form("http://ollama:11434"),
            Err(EndpointError::NonPublic(NonPublic::BareHostname))
        );
        assert_eq!(
            check_endpoint_form("http://u:p@node.example.com"),
            Err(EndpointError::Credentials)
        );
        assert_eq!(
            check_endpoint_form("not a url"),
            Err(EndpointError::Invalid)
        );
    }

    #[test]
    fn special_v6_ranges() {
        for (ip, public) in [
            ("2606:4700:4700::1111", true),
            ("2001:db8::1", false),
            ("ff02::1", false),
            ("64:ff9b::808:808", false),
            ("::8.8.8.8", false),
            ("fe80::1", false),
        ] {
            let ip: Ipv6Addr = ip.parse().unwrap();
            assert_eq!(classify_v6(ip).is_none(), public, "{ip}");
        }
    }
}
