//! The SOAP exchange against answers recorded from miniupnpd 2.3.1 (the lab's
//! IGD2), served by a small HTTP server on `[::1]`; and what an IGD that
//! refuses, breaks off or answers garbage leads to.

use super::*;
use crate::nat::{HostAddress, Lease, MAX_SOAP_BYTES, Tier};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ST: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";

/// miniupnpd's IGD2 description (`force_igd_desc_v1=no`), as recorded.
const DESCRIPTION: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Debian router</friendlyName><manufacturer>Debian</manufacturer><manufacturerURL>http://www.debian.org/</manufacturerURL><modelDescription>Debian router</modelDescription><modelName>Debian router</modelName><modelNumber>1</modelNumber><modelURL>http://www.debian.org/</modelURL><serialNumber>00000000</serialNumber><UDN>uuid:3d3cec3a-8cf0-11e0-98ee-001a6b2e6a3a</UDN><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service><service><serviceType>urn:schemas-upnp-org:service:DeviceProtection:1</serviceType><serviceId>urn:upnp-org:serviceId:DeviceProtection1</serviceId><SCPDURL>/DP.xml</SCPDURL><controlURL>/ctl/DP</controlURL><eventSubURL>/evt/DP</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><friendlyName>WANDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><manufacturerURL>http://miniupnp.free.fr/</manufacturerURL><modelDescription>WAN Device</modelDescription><modelName>WAN Device</modelName><modelNumber>20221221</modelNumber><modelURL>http://miniupnp.free.fr/</modelURL><serialNumber>00000000</serialNumber><UDN>uuid:3d3cec3a-8cf0-11e0-98ee-001a6b2e6a3b</UDN><UPC>000000000000</UPC><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><friendlyName>WANConnectionDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><manufacturerURL>http://miniupnp.free.fr/</manufacturerURL><modelDescription>MiniUPnP daemon</modelDescription><modelName>MiniUPnPd</modelName><modelNumber>20221221</modelNumber><modelURL>http://miniupnp.free.fr/</modelURL><serialNumber>00000000</serialNumber><UDN>uuid:3d3cec3a-8cf0-11e0-98ee-001a6b2e6a3c</UDN><UPC>000000000000</UPC><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service><service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId><SCPDURL>/WANIP6FC.xml</SCPDURL><controlURL>/ctl/IP6FCtl</controlURL><eventSubURL>/evt/IP6FCtl</eventSubURL></service></serviceList></device></deviceList></device></deviceList><presentationURL>http://192.168.77.1/</presentationURL></device></root>"#;

const ADD_ANSWER: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddPinholeResponse xmlns:u="urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"><UniqueID>1</UniqueID></u:AddPinholeResponse></s:Body></s:Envelope>"#;
const UPDATE_ANSWER: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:UpdatePinholeResponse xmlns:u="urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"></u:UpdatePinholeResponse></s:Body></s:Envelope>"#;
const DELETE_ANSWER: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:DeletePinholeResponse xmlns:u="urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"></u:DeletePinholeResponse></s:Body></s:Envelope>"#;

/// miniupnpd's fault (HTTP 500) with `code` and its description.
fn fault(code: &str, description: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>{code}</errorCode><errorDescription>{description}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"#
    )
}

/// The exact request body we send for `action` with `args`.
fn request(action: &str, args: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action} xmlns:u=\"{ST}\">{args}</u:{action}></s:Body></s:Envelope>\r\n"
    )
}

/// One request the fake IGD received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    soap_action: Option<String>,
    body: String,
}

/// What the fake IGD answers for a key (a GET path, or a SOAP action name):
/// status and body; status 0 never answers.
type Answers = Vec<(&'static str, u16, String)>;

struct FakeIgd {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeIgd {
    async fn start(answers: Answers) -> Self {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answers = Arc::new(answers);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut stream).await else {
                        return;
                    };
                    let key = req
                        .soap_action
                        .as_deref()
                        .and_then(|a| a.trim_matches('"').rsplit('#').next())
                        .unwrap_or(&req.path)
                        .to_owned();
                    log.lock().unwrap().push(req);
                    let Some((_, status, body)) = answers.iter().find(|(k, _, _)| *k == key) else {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    if *status == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                });
            }
        });
        Self { addr, seen }
    }

    fn location(&self) -> url::Url {
        format!("http://{}/rootDesc.xml", self.addr)
            .parse()
            .unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let header = |name: &str| {
        head.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        path,
        soap_action: header("soapaction"),
        body: String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned(),
    })
}

fn options(call_timeout: Duration) -> UpnpOptions {
    UpnpOptions {
        search_timeout: Duration::from_secs(1),
        call_timeout,
        lease: Duration::from_secs(3600),
    }
}

