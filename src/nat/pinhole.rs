//! Tiers 1b/1c: an IPv6 pinhole on the home router, through the UPnP IGD2
//! service `WANIPv6FirewallControl`.
//!
//! IPv6 is routed, not translated: a global address on our interface is
//! already the address consumers dial; only the router's firewall stands
//! between. An IGD that offers IPv6 firewall control opens it for us:
//! `AddPinhole` (any remote host and port, to our address and the serve
//! port, TCP, for a lease) gives a `UniqueID`; `UpdatePinhole` renews it and
//! `DeletePinhole` removes it at shutdown. An IGD grants a pinhole only to
//! the address that asks, over IPv6, so the IGD is searched for over IPv6
//! (`ssdp.rs`) and every request leaves from our own address (`http.rs`).
//!
//! The IGD is a LAN peer we did not choose: its answers are read bounded in
//! size and time, its XML as a depth-bounded stream (`xml.rs`), its control
//! URL must stay on the host that described it, and nothing it writes
//! reaches a message: a refusal is told by its UPnP error code.

mod http;
mod ssdp;
#[cfg(test)]
mod tests;

use super::options::UpnpOptions;
use super::xml;
use http::IgdHttp;
use std::net::Ipv6Addr;

/// The service type, without its version.
const SERVICE: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:";

/// The longest lease the service takes (`LeaseTime` is 1..=86400 seconds).
const MAX_LEASE_SECS: u64 = 86_400;

/// Why no pinhole was opened, renewed or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinholeError {
    /// No IGD here offers IPv6 firewall control: none answered over IPv6,
    /// or its description names no usable `WANIPv6FirewallControl`.
    NoService(String),
    /// The IGD refused `action` with UPnP error `code` (see
    /// [`upnp_error_meaning`]).
    Refused {
        /// `AddPinhole`, `UpdatePinhole` or `DeletePinhole`.
        action: &'static str,
        /// The UPnP error code it answered.
        code: u16,
    },
    /// No answer in time, or an answer that could not be read.
    Failed(String),
}

impl std::fmt::Display for PinholeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoService(why) | Self::Failed(why) => f.write_str(why),
            Self::Refused { action, code } => write!(
                f,
                "the router refused {action}: UPnP error {code} ({})",
                upnp_error_meaning(*code)
            ),
        }
    }
}

impl std::error::Error for PinholeError {}

/// What a UPnP error code of `WANIPv6FirewallControl` (and the generic
/// control errors) means, in words an operator can act on.
pub fn upnp_error_meaning(code: u16) -> &'static str {
    match code {
        401 => "invalid action: the router does not offer it",
        402 => "invalid arguments, or no such pinhole",
        501 => "the action failed on the router",
        606 => {
            "action not authorized: the router lets no one, or not this host or port, open pinholes"
        }
        701 => "pinhole space exhausted: the router holds no more pinholes",
        702 => "the router's IPv6 firewall is disabled, so it takes no pinholes",
        703 => "inbound pinholes are not allowed by the router's configuration",
        704 => "no such pinhole: it expired or was removed",
        705 => "the router does not support pinholes for this protocol",
        706 => "the router does not allow a wildcard internal port",
        707 => "the router does not allow a wildcard protocol",
        708 => "the router does not allow a wildcard remote host",
        _ => "an error the IPv6 firewall control service does not define",
    }
}

/// An IGD's IPv6 firewall control service, used from one of our addresses.
#[derive(Debug, Clone)]
pub struct FirewallControl {
    control: url::Url,
    service: String,
    local: Ipv6Addr,
    http: IgdHttp,
    options: UpnpOptions,
}

/// A pinhole the IGD opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinhole {
    /// The IGD's `UniqueID` for it.
    pub id: u16,
    /// Our address it lets traffic in to.
    pub client: Ipv6Addr,
    /// The port it lets traffic in to (TCP).
    pub port: u16,
}

impl FirewallControl {
    /// Searches (SSDP over IPv6) on `interface` for an IGD with IPv6
    /// firewall control, to be used from our address `local` on it.
    pub async fn discover(
        local: Ipv6Addr,
        interface: &str,
        options: UpnpOptions,
    ) -> Result<Self, PinholeError> {
        let scope = if_addrs::get_if_addrs()
            .ok()
            .and_then(|all| all.into_iter().find(|i| i.name == interface))
            .and_then(|i| i.index)
            .ok_or_else(|| {
                PinholeError::NoService(format!("interface {interface} has no index to search on"))
            })?;
        let location = ssdp::search(local, scope, options.search_timeout)
            .await
            .map_err(PinholeError::NoService)?;
        Self::at(location, local, options).await
    }

