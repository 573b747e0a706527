//! Tier 1a: a port mapping on a UPnP Internet Gateway Device (igd-next).
//!
//! The IGD is a LAN peer we did not choose: every answer is untrusted. The
//! search runs on each LAN interface under [`UpnpOptions::search_timeout`];
//! every SOAP call goes through [`BoundedSoap`], which reads at most
//! [`MAX_SOAP_BYTES`] under [`UpnpOptions::call_timeout`] (igd-next's own
//! HTTP client reads without bound). An external address that is not public
//! (a second NAT, CGNAT) is refused: mapping behind it reaches nobody. The
//! mapping asks for the serve port outside; when that is taken, any port
//! (`AddAnyPortMapping`, or igd-next's fallback of random ports).
//! The search is our own (`search.rs`): igd-next's reads the device
//! description without a size bound and keeps quiet about unusable answers.
//! What a gateway says is never echoed raw: reasons carry at most a short,
//! cleaned excerpt ([`clean`]).

mod search;

use super::addresses::is_public;
use super::options::UpnpOptions;
use igd_next::PortMappingProtocol;
use igd_next::aio::Gateway;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Largest SOAP answer read from an IGD.
pub const MAX_SOAP_BYTES: usize = 64 * 1024;

/// The description the mapping carries on the router.
const DESCRIPTION: &str = "iicp-node";

/// igd-next's SOAP transport replaced by one that reads a bounded answer
/// under a timeout.
#[derive(Debug, Clone)]
pub struct BoundedSoap;

/// The longest a [`BoundedSoap`] call may take (igd-next's provider trait
/// carries no state; each caller also applies its own, shorter, timeout).
const SOAP_TIMEOUT: Duration = Duration::from_secs(10);

fn soap_error(message: impl Into<String>) -> igd_next::RequestError {
    igd_next::RequestError::IoError(std::io::Error::other(message.into()))
}

#[async_trait::async_trait]
impl igd_next::aio::Provider for BoundedSoap {
    async fn send_async(
        url: &str,
        action: &str,
        body: &str,
    ) -> Result<String, igd_next::RequestError> {
        let client = reqwest::Client::builder()
            .timeout(SOAP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| soap_error(e.to_string()))?;
        let resp = client
            .post(url)
            .header("SOAPAction", action)
            .header("content-type", "text/xml")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| {
                soap_error(format!(
                    "the IGD did not answer: {}",
                    crate::outbound::root_cause(&e)
                ))
            })?;
        let answer = read_bounded(resp, MAX_SOAP_BYTES)
            .await
            .map_err(|why| soap_error(format!("the IGD's answer {why}")))?;
        // A SOAP fault comes with status 500 and is parsed as an answer.
        String::from_utf8(answer).map_err(|_| soap_error("the IGD's answer is not UTF-8"))
    }
}

/// Reads `resp`'s body, failing as soon as it passes `max` bytes (the rest
/// is never read). The error completes a sentence about the body.
pub(in crate::nat) async fn read_bounded(
    resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    let body = crate::outbound::read_capped(resp, max).await.map_err(|e| {
        if e.is_timeout() {
            "did not end in time".to_owned()
        } else {
            "broke off".to_owned()
        }
    })?;
    if !body.complete {
        return Err(format!("is larger than {max} bytes"));
    }
    Ok(body.bytes.into())
}

/// `text` from a gateway made fit for a reason or a log line: control
/// characters replaced, at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Why the gateway gave no usable mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpnpError {
    /// Its external address is not public (or it has none): the router is
    /// itself behind another NAT, e.g. carrier-grade NAT.
    BehindNat(String),
    /// Anything else (no answer, refusal, unreadable answer).
    Failed(String),
}

