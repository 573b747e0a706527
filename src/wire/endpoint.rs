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

/// Classifies an IPv6 address; `None` means publicly routable. Every form
/// that carries an IPv4 address is judged by that address: IPv4-mapped,
/// IPv4-compatible and NAT64 (`64:ff9b::/96`, never public itself), 6to4
/// (`2002::/16`), Teredo (`2001:0::/32`: its server and its client address
/// must both be public) and ISATAP interface ids (`…:0:5efe:a.b.c.d`,
/// `…:200:5efe:a.b.c.d`). Local-use NAT64 (`64:ff9b:1::/48`) is never public.
pub fn classify_v6(ip: Ipv6Addr) -> Option<NonPublic> {
    if ip.is_loopback() {
        return Some(NonPublic::Loopback);
    }
    if ip.is_unspecified() {
        return Some(NonPublic::Unspecified);
    }
    let seg = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return classify_v4(mapped);
    }
    if seg[..6] == [0; 6] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(v4(seg[6], seg[7])).or(Some(NonPublic::SpecialPurpose));
    }
    if seg[..3] == [0x64, 0xff9b, 1] {
        return Some(NonPublic::SpecialPurpose);
    }
    if seg[0] == 0x2002 {
        return classify_v4(v4(seg[1], seg[2]));
    }
    if seg[..2] == [0x2001, 0] {
        // The client's address is stored inverted (RFC 4380 §4).
        return classify_v4(v4(seg[2], seg[3])).or_else(|| classify_v4(v4(!seg[6], !seg[7])));
    }
    if seg[4] & 0xfcff == 0 && seg[5] == 0x5efe {
        if let Some(np) = classify_v4(v4(seg[6], seg[7])) {
            return Some(np);
        }
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
    /// A query (`?…`) or fragment (`#…`): an endpoint is
    /// `scheme://host[:port][/path]` and nothing more.
    #[error("endpoint must not carry a query or fragment")]
    QueryOrFragment,
    /// Whitespace, control characters or backslashes, which URL parsers
    /// drop or rewrite silently (what is stored would differ from what is used).
    #[error("endpoint contains whitespace, control characters or backslashes")]
    Characters,
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

/// Parses an endpoint URL and checks its form: `http(s)://host[:port][/path]`
/// without credentials, query or fragment (no routability).
pub fn parse_endpoint(endpoint: &str) -> Result<ParsedEndpoint, EndpointError> {
    parse_url_with_schemes(endpoint, &["http", "https"])
}

/// Parses `scheme://host[:port][/path]` for one of `schemes`, refusing
/// credentials, a query, a fragment and characters a URL parser would drop.
/// Schemes without a default port (`iicp`, `iicpsec`) need an explicit one.
pub fn parse_url_with_schemes(
    endpoint: &str,
    schemes: &[&str],
) -> Result<ParsedEndpoint, EndpointError> {
    if endpoint
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(EndpointError::Characters);
    }
    let url = Url::parse(endpoint).map_err(|_| EndpointError::Invalid)?;
    if !schemes.contains(&url.scheme()) {
        return Err(EndpointError::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::Credentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(EndpointError::QueryOrFragment);
    }
    let host = match url.host() {
        Some(Host::Ipv4(v4)) => EndpointHost::Ip(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => EndpointHost::Ip(IpAddr::V6(v6)),
        // Non-special schemes (iicp://) leave IPv4 literals as names.
        Some(Host::Domain(d)) => match d.parse::<Ipv4Addr>() {
            Ok(v4) => EndpointHost::Ip(IpAddr::V4(v4)),
            Err(_) if d.is_empty() => return Err(EndpointError::NoHost),
            Err(_) => EndpointHost::Name(d.to_owned()),
        },
        None => return Err(EndpointError::NoHost),
    };
    let port = url.port_or_known_default().ok_or(EndpointError::NoHost)?;
    Ok(ParsedEndpoint { url, host, port })
}

impl ParsedEndpoint {
    /// The URL of `suffix` (e.g. `/iicp/health`) under this endpoint's path,
    /// built from the parsed scheme, host, port and path: never by pasting
    /// strings, so nothing in the endpoint can turn the suffix into a query
    /// or fragment.
    pub fn url_for(&self, suffix: &str) -> Url {
        let mut url = self.url.clone();
        let path = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            suffix.trim_start_matches('/')
        );
        url.set_path(&path);
        url.set_query(None);
        url.set_fragment(None);
        url
    }
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
            check_endpoint_form("not-a-url"),
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

    #[test]
    fn ipv6_forms_embedding_ipv4_are_judged_by_their_ipv4() {
        // (address, expected verdict). 6to4 is 2002:AABB:CCDD::/48 for
        // A.B.C.D; Teredo keeps the server's IPv4 in bits 32-63 and the
        // client's, inverted, in the last 32 bits.
        for (ip, expected) in [
            ("2002:7f00:1::", Some(NonPublic::Loopback)), // 6to4 of 127.0.0.1
            ("2002:a00:1::1", Some(NonPublic::Private)),  // 6to4 of 10.0.0.1
            ("2002:a9fe:a9fe::", Some(NonPublic::LinkLocal)), // 169.254.169.254
            ("2002:808:808::1", None),                    // 6to4 of 8.8.8.8
            // Teredo, server 65.54.227.120, client 127.0.0.1 (inverted 80ff:fffe).
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                Some(NonPublic::Loopback),
            ),
            // Teredo, server 10.0.0.1, client 8.8.8.8 (inverted f7f7:f7f7).
            ("2001:0:a00:1::f7f7:f7f7", Some(NonPublic::Private)),
            // Teredo, server 65.54.227.120, client 8.8.8.8: both public.
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None),
            ("2001:db8::5efe:a00:1", Some(NonPublic::Private)), // ISATAP first
            ("2606:4700::5efe:7f00:1", Some(NonPublic::Loopback)), // ISATAP
            ("2606:4700::200:5efe:a00:1", Some(NonPublic::Private)), // ISATAP
            ("64:ff9b:1::a00:1", Some(NonPublic::SpecialPurpose)), // local-use NAT64
            ("64:ff9b::7f00:1", Some(NonPublic::Loopback)),
        ] {
            let v6: Ipv6Addr = ip.parse().unwrap();
            assert_eq!(classify_v6(v6), expected, "{ip}");
            let ip = IpAddr::V6(v6);
            // The directory's routability check and the client's DNS judge.
            assert_eq!(check_resolved(&[ip], false).err(), expected, "{ip}");
            assert!(
                check_resolved(&[ip], true).is_ok(),
                "{ip}: the opt-in admits it"
            );
            // The literal-URL path: the directory's form check and the
            // client's SSRF guard on discovered endpoints.
            let url = format!("http://[{v6}]:9484");
            let form = check_endpoint_form(&url);
            assert_eq!(
                form.clone().err(),
                expected.map(EndpointError::NonPublic),
                "{url}"
            );
            let guard = crate::client::guard::EndpointGuard::new(false);
            assert_eq!(
                guard.check_endpoint(&url).is_ok(),
                expected.is_none(),
                "{url}"
            );
        }
    }

    #[test]
    fn endpoints_carry_no_query_fragment_or_stray_characters() {
        for (endpoint, expected) in [
            (
                "http://127.0.0.1:18001/admin/delete_all?confirm=yes#",
                EndpointError::QueryOrFragment,
            ),
            ("http://node.example.com/?", EndpointError::QueryOrFragment),
            (
                "http://node.example.com/base#x",
                EndpointError::QueryOrFragment,
            ),
            ("http://node.example.com/a b", EndpointError::Characters),
            ("http://node.example.com/a\tb", EndpointError::Characters),
            ("http://node.example.com\\@evil", EndpointError::Characters),
            ("http://user@node.example.com", EndpointError::Credentials),
        ] {
            assert_eq!(parse_endpoint(endpoint), Err(expected), "{endpoint:?}");
        }
        assert!(parse_endpoint("https://node.example.com/base/").is_ok());
    }

    #[test]
    fn url_for_builds_the_probe_url_from_parts() {
        for (endpoint, expected) in [
            ("http://127.0.0.1:9484", "http://127.0.0.1:9484/iicp/health"),
            (
                "http://127.0.0.1:9484/",
                "http://127.0.0.1:9484/iicp/health",
            ),
            (
                "https://h.example.com/base/",
                "https://h.example.com/base/iicp/health",
            ),
            ("http://[::1]:80/p%3Fq", "http://[::1]/p%3Fq/iicp/health"),
        ] {
            let parsed = parse_endpoint(endpoint).unwrap();
            assert_eq!(parsed.url_for("/iicp/health").as_str(), expected);
        }
    }

    #[test]
    fn transport_endpoints_use_the_same_form_rules() {
        let schemes = &["iicp", "iicpsec"];
        let ok = parse_url_with_schemes("iicp://127.0.0.1:9485", schemes).unwrap();
        assert_eq!(ok.host, EndpointHost::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(ok.port, 9485);
        for (endpoint, expected) in [
            ("iicp://h.example.com", EndpointError::NoHost), // no port
            ("iicp://h.example.com:1?x", EndpointError::QueryOrFragment),
            ("iicp://u:p@h.example.com:1", EndpointError::Credentials),
            (
                "http://h.example.com:1",
                EndpointError::Scheme("http".into()),
            ),
        ] {
            assert_eq!(
                parse_url_with_schemes(endpoint, schemes),
                Err(expected),
                "{endpoint}"
            );
        }
    }
}
