//! Finding an IGD from one LAN address: SSDP M-SEARCH (sent more than once:
//! it is UDP multicast), then the device description and the connection
//! service's description (SCPD) over HTTP, each read to at most
//! [`MAX_DESCRIPTION_BYTES`] under the call timeout. igd-next's own search
//! reads the description without a size bound and, when it is unusable,
//! waits on silently; this one says what was wrong with each answer.

use super::super::xml;
use super::{UpnpOptions, clean, read_bounded};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Largest device or service description read from an IGD.
pub const MAX_DESCRIPTION_BYTES: usize = 128 * 1024;

/// The SSDP multicast group and port.
const SSDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);

const SEARCH_REQUEST: &str = "M-SEARCH * HTTP/1.1\r\n\
    HOST: 239.255.255.250:1900\r\n\
    ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
    MAN: \"ssdp:discover\"\r\n\
    MX: 2\r\n\r\n";

/// How many times the search is sent within the search timeout.
const SENDS: u32 = 3;

/// Distinct gateways (LOCATIONs) tried per search; more answers are
/// ignored (a LAN peer could otherwise keep us fetching).
const MAX_LOCATIONS: usize = 4;

/// Problems kept for the reason; more are counted.
const MAX_PROBLEMS: usize = 3;

/// The connection services igd-next can drive.
const SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// What a gateway's descriptions gave: the fields of igd-next's `Gateway`.
#[derive(Debug)]
pub(super) struct Found {
    pub addr: SocketAddr,
    pub root_url: String,
    pub control_url: String,
    pub control_schema_url: String,
    pub control_schema: HashMap<String, Vec<String>>,
}

/// Why a search found no gateway.
#[derive(Debug)]
pub(super) enum NotFound {
    /// Nothing answered.
    Silent,
    /// Something answered, unusably: what was wrong.
    Unusable(String),
}

/// Searches from `lan_ip`: the first gateway whose descriptions are usable.
/// Ends by `search_timeout` plus one call timeout for a description that is
/// on its way.
pub(super) async fn search(lan_ip: Ipv4Addr, options: &UpnpOptions) -> Result<Found, NotFound> {
    let socket = UdpSocket::bind((lan_ip, 0))
        .await
        .map_err(|e| NotFound::Unusable(format!("cannot search from {lan_ip}: {e}")))?;
    let start = Instant::now();
    let deadline = start + options.search_timeout;
    let hard_deadline = deadline + options.call_timeout;
    let every = options.search_timeout / SENDS;
    let mut sent = 0;
    let mut tried = HashSet::new();
    let mut problems = Problems::default();
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let next_send = start + every * sent;
        if sent < SENDS && now >= next_send {
            if let Err(e) = socket.send_to(SEARCH_REQUEST.as_bytes(), SSDP).await {
                problems.push(format!("cannot send the search from {lan_ip}: {e}"));
                break;
            }
            sent += 1;
            continue;
        }
        let wake = if sent < SENDS {
            next_send.min(deadline)
        } else {
            deadline
        };
        let (n, from) = match tokio::time::timeout_at(wake, socket.recv_from(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                problems.push(format!("the search from {lan_ip} failed: {e}"));
                break;
            }
        };
        let location = match location(&buf[..n], from) {
            Ok(l) => l,
            Err(why) => {
                problems.push(format!("{} answered {why}", from.ip()));
                continue;
            }
        };
        if tried.len() >= MAX_LOCATIONS || !tried.insert(location.clone()) {
            continue;
        }
        let time_left = hard_deadline.saturating_duration_since(Instant::now());
        let call_timeout = options.call_timeout.min(time_left);
        match describe(&location, call_timeout).await {
            Ok(found) => return Ok(found),
            Err(why) => problems.push(format!("{} answered, but {why}", from.ip())),
        }
    }
    Err(problems.into_not_found())
}

#[derive(Default)]
struct Problems {
    kept: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.kept.contains(&problem) {
            return;
        }
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(problem);
        } else {
            self.more += 1;
        }
    }

    fn into_not_found(self) -> NotFound {
        if self.kept.is_empty() {
            return NotFound::Silent;
        }
        let mut why = self.kept.join("; ");
        if self.more > 0 {
            why.push_str(&format!("; and {} more", self.more));
        }
        NotFound::Unusable(why)
    }
}