const LOCAL: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// A fake IGD with the recorded description and these SOAP answers.
async fn igd(soap: Answers) -> FakeIgd {
    let mut answers = vec![("/rootDesc.xml", 200, DESCRIPTION.to_owned())];
    answers.extend(soap);
    FakeIgd::start(answers).await
}

async fn control(igd: &FakeIgd) -> Result<FirewallControl, PinholeError> {
    FirewallControl::at(igd.location(), LOCAL, options(Duration::from_secs(5))).await
}

#[tokio::test]
async fn the_recorded_exchange_adds_updates_and_deletes_a_pinhole() {
    let igd = igd(vec![
        ("AddPinhole", 200, ADD_ANSWER.into()),
        ("UpdatePinhole", 200, UPDATE_ANSWER.into()),
        ("DeletePinhole", 200, DELETE_ANSWER.into()),
    ])
    .await;
    let control = control(&igd).await.unwrap();
    assert_eq!(control.address(), format!("[::1]:{}", igd.addr.port()));
    let pinhole = control.add(9484).await.unwrap();
    assert_eq!(
        pinhole,
        Pinhole {
            id: 1,
            client: LOCAL,
            port: 9484
        }
    );
    control.update(&pinhole).await.unwrap();
    control.delete(&pinhole).await.unwrap();

    let seen = igd.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/rootDesc.xml")
    );
    for s in &seen[1..] {
        assert_eq!(
            (s.method.as_str(), s.path.as_str()),
            ("POST", "/ctl/IP6FCtl")
        );
    }
    let action = |a: &str| Some(format!("\"{ST}#{a}\""));
    assert_eq!(seen[1].soap_action, action("AddPinhole"));
    assert_eq!(
        seen[1].body,
        request(
            "AddPinhole",
            "<RemoteHost></RemoteHost><RemotePort>0</RemotePort><InternalClient>::1</InternalClient><InternalPort>9484</InternalPort><Protocol>6</Protocol><LeaseTime>3600</LeaseTime>"
        )
    );
    assert_eq!(seen[2].soap_action, action("UpdatePinhole"));
    assert_eq!(
        seen[2].body,
        request(
            "UpdatePinhole",
            "<UniqueID>1</UniqueID><NewLeaseTime>3600</NewLeaseTime>"
        )
    );
    assert_eq!(seen[3].soap_action, action("DeletePinhole"));
    assert_eq!(
        seen[3].body,
        request("DeletePinhole", "<UniqueID>1</UniqueID>")
    );
}

#[tokio::test]
async fn the_lease_asked_for_stays_within_what_the_service_takes() {
    let igd = igd(vec![("AddPinhole", 200, ADD_ANSWER.into())]).await;
    let mut opts = options(Duration::from_secs(5));
    opts.lease = Duration::from_secs(7 * 86_400);
    let control = FirewallControl::at(igd.location(), LOCAL, opts)
        .await
        .unwrap();
    control.add(9484).await.unwrap();
    assert!(igd.seen()[1].body.contains("<LeaseTime>86400</LeaseTime>"));
}

