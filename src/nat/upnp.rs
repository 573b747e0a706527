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
//! igd-next's search also fetches the device description without a size
//! bound; the search timeout bounds how long that can run.

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
        let mut resp = client
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
        let mut answer = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| soap_error("the IGD's answer broke off"))?
        {
            if answer.len() + chunk.len() > MAX_SOAP_BYTES {
                return Err(soap_error(format!(
                    "the IGD's answer is larger than {MAX_SOAP_BYTES} bytes"
                )));
            }
            answer.extend_from_slice(&chunk);
        }
        // A SOAP fault comes with status 500 and is parsed as an answer.
        String::from_utf8(answer).map_err(|_| soap_error("the IGD's answer is not UTF-8"))
    }
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

/// An igd-next error as a short line fit for a log: igd-next puts the
/// gateway's whole answer (untrusted, multi-line XML) into some of its
/// messages, so only the text before the first `<` is kept, control
/// characters are escaped and the line is cut.
fn peer_text(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let head = text.split('<').next().unwrap_or_default();
    let head = head.trim_end_matches([' ', ':', '\n', '\r']);
    let mut out = String::new();
    for (n, c) in head.chars().enumerate() {
        if n == 160 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an unreadable GetExternalIPAddress answer says the gateway has
/// no external address (miniupnpd answers an empty one when its own WAN
/// address is private or reserved).
fn empty_external_address(e: &igd_next::GetExternalIpError) -> bool {
    let text = e.to_string();
    text.contains("<NewExternalIPAddress></NewExternalIPAddress>")
        || text.contains("<NewExternalIPAddress/>")
}

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
        for &lan_ip in lan_ips {
            let search = igd_next::SearchOptions {
                bind_addr: SocketAddr::new(IpAddr::V4(lan_ip), 0),
                timeout: Some(options.search_timeout),
                single_search_timeout: Some(options.search_timeout),
                ..Default::default()
            };
            // The outer timeout also bounds igd-next's description fetch.
            let found = tokio::time::timeout(
                options.search_timeout + options.call_timeout,
                igd_next::aio::tokio::search_gateway(search),
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
                Ok(Err(e)) => why.push(format!("{lan_ip}: {}", peer_text(e))),
                Err(_) => why.push(format!("{lan_ip}: no answer in time")),
            }
        }
        Err(format!("no UPnP gateway answered ({})", why.join("; ")))
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
                    peer_text(e)
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
                    peer_text(first),
                    peer_text(e)
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
                peer_text(e)
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
                peer_text(e)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateways_answer_stays_out_of_the_message() {
        let e = "Request Error. Invalid response from gateway: <?xml version=\"1.0\"?>\n<s:Envelope>secret</s:Envelope>";
        assert_eq!(peer_text(e), "Request Error. Invalid response from gateway");
        assert_eq!(peer_text("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(peer_text("x".repeat(500)).chars().count(), 161);
    }
}