/// The LOCATION of an SSDP answer from `from`; it must be an `http` URL on
/// the host that answered (a LAN peer does not get to send us elsewhere).
fn location(answer: &[u8], from: SocketAddr) -> Result<url::Url, String> {
    let text = std::str::from_utf8(answer)
        .map_err(|_| "the search with bytes that are not text".to_owned())?;
    let status = text.lines().next().unwrap_or_default();
    if !(status.starts_with("HTTP/") && status.split_whitespace().nth(1) == Some("200")) {
        return Err(format!(
            "the search with something that is not an SSDP answer ({})",
            clean(status, 60)
        ));
    }
    let value = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("location")
                .then(|| value.trim())
        })
        .ok_or_else(|| "the search without a LOCATION".to_owned())?;
    let url = url::Url::parse(value)
        .map_err(|_| format!("with a LOCATION that is not a URL ({})", clean(value, 80)))?;
    let host_ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        _ => None,
    };
    if url.scheme() != "http" || host_ip != Some(from.ip()) {
        return Err(format!(
            "with a LOCATION that is not an http URL on {} ({})",
            from.ip(),
            clean(url.as_str(), 80)
        ));
    }
    Ok(url)
}

/// Reads the gateway's device description and its connection service's
/// description.
async fn describe(location: &url::Url, call_timeout: Duration) -> Result<Found, String> {
    let client = reqwest::Client::builder()
        .timeout(call_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("no HTTP client: {e}"))?;
    let description = fetch(&client, location, "its device description").await?;
    let unreadable = |what: &str, url: &url::Url, e: xml::XmlError| {
        format!("{what} ({}) is {e}", clean(url.as_str(), 80))
    };
    let service = xml::find_service(&description, |t| SERVICES.contains(&t))
        .map_err(|e| unreadable("its device description", location, e))?
        .ok_or_else(|| {
            format!(
                "its device description ({}) names no WANIPConnection or WANPPPConnection service",
                clean(location.as_str(), 80)
            )
        })?;
    let control_url = same_host(location, Some(service.control_url), "controlURL")?;
    let scpd_url = same_host(location, service.scpd_url, "SCPDURL")?;
    let scpd = fetch(&client, &scpd_url, "its service description").await?;
    let control_schema: HashMap<String, Vec<String>> = xml::actions(&scpd)
        .map_err(|e| unreadable("its service description", &scpd_url, e))?
        .into_iter()
        .collect();
    if control_schema.is_empty() {
        return Err(format!(
            "its service description ({}) lists no actions",
            clean(scpd_url.as_str(), 80)
        ));
    }
    let port = location.port_or_known_default().unwrap_or(80);
    let ip = match location.host() {
        Some(url::Host::Ipv4(v4)) => v4,
        _ => return Err("its LOCATION has no IPv4 host".into()),
    };
    Ok(Found {
        addr: SocketAddr::new(IpAddr::V4(ip), port),
        root_url: path_of(location),
        control_url: path_of(&control_url),
        control_schema_url: path_of(&scpd_url),
        control_schema,
    })
}

/// GETs `url` and reads at most [`MAX_DESCRIPTION_BYTES`] of UTF-8 text.
async fn fetch(client: &reqwest::Client, url: &url::Url, what: &str) -> Result<String, String> {
    let shown = clean(url.as_str(), 80);
    let resp = client.get(url.clone()).send().await.map_err(|e| {
        if e.is_timeout() {
            format!("{what} ({shown}) did not come in time")
        } else {
            format!(
                "{what} ({shown}) could not be fetched: {}",
                clean(&crate::outbound::root_cause(&e), 80)
            )
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!(
            "{what} ({shown}) answered HTTP {}",
            resp.status().as_u16()
        ));
    }
    let body = read_bounded(resp, MAX_DESCRIPTION_BYTES)
        .await
        .map_err(|why| format!("{what} ({shown}) {why}"))?;
    String::from_utf8(body).map_err(|_| format!("{what} ({shown}) is not UTF-8 text (not XML)"))
}

/// `reference` resolved against `location`; it must stay on the same host
/// and port (igd-next addresses every call to the gateway's address).
fn same_host(
    location: &url::Url,
    reference: Option<String>,
    what: &str,
) -> Result<url::Url, String> {
    let reference = reference
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("its connection service has no {what}"))?;
    let url = location
        .join(&reference)
        .map_err(|_| format!("its {what} is not a URL ({})", clean(&reference, 80)))?;
    if url.scheme() != "http"
        || url.host() != location.host()
        || url.port_or_known_default() != location.port_or_known_default()
    {
        return Err(format!(
            "its {what} points away from the gateway ({})",
            clean(url.as_str(), 80)
        ));
    }
    Ok(url)
}

