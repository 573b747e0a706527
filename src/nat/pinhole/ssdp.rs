//! Finding an IGD that offers IPv6 firewall control: an SSDP search over
//! IPv6 (`M-SEARCH` to the link-local multicast group `ff02::c`) from our
//! global address on its interface. The answers are untrusted datagrams:
//! each is read into a fixed buffer and only its `LOCATION` header is used,
//! and only when it is a plain `http://` URL naming an IPv6 address (the
//! pinhole must be asked for over IPv6).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;
use tokio::net::UdpSocket;

/// The search target: the IPv6 firewall control service, any version.
pub(super) const SEARCH_TARGET: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";

/// The SSDP multicast group on the link.
const SSDP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xc);

/// Answers read before giving up (each in a buffer of [`MAX_DATAGRAM`]).
const MAX_ANSWERS: usize = 64;
const MAX_DATAGRAM: usize = 2048;

/// Searches from `local` on the interface with index `scope` for up to
/// `timeout`; the description URL of the first IGD that answers usably.
pub(super) async fn search(
    local: Ipv6Addr,
    scope: u32,
    timeout: Duration,
) -> Result<url::Url, String> {
    let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V6(local), 0))
        .await
        .map_err(|e| format!("no UDP socket on {local}: {e}"))?;
    let request = format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: [FF02::C]:1900\r\nMAN: \"ssdp:discover\"\r\nMX: {}\r\nST: {SEARCH_TARGET}\r\n\r\n",
        timeout.as_secs().clamp(1, 5)
    );
    let group = SocketAddrV6::new(SSDP_V6, 1900, 0, scope);
    socket
        .send_to(request.as_bytes(), group)
        .await
        .map_err(|e| format!("the SSDP search could not be sent on {local}: {e}"))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut unusable = 0usize;
    for _ in 0..MAX_ANSWERS {
        let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        else {
            break;
        };
        let Ok((n, _from)) = received else { break };
        match location(&buf[..n]) {
            Some(url) => return Ok(url),
            None => unusable += 1,
        }
    }
    Err(if unusable == 0 {
        "no IGD with IPv6 firewall control answered over IPv6".into()
    } else {
        format!("{unusable} SSDP answer(s) over IPv6, none with a usable IPv6 location")
    })
}

/// The `LOCATION` of an SSDP answer, if it is an `http://[IPv6]…` URL.
pub(super) fn location(datagram: &[u8]) -> Option<url::Url> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?;
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return None;
    }
    let value = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("location")
            .then(|| value.trim())
    })?;
    let url = url::Url::parse(value).ok()?;
    let v6_host = matches!(url.host(), Some(url::Host::Ipv6(_)));
    (url.scheme() == "http" && v6_host && url.username().is_empty() && url.password().is_none())
        .then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_miniupnpd_answer_gives_its_location() {
        let answer = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
            ST: urn:schemas-upnp-org:service:WANIPv6FirewallControl:1\r\n\
            USN: uuid:3d3cec3a-8cf0-11e0-98ee-001a6b2e6a3e::urn:schemas-upnp-org:service:WANIPv6FirewallControl:1\r\n\
            EXT:\r\nSERVER: Debian/6.18.44-fc-v657 UPnP/1.1 MiniUPnPd/2.3.1\r\n\
            LOCATION: http://[2a0b:78::1]:44781/rootDesc.xml\r\n\
            OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n01-NLS: 1796066707\r\n\r\n";
        let url = location(answer.as_bytes()).unwrap();
        assert_eq!(url.as_str(), "http://[2a0b:78::1]:44781/rootDesc.xml");
    }

    #[test]
    fn unusable_answers_give_nothing() {
        for answer in [
            "HTTP/1.1 200 OK\r\nLOCATION: http://192.168.77.1:5000/rootDesc.xml\r\n\r\n",
            "HTTP/1.1 200 OK\r\nLOCATION: https://[2a0b:78::1]/d.xml\r\n\r\n",
            "HTTP/1.1 200 OK\r\nLOCATION: http://igd.example/d.xml\r\n\r\n",
            "HTTP/1.1 200 OK\r\nLOCATION: http://u:p@[2a0b:78::1]/d.xml\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nLOCATION: http://[2a0b:78::1]/d.xml\r\n\r\n",
            "HTTP/1.1 200 OK\r\nST: x\r\n\r\n",
            "NOTIFY * HTTP/1.1\r\n\r\n",
            "",
        ] {
            assert_eq!(location(answer.as_bytes()), None, "{answer}");
        }
        assert_eq!(location(&[0xff, 0xfe, 0x00]), None);
    }
}