impl std::fmt::Display for UpnpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BehindNat(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

/// Whether an unreadable GetExternalIPAddress answer says the gateway has
/// no external address (miniupnpd answers an empty one when its own WAN
/// address is private or reserved).
fn empty_external_address(e: &igd_next::GetExternalIpError) -> bool {
    let text = e.to_string();
    text.contains("<NewExternalIPAddress></NewExternalIPAddress>")
        || text.contains("<NewExternalIPAddress/>")
}

/// An igd-next request error, without the gateway's raw answer.
fn request_error(e: &igd_next::RequestError) -> String {
    use igd_next::RequestError as E;
    match e {
        E::InvalidResponse(text) => format!(
            "an answer that is not a SOAP response ({} bytes)",
            text.len()
        ),
        E::ErrorCode(code, description) => {
            format!("UPnP error {code} ({})", clean(description, 40))
        }
        E::UnsupportedAction(action) => {
            format!("the gateway does not offer {}", clean(action, 40))
        }
        other => clean(&other.to_string(), 160),
    }
}

/// igd-next's action errors: their own texts, a request error cleaned.
macro_rules! action_error {
    ($name:ident, $ty:ident) => {
        fn $name(e: &igd_next::$ty) -> String {
            match e {
                igd_next::$ty::RequestError(r) => request_error(r),
                other => other.to_string(),
            }
        }
    };
}
action_error!(external_ip_error, GetExternalIpError);
action_error!(add_port_error, AddPortError);
action_error!(add_any_port_error, AddAnyPortError);
action_error!(remove_port_error, RemovePortError);

/// A gateway found on a LAN interface.
#[derive(Debug, Clone)]
pub struct Igd {
    gateway: Gateway<BoundedSoap>,
    /// Our LAN address on the interface it answered.
    pub lan_ip: Ipv4Addr,
    options: UpnpOptions,
}

/// A mapping made on an IGD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The router's external address.
    pub external_ip: IpAddr,
    /// The port outside.
    pub external_port: u16,
    /// Where it leads: our LAN address and the serve port.
    pub internal: SocketAddr,
}

impl Igd {
    /// Searches for an IGD from each of `lan_ips` in turn; the first that
    /// answers. `Err` says why none did.
    pub async fn search(lan_ips: &[Ipv4Addr], options: UpnpOptions) -> Result<Self, String> {
        if lan_ips.is_empty() {
            return Err("no LAN interface (private IPv4 address) to search from".into());
        }
        let mut why = Vec::new();
        let mut unusable = false;
        for &lan_ip in lan_ips {
            // The search ends by itself; this is a safety net.
            let found = tokio::time::timeout(
                options.search_timeout + options.call_timeout + Duration::from_secs(1),
                search::search(lan_ip, &options),
            )
            .await;
            match found {
                Ok(Ok(g)) => {
                    let gateway = Gateway {
                        addr: g.addr,
                        root_url: g.root_url,
                        control_url: g.control_url,
                        control_schema_url: g.control_schema_url,
                        control_schema: g.control_schema,
                        provider: BoundedSoap,
                    };
                    return Ok(Self {
                        gateway,
                        lan_ip,
                        options,
                    });
                }
                Ok(Err(search::NotFound::Unusable(problem))) => {
                    unusable = true;
                    why.push(format!("{lan_ip}: {problem}"));
                }
                Ok(Err(search::NotFound::Silent)) | Err(_) => {
                    why.push(format!("{lan_ip}: no answer in time"));
                }
            }
        }
        if unusable {
            Err(format!("no usable UPnP gateway ({})", why.join("; ")))
        } else {
            Err(format!("no UPnP gateway answered ({})", why.join("; ")))
        }
    }

    /// The gateway's address (for logs).
    pub fn address(&self) -> SocketAddr {
        self.gateway.addr
    }

    /// The router's external address, if it is public.
    pub async fn external_ip(&self) -> Result<IpAddr, UpnpError> {
        let answer =
            tokio::time::timeout(self.options.call_timeout, self.gateway.get_external_ip())
                .await
                .map_err(|_| {
                    UpnpError::Failed(
                        "the gateway did not tell its external address in time".into(),
                    )
                })?;
        let ip = match answer {
            Ok(ip) => ip,
            Err(e) if empty_external_address(&e) => {
                return Err(UpnpError::BehindNat(
                    "the gateway has no public external address (its own WAN address is private or reserved: a second NAT or carrier-grade NAT)".into(),
                ));
            }
            Err(e) => {
                return Err(UpnpError::Failed(format!(
                    "the gateway did not tell its external address: {}",
                    external_ip_error(&e)
                )));
            }
        };
        if !is_public(ip) {
            return Err(UpnpError::BehindNat(format!(
                "the gateway's external address {ip} is not public (a second NAT or carrier-grade NAT)"
            )));
        }
        Ok(ip)
    }