fn path_of(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> SocketAddr {
        "192.168.77.1:1900".parse().unwrap()
    }

    #[test]
    fn an_ssdp_answer_gives_its_location_on_the_answering_host() {
        let ok =
            b"HTTP/1.1 200 OK\r\nST: x\r\nLocation: http://192.168.77.1:5000/rootDesc.xml\r\n\r\n";
        assert_eq!(
            location(ok, from()).unwrap().as_str(),
            "http://192.168.77.1:5000/rootDesc.xml"
        );
        for (answer, why) in [
            (&b"\xff\xfe garbage"[..], "not text"),
            (b"NOTIFY * HTTP/1.1\r\n\r\n", "not an SSDP answer"),
            (b"HTTP/1.1 200 OK\r\nST: x\r\n\r\n", "without a LOCATION"),
            (b"HTTP/1.1 200 OK\r\nLOCATION: ::::\r\n\r\n", "not a URL"),
            (
                b"HTTP/1.1 200 OK\r\nLOCATION: http://11.77.30.2:80/x\r\n\r\n",
                "not an http URL on 192.168.77.1",
            ),
            (
                b"HTTP/1.1 200 OK\r\nLOCATION: file://192.168.77.1/etc/passwd\r\n\r\n",
                "not an http URL",
            ),
        ] {
            let err = location(answer, from()).unwrap_err();
            assert!(err.contains(why), "{answer:?}: {err}");
        }
    }

    #[test]
    fn service_urls_must_stay_on_the_gateway() {
        let loc = url::Url::parse("http://192.168.77.1:5000/desc/root.xml").unwrap();
        assert_eq!(
            path_of(&same_host(&loc, Some("ctl/IPConn".into()), "controlURL").unwrap()),
            "/desc/ctl/IPConn"
        );
        assert_eq!(
            path_of(
                &same_host(
                    &loc,
                    Some("http://192.168.77.1:5000/ctl?a=1".into()),
                    "controlURL"
                )
                .unwrap()
            ),
            "/ctl?a=1"
        );
        for bad in [
            "http://11.77.30.2:5000/ctl",
            "http://192.168.77.1:80/ctl",
            "",
        ] {
            assert!(
                same_host(&loc, Some(bad.into()), "controlURL").is_err(),
                "{bad}"
            );
        }
        assert!(same_host(&loc, None, "SCPDURL").is_err());
    }

    /// A loopback HTTP server answering every connection with `head` and
    /// then `body` forever (`endless`) or once.
    async fn server(head: &'static str, body: Vec<u8>, endless: bool) -> url::Url {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut request).await;
                    let _ = conn.write_all(head.as_bytes()).await;
                    while conn.write_all(&body).await.is_ok() && endless {}
                });
            }
        });
        url::Url::parse(&format!("http://{addr}/rootDesc.xml")).unwrap()
    }

    const CLOSE: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn an_endless_description_is_cut_at_the_bound() {
        let url = server(CLOSE, vec![b'x'; 64 * 1024], true).await;
        let err = describe(&url, Duration::from_secs(20)).await.unwrap_err();
        assert!(
            err.contains(&format!("is larger than {MAX_DESCRIPTION_BYTES} bytes")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unusable_descriptions_say_what_is_wrong() {
        for (body, why) in [
            (vec![0xff, 0xfe, 0x00, 0x80], "is not UTF-8 text"),
            (b"<<<not xml & \x1b[31m".to_vec(), "is not well-formed XML"),
            (b"<root><device/></root>".to_vec(), "names no WANIPConnection"),
            (
                b"<root><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>http://11.77.30.2/ctl</controlURL><SCPDURL>/s.xml</SCPDURL></service></root>".to_vec(),
                "its controlURL points away from the gateway",
            ),
        ] {
            let url = server(CLOSE, body, false).await;
            let err = describe(&url, Duration::from_secs(20)).await.unwrap_err();
            assert!(err.contains(why), "{err}");
            assert!(!err.chars().any(char::is_control), "{err:?}");
        }
        let hangs = server("", Vec::new(), false).await;
        let err = describe(&hangs, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            err.contains("did not come in time") || err.contains("could not be fetched"),
            "{err}"
        );
    }

    #[test]
    fn problems_are_deduplicated_and_capped() {
        let mut p = Problems::default();
        for i in [1, 1, 2, 3, 4, 5] {
            p.push(format!("problem {i}"));
        }
        match p.into_not_found() {
            NotFound::Unusable(why) => {
                assert_eq!(why, "problem 1; problem 2; problem 3; and 2 more")
            }
            NotFound::Silent => panic!("problems were kept"),
        }
        assert!(matches!(
            Problems::default().into_not_found(),
            NotFound::Silent
        ));
    }
}