    /// Uses the IGD whose device description is at `location` (found by
    /// SSDP, or known), from our address `local`.
    pub async fn at(
        location: url::Url,
        local: Ipv6Addr,
        options: UpnpOptions,
    ) -> Result<Self, PinholeError> {
        let http = IgdHttp::new(local, options.call_timeout).map_err(PinholeError::Failed)?;
        let described = tokio::time::timeout(options.call_timeout, http.get(&location))
            .await
            .map_err(|_| {
                PinholeError::NoService("the IGD's description did not come in time".into())
            })?
            .map_err(|e| PinholeError::NoService(format!("no device description: {e}")))?;
        if described.status != 200 {
            return Err(PinholeError::NoService(format!(
                "the IGD answered the description request with HTTP status {}",
                described.status
            )));
        }
        let found = xml::find_service(&described.body, is_service_type)
            .map_err(|e| PinholeError::NoService(format!("the IGD's description is {e}")))?;
        let Some(xml::Service {
            service_type: service,
            control_url: control,
            ..
        }) = found
        else {
            return Err(PinholeError::NoService(
                "the IGD offers no IPv6 firewall control (WANIPv6FirewallControl)".into(),
            ));
        };
        let control = location
            .join(&control)
            .ok()
            .filter(|c| {
                c.scheme() == "http"
                    && c.host() == location.host()
                    && c.port_or_known_default() == location.port_or_known_default()
                    && c.username().is_empty()
                    && c.password().is_none()
            })
            .ok_or_else(|| {
                PinholeError::NoService(
                    "the IGD's IPv6 firewall control URL is not a path on the IGD itself".into(),
                )
            })?;
        Ok(Self {
            control,
            service,
            local,
            http,
            options,
        })
    }

    /// The IGD's address, `[v6]:port` (for logs).
    pub fn address(&self) -> String {
        match (
            self.control.host_str(),
            self.control.port_or_known_default(),
        ) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => "the IGD".into(),
        }
    }

    /// Opens TCP `port` on our address to any remote host and port.
    pub async fn add(&self, port: u16) -> Result<Pinhole, PinholeError> {
        let args = format!(
            "<RemoteHost></RemoteHost><RemotePort>0</RemotePort><InternalClient>{}</InternalClient><InternalPort>{port}</InternalPort><Protocol>6</Protocol><LeaseTime>{}</LeaseTime>",
            self.local,
            self.lease_secs()
        );
        let answer = self.call("AddPinhole", &args).await?;
        let id = xml::text_of(&answer, "UniqueID")
            .ok()
            .flatten()
            .and_then(|id| id.trim().parse::<u16>().ok())
            .ok_or_else(|| {
                PinholeError::Failed("the IGD's AddPinhole answer carries no valid UniqueID".into())
            })?;
        Ok(Pinhole {
            id,
            client: self.local,
            port,
        })
    }

    /// Renews `pinhole` for another lease.
    pub async fn update(&self, pinhole: &Pinhole) -> Result<(), PinholeError> {
        let args = format!(
            "<UniqueID>{}</UniqueID><NewLeaseTime>{}</NewLeaseTime>",
            pinhole.id,
            self.lease_secs()
        );
        self.call("UpdatePinhole", &args).await.map(drop)
    }

    /// Removes `pinhole` (at shutdown).
    pub async fn delete(&self, pinhole: &Pinhole) -> Result<(), PinholeError> {
        let args = format!("<UniqueID>{}</UniqueID>", pinhole.id);
        self.call("DeletePinhole", &args).await.map(drop)
    }

    fn lease_secs(&self) -> u64 {
        self.options.lease.as_secs().clamp(1, MAX_LEASE_SECS)
    }

    /// Sends `action` with `args` (already XML); the answer, when it is the
    /// action's response, or why not.
    async fn call(&self, action: &'static str, args: &str) -> Result<String, PinholeError> {
        let body = format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action} xmlns:u=\"{service}\">{args}</u:{action}></s:Body></s:Envelope>\r\n",
            service = self.service
        );
        let soap_action = format!("{}#{action}", self.service);
        let answer = tokio::time::timeout(
            self.options.call_timeout,
            self.http.soap(&self.control, &soap_action, body),
        )
        .await
        .map_err(|_| PinholeError::Failed(format!("the IGD did not answer {action} in time")))?
        .map_err(|e| PinholeError::Failed(format!("{action}: {e}")))?;
        let unreadable =
            |e: xml::XmlError| PinholeError::Failed(format!("the IGD's answer to {action} is {e}"));
        if let Some(code) = xml::text_of(&answer.body, "errorCode").map_err(unreadable)? {
            let code = code.trim().parse::<u16>().map_err(|_| {
                PinholeError::Failed(format!(
                    "the IGD refused {action} with an unreadable error code"
                ))
            })?;
            return Err(PinholeError::Refused { action, code });
        }
        if answer.status != 200 {
            return Err(PinholeError::Failed(format!(
                "the IGD answered {action} with HTTP status {}",
                answer.status
            )));
        }
        let response = format!("{action}Response");
        if !xml::has_element(&answer.body, &response).map_err(unreadable)? {
            return Err(PinholeError::Failed(format!(
                "the IGD's answer to {action} is not a {response}"
            )));
        }
        Ok(answer.body)
    }
}

/// `urn:schemas-upnp-org:service:WANIPv6FirewallControl:<version>`, and
/// nothing else (the type goes into our requests as it is written).
fn is_service_type(st: &str) -> bool {
    st.strip_prefix(SERVICE)
        .is_some_and(|v| !v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()))
}