    /// Maps `port` outside to `port` on our LAN address (or any free port
    /// when that one is taken), for the configured lease.
    pub async fn map(&self, port: u16) -> Result<Mapping, UpnpError> {
        let external_ip = self.external_ip().await?;
        let internal = SocketAddr::new(IpAddr::V4(self.lan_ip), port);
        let lease = self.options.lease.as_secs().min(u64::from(u32::MAX)) as u32;
        let late = || UpnpError::Failed("the gateway did not answer the mapping in time".into());
        let same = tokio::time::timeout(
            self.options.call_timeout,
            self.gateway
                .add_port(PortMappingProtocol::TCP, port, internal, lease, DESCRIPTION),
        )
        .await
        .map_err(|_| late())?;
        let external_port = match same {
            Ok(()) => port,
            Err(first) => tokio::time::timeout(
                self.options.call_timeout * 4,
                self.gateway
                    .add_any_port(PortMappingProtocol::TCP, internal, lease, DESCRIPTION),
            )
            .await
            .map_err(|_| late())?
            .map_err(|e| {
                UpnpError::Failed(format!(
                    "the gateway refused the mapping ({}; then {})",
                    add_port_error(&first),
                    add_any_port_error(&e)
                ))
            })?,
        };
        if external_port == 0 {
            return Err(UpnpError::Failed(
                "the gateway answered with external port 0".into(),
            ));
        }
        Ok(Mapping {
            external_ip,
            external_port,
            internal,
        })
    }

    /// Renews `mapping` (the same request again) and returns it with the
    /// external address as the gateway tells it now.
    pub async fn renew(&self, mapping: &Mapping) -> Result<Mapping, UpnpError> {
        let external_ip = self.external_ip().await?;
        let lease = self.options.lease.as_secs().min(u64::from(u32::MAX)) as u32;
        tokio::time::timeout(
            self.options.call_timeout,
            self.gateway.add_port(
                PortMappingProtocol::TCP,
                mapping.external_port,
                mapping.internal,
                lease,
                DESCRIPTION,
            ),
        )
        .await
        .map_err(|_| UpnpError::Failed("the gateway did not answer the renewal in time".into()))?
        .map_err(|e| {
            UpnpError::Failed(format!(
                "the gateway refused to renew the mapping: {}",
                add_port_error(&e)
            ))
        })?;
        Ok(Mapping {
            external_ip,
            ..mapping.clone()
        })
    }

    /// Removes `mapping` (at shutdown).
    pub async fn unmap(&self, mapping: &Mapping) -> Result<(), String> {
        tokio::time::timeout(
            self.options.call_timeout,
            self.gateway
                .remove_port(PortMappingProtocol::TCP, mapping.external_port),
        )
        .await
        .map_err(|_| "the gateway did not answer in time".to_owned())?
        .map_err(|e| {
            format!(
                "the gateway refused to remove the mapping: {}",
                remove_port_error(&e)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_text_is_cleaned_and_cut() {
        assert_eq!(clean("ok", 10), "ok");
        assert_eq!(clean("a\u{1b}[31mb\u{7}", 10), "a\u{fffd}[31mb\u{fffd}");
        assert_eq!(clean(&"é".repeat(50), 4), "éééé…");
    }

    #[test]
    fn request_errors_do_not_echo_the_answer() {
        let answer = format!("not public \u{1b}[2J{}", "x".repeat(10_000));
        let why = request_error(&igd_next::RequestError::InvalidResponse(answer));
        assert_eq!(why, "an answer that is not a SOAP response (10015 bytes)");
        let why = request_error(&igd_next::RequestError::ErrorCode(
            718,
            format!("Conflict\n{}", "y".repeat(100)),
        ));
        assert!(
            why.starts_with("UPnP error 718 (Conflict\u{fffd}yyy"),
            "{why}"
        );
        assert!(why.chars().count() < 60, "{why}");
    }
}