#[tokio::test]
async fn error_606_is_a_refusal_and_the_ladder_falls_to_1c_with_guidance() {
    let igd = igd(vec![(
        "AddPinhole",
        500,
        fault("606", "Action not authorized &lt;script&gt;"),
    )])
    .await;
    let control = control(&igd).await.unwrap();
    let err = control.add(9484).await.unwrap_err();
    assert_eq!(
        err,
        PinholeError::Refused {
            action: "AddPinhole",
            code: 606
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("UPnP error 606") && text.contains("not authorized"),
        "{text}"
    );
    assert!(!text.contains('<') && !text.contains("script"), "{text}");

    // Through the ladder's IPv6 rung: tier 1c, the address advertised, the
    // operator told which port to open to which address.
    let v6: Ipv6Addr = "2a0b:78::2".parse().unwrap();
    let host = HostAddress {
        interface: "eth0".into(),
        ip: IpAddr::V6(v6),
        stable: true,
    };
    let opened = crate::nat::open_pinhole(Ok(control), 9484).await;
    let found = crate::nat::ipv6_outcome(&host, v6, 9484, opened, Vec::new());
    assert_eq!(found.tier, Tier::Ipv6Guidance);
    assert_eq!(found.endpoint.as_deref(), Some("http://[2a0b:78::2]:9484"));
    assert!(found.mapping.is_none());
    let guidance = found.guidance.unwrap();
    assert!(
        guidance.contains("TCP port 9484 to 2a0b:78::2"),
        "{guidance}"
    );
    let rung = found
        .rungs
        .iter()
        .find(|r| r.name == "IPv6 pinhole")
        .unwrap();
    assert!(!rung.chosen);
    assert!(rung.outcome.contains("606"), "{}", rung.outcome);
}

#[tokio::test]
async fn an_opened_pinhole_is_tier_1b_with_its_lease() {
    let igd = igd(vec![("AddPinhole", 200, ADD_ANSWER.into())]).await;
    let v6: Ipv6Addr = "2a0b:78::2".parse().unwrap();
    let host = HostAddress {
        interface: "eth0".into(),
        ip: IpAddr::V6(v6),
        stable: true,
    };
    let opened = crate::nat::open_pinhole(control(&igd).await, 9484).await;
    let found = crate::nat::ipv6_outcome(&host, v6, 9484, opened, Vec::new());
    assert_eq!(found.tier, Tier::Ipv6Pinhole);
    assert_eq!(found.endpoint.as_deref(), Some("http://[2a0b:78::2]:9484"));
    assert!(matches!(
        found.mapping,
        Some(Lease::Pinhole(_, Pinhole { id: 1, .. }))
    ));
    assert!(
        found
            .rungs
            .iter()
            .any(|r| r.name == "IPv6 pinhole" && r.chosen)
    );
}

#[tokio::test]
async fn each_refusal_code_is_named() {
    for (code, words) in [
        ("701", "exhausted"),
        ("702", "firewall is disabled"),
        ("703", "not allowed"),
        ("704", "no such pinhole"),
        ("705", "protocol"),
        ("706", "wildcard internal port"),
        ("707", "wildcard protocol"),
        ("999", "does not define"),
    ] {
        let igd = igd(vec![("UpdatePinhole", 500, fault(code, "x"))]).await;
        let control = control(&igd).await.unwrap();
        let pinhole = Pinhole {
            id: 3,
            client: LOCAL,
            port: 9484,
        };
        let err = control.update(&pinhole).await.unwrap_err();
        assert_eq!(
            err,
            PinholeError::Refused {
                action: "UpdatePinhole",
                code: code.parse().unwrap()
            }
        );
        assert!(err.to_string().contains(words), "{code}: {err}");
    }
}

#[tokio::test]
async fn an_igd_without_the_service_or_with_a_foreign_control_url_has_none() {
    let v1 = DESCRIPTION.replace(
        "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1",
        "urn:schemas-upnp-org:service:WANIPv6FirewallControl:x",
    );
    let elsewhere = DESCRIPTION.replace("/ctl/IP6FCtl", "http://[2a0b:78::99]:80/ctl");
    let other_port = DESCRIPTION.replace("/ctl/IP6FCtl", "http://[::1]:1/ctl");
    for (description, words) in [
        (v1, "offers no IPv6 firewall control"),
        (elsewhere, "not a path on the IGD"),
        (other_port, "not a path on the IGD"),
        ("<root><device>".to_owned(), "not well-formed"),
        ("{}".to_owned(), "not well-formed"),
    ] {
        let igd = FakeIgd::start(vec![("/rootDesc.xml", 200, description)]).await;
        let err = control(&igd).await.unwrap_err();
        assert!(matches!(err, PinholeError::NoService(_)), "{err:?}");
        assert!(err.to_string().contains(words), "{err}");
    }
    let igd = FakeIgd::start(vec![]).await;
    let err = control(&igd).await.unwrap_err();
    assert!(err.to_string().contains("HTTP status 404"), "{err}");
}

#[tokio::test]
async fn garbage_answers_are_failures_that_echo_nothing() {
    let wrong = ADD_ANSWER.replace("AddPinholeResponse", "DeletePinholeResponse");
    let cases: Vec<(String, u16, &str)> = vec![
        ("garbage <<<".into(), 200, "not well-formed"),
        (
            ADD_ANSWER.replace("<UniqueID>1</UniqueID>", ""),
            200,
            "no valid UniqueID",
        ),
        (
            ADD_ANSWER.replace(">1<", ">70000<"),
            200,
            "no valid UniqueID",
        ),
        (ADD_ANSWER.replace(">1<", ">-1<"), 200, "no valid UniqueID"),
        (wrong, 200, "not a AddPinholeResponse"),
        (fault("six", "x"), 500, "unreadable error code"),
        (ADD_ANSWER.into(), 503, "HTTP status 503"),
        ("<a>".repeat(100), 200, "nested deeper"),
        (
            format!("<a>{}</a>", "x".repeat(MAX_SOAP_BYTES)),
            200,
            "larger than",
        ),
    ];
    for (answer, status, words) in cases {
        let igd = igd(vec![("AddPinhole", status, answer)]).await;
        let err = control(&igd).await.unwrap().add(9484).await.unwrap_err();
        assert!(matches!(err, PinholeError::Failed(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(words), "{words}: {text}");
        assert!(
            !text.contains("Envelope") && !text.contains("xxxx"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_silent_igd_is_given_up_on() {
    let igd = igd(vec![("AddPinhole", 0, String::new())]).await;
    let control = FirewallControl::at(igd.location(), LOCAL, options(Duration::from_millis(300)))
        .await
        .unwrap();
    let err = control.add(9484).await.unwrap_err();
    assert!(matches!(err, PinholeError::Failed(_)), "{err:?}");
    assert!(err.to_string().contains("in time"), "{err}");
}

#[tokio::test]
async fn a_pinhole_the_router_forgot_is_opened_again_and_deleted_at_stop() {
    // miniupnpd answers UpdatePinhole for an unknown id with 402.
    let readd = ADD_ANSWER.replace(">1<", ">2<");
    let igd = igd(vec![
        ("UpdatePinhole", 500, fault("402", "Invalid Args")),
        ("AddPinhole", 200, readd),
        ("DeletePinhole", 200, DELETE_ANSWER.into()),
    ])
    .await;
    let control = control(&igd).await.unwrap();
    let pinhole = Pinhole {
        id: 1,
        client: LOCAL,
        port: 9484,
    };
    let (endpoint, _rx) =
        tokio::sync::watch::channel(crate::nat::Advertised::direct("http://[::1]:9484"));
    let stop = tokio_util::sync::CancellationToken::new();
    let keeper = tokio::spawn(crate::nat::keep(
        Lease::Pinhole(control, pinhole),
        crate::nat::Keeping {
            port: 9484,
            every: Duration::from_millis(20),
            endpoint,
            recheck: Default::default(),
            stop: stop.clone(),
        },
    ));
    for _ in 0..500 {
        if igd.seen().iter().any(|s| s.body.contains("AddPinhole")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    keeper.await.unwrap();
    let seen = igd.seen();
    let actions: Vec<&str> = seen
        .iter()
        .filter_map(|s| s.soap_action.as_deref())
        .map(|a| a.trim_matches('"').rsplit('#').next().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"UpdatePinhole"), "{actions:?}");
    assert!(actions.contains(&"AddPinhole"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"DeletePinhole"), "{actions:?}");
    let last = seen.last().unwrap();
    assert_eq!(
        last.body,
        request("DeletePinhole", "<UniqueID>2</UniqueID>")
    );
}

fn ladder_options(container: crate::nat::ContainerMode) -> crate::nat::NatOptions {
    crate::nat::NatOptions {
        port: 9484,
        bind: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        public_endpoint: None,
        container,
        upnp: options(Duration::from_secs(1)),
    }
}

#[tokio::test]
async fn in_a_container_no_pinhole_is_asked_for_and_the_address_is_1c() {
    let host = HostAddress {
        interface: "eth0".into(),
        ip: "2a0b:78::2".parse().unwrap(),
        stable: true,
    };
    let found =
        crate::nat::detect_with(&ladder_options(crate::nat::ContainerMode::Yes), &[host]).await;
    assert_eq!(found.tier, Tier::Ipv6Guidance);
    let rung = found
        .rungs
        .iter()
        .find(|r| r.name == "IPv6 pinhole")
        .unwrap();
    assert!(
        rung.outcome.starts_with("skipped: in a container"),
        "{}",
        rung.outcome
    );
}

#[tokio::test]
async fn an_unstable_or_unknown_interface_address_opens_nothing() {
    // A temporary (privacy) address is never advertised nor opened.
    let temporary = HostAddress {
        interface: "eth0".into(),
        ip: "2a0b:78::3".parse().unwrap(),
        stable: false,
    };
    let no = crate::nat::ContainerMode::No;
    let found = crate::nat::detect_with(&ladder_options(no), &[temporary]).await;
    assert_eq!(found.tier, Tier::Local);
    assert!(found.rungs.iter().all(|r| r.name != "IPv6 pinhole"));

    // An interface that is not there: no search, 1c with the reason.
    let ghost = HostAddress {
        interface: "iicp-no-such0".into(),
        ip: "2a0b:78::2".parse().unwrap(),
        stable: true,
    };
    let found = crate::nat::detect_with(&ladder_options(no), &[ghost]).await;
    assert_eq!(found.tier, Tier::Ipv6Guidance);
    assert!(found.mapping.is_none());
    let rung = found
        .rungs
        .iter()
        .find(|r| r.name == "IPv6 pinhole")
        .unwrap();
    assert!(rung.outcome.contains("has no index"), "{}", rung.outcome);
}
