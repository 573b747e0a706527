//! Reachability: which endpoint a node may advertise, found by trying the
//! tiers of PROTOCOL.md §7.3 in order on every start.
//!
//! - tier 0: an operator endpoint (`IICP_PUBLIC_ENDPOINT`, trusted as given,
//!   no probing), or a public IPv4 address on an interface;
//! - tier 1a: a UPnP IGD on the LAN maps the serve port to the router's
//!   external address, if that is public (`upnp.rs`, feature `nat`); skipped
//!   inside a container, where it would reach the container host's NAT
//!   (`container.rs`);
//! - tier 1b: a stable global IPv6 address, and the router's IGD opened a
//!   pinhole to it (`WANIPv6FirewallControl`, `pinhole.rs`, feature `nat`;
//!   renewed and removed like a mapping; skipped inside a container);
//! - tier 1c: a stable global IPv6 address the router would not open (no
//!   IGD with the service, or a refusal such as UPnP error 606): advertised,
//!   with the guidance that the router's IPv6 firewall must let the port in;
//! - tier 3: carrier-grade NAT (the IGD's external address is not public):
//!   a relay is needed (reported; the relay comes with its own issue);
//! - tier 4: nothing worked: serve locally, and say exactly what to set or
//!   forward.
//!
//! Rule: an endpoint is advertised only when a rung verified it (the IGD
//! accepted the mapping and named a public address, or the address is on
//! our own interface), or the operator gave it. [`Reachability::rungs`]
//! keeps every rung as it was tried, for `iicp-node doctor` and the log.

mod addresses;
mod advertised;
mod config;
mod container;
#[cfg(feature = "nat")]
mod keeper;
mod options;
#[cfg(feature = "nat")]
mod pinhole;
#[cfg(feature = "nat")]
mod upnp;
#[cfg(feature = "nat")]
mod xml;

pub use addresses::{HostAddress, host_addresses, is_global_v6, is_public, is_public_v4};
pub use advertised::Advertised;
pub use config::ReachabilityConfig;
pub use container::ContainerMode;
#[cfg(feature = "nat")]
pub use keeper::{Keeping, keep};
pub use options::UpnpOptions;
#[cfg(feature = "nat")]
pub use pinhole::{FirewallControl, Pinhole, PinholeError, upnp_error_meaning};
#[cfg(feature = "nat")]
pub use upnp::{Igd, MAX_SOAP_BYTES, Mapping, UpnpError};

/// What the router holds for us, to renew and remove: a UPnP port mapping
/// (tier 1a) or an IPv6 pinhole (tier 1b).
#[cfg(feature = "nat")]
#[derive(Debug, Clone)]
pub enum Lease {
    /// Tier 1a: a port mapping on the IGD.
    Mapping(Igd, Mapping),
    /// Tier 1b: a pinhole in the IGD's IPv6 firewall.
    Pinhole(FirewallControl, Pinhole),
}
/// What the router holds for us (uninhabited without the `nat` feature:
/// nothing can be asked of it then).
#[cfg(not(feature = "nat"))]
#[derive(Debug, Clone)]
pub enum Lease {}

impl Lease {
    /// What it is, for messages: `mapping` or `pinhole`.
    pub fn kind(&self) -> &'static str {
        #[cfg(feature = "nat")]
        match self {
            Self::Mapping(..) => "mapping",
            Self::Pinhole(..) => "pinhole",
        }
        #[cfg(not(feature = "nat"))]
        match *self {}
    }
}

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A reachability tier (PROTOCOL.md §7.3; the seed's 1a/1b/1c split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Direct: an operator endpoint or a public address on an interface.
    Direct,
    /// 1a: a UPnP port mapping on the home router.
    Upnp,
    /// 1b: a global IPv6 address with a pinhole opened on the router.
    Ipv6Pinhole,
    /// 1c: a global IPv6 address; the operator must open the firewall.
    Ipv6Guidance,
    /// 3: behind carrier-grade NAT: only a relay reaches this node.
    Relay,
    /// 4: not reachable from outside; served locally.
    Local,
}

impl Tier {
    /// How the tier is written in logs and by `doctor`: `0`, `1a`, …
    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "0",
            Self::Upnp => "1a",
            Self::Ipv6Pinhole => "1b",
            Self::Ipv6Guidance => "1c",
            Self::Relay => "3",
            Self::Local => "4",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One rung of the ladder as it was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// What was tried, e.g. `public address on an interface`.
    pub name: &'static str,
    /// What came of it.
    pub outcome: String,
    /// Whether it gave the endpoint.
    pub chosen: bool,
}

/// The outcome of the ladder.
#[derive(Debug, Clone)]
pub struct Reachability {
    /// The tier reached.
    pub tier: Tier,
    /// The endpoint to advertise; `None` when nothing was verified.
    pub endpoint: Option<String>,
    /// One line: the tier and why.
    pub reason: String,
    /// What the operator can do, when not directly reachable.
    pub guidance: Option<String>,
    /// Every rung tried, in order.
    pub rungs: Vec<Rung>,
    /// The UPnP mapping or IPv6 pinhole made, to renew and remove.
    pub mapping: Option<Lease>,
}

/// What the ladder needs to know.
#[derive(Debug, Clone)]
pub struct NatOptions {
    /// The serve port (mapped as it is).
    pub port: u16,
    /// The address the node is bound to (`::`/`0.0.0.0` for all).
    pub bind: IpAddr,
    /// `IICP_PUBLIC_ENDPOINT`: trusted as given.
    pub public_endpoint: Option<String>,
    /// `IICP_CONTAINER`.
    pub container: ContainerMode,
    /// The UPnP rung's timeouts.
    pub upnp: UpnpOptions,
}

pub(crate) fn url_of(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    }
}

/// Whether a node bound to `bind` listens on `ip`.
fn listens_on(bind: IpAddr, ip: IpAddr) -> bool {
    bind.is_unspecified() || bind == ip
}

/// Runs the ladder on this host.
pub async fn detect(options: &NatOptions) -> Reachability {
    detect_with(options, &host_addresses()).await
}

/// Runs the ladder with `addresses` as the host's interface addresses.
pub async fn detect_with(options: &NatOptions, addresses: &[HostAddress]) -> Reachability {
    let mut rungs = Vec::new();
    let port = options.port;
    let done =
        |tier, endpoint: Option<String>, reason: String, guidance, rungs, mapping| Reachability {
            tier,
            endpoint,
            reason,
            guidance,
            rungs,
            mapping,
        };

    // Tier 0: the operator's word.
    if let Some(endpoint) = options.public_endpoint.as_deref().filter(|e| !e.is_empty()) {
        rungs.push(Rung {
            name: "IICP_PUBLIC_ENDPOINT",
            outcome: format!("{endpoint} (trusted as given; nothing probed)"),
            chosen: true,
        });
        return done(
            Tier::Direct,
            Some(endpoint.to_owned()),
            format!("the operator's endpoint {endpoint}"),
            None,
            rungs,
            None,
        );
    }
    rungs.push(Rung {
        name: "IICP_PUBLIC_ENDPOINT",
        outcome: "not set".into(),
        chosen: false,
    });

    if options.bind.is_loopback() {
        rungs.push(Rung {
            name: "bind address",
            outcome: format!(
                "{} is loopback: nothing outside this machine can connect",
                options.bind
            ),
            chosen: false,
        });
        return done(
            Tier::Local,
            None,
            format!("bound to {} (loopback)", options.bind),
            Some(
                "listen on all interfaces (--host :: or --host 0.0.0.0) to be reachable from elsewhere, or set IICP_PUBLIC_ENDPOINT"
                    .into(),
            ),
            rungs,
            None,
        );
    }

    // Tier 0: a public IPv4 address on one of our interfaces.
    let public_v4 = addresses.iter().find(|a| match a.ip {
        IpAddr::V4(v4) => is_public_v4(v4) && listens_on(options.bind, a.ip),
        IpAddr::V6(_) => false,
    });
    if let Some(a) = public_v4 {
        rungs.push(Rung {
            name: "public address on an interface",
            outcome: format!("{} on {}", a.ip, a.interface),
            chosen: true,
        });
        return done(
            Tier::Direct,
            Some(url_of(a.ip, port)),
            format!("public address {} on {}", a.ip, a.interface),
            None,
            rungs,
            None,
        );
    }
    rungs.push(Rung {
        name: "public address on an interface",
        outcome: "none".into(),
        chosen: false,
    });

    // Tier 1a: UPnP, unless containerised.
    let lan_ips: Vec<Ipv4Addr> = addresses
        .iter()
        .filter_map(|a| match a.ip {
            IpAddr::V4(v4) if addresses::is_lan_v4(v4) && listens_on(options.bind, a.ip) => {
                Some(v4)
            }
            _ => None,
        })
        .collect();
    let mut behind_cgnat = None;
    let container = options.container.detect();
    if let Some(why) = container {
        rungs.push(Rung {
            name: "UPnP",
            outcome: format!(
                "skipped: in a container ({why}); a mapping would be made on the container host's NAT, not the router"
            ),
            chosen: false,
        });
    } else {
        match upnp_rung(&lan_ips, options).await {
            UpnpOutcome::Mapped(reason, endpoint, lease, rung) => {
                rungs.push(rung);
                return done(
                    Tier::Upnp,
                    Some(endpoint),
                    reason,
                    None,
                    rungs,
                    Some(*lease),
                );
            }
            UpnpOutcome::Failed(rung, cgnat) => {
                behind_cgnat = cgnat;
                rungs.push(rung);
            }
        }
    }

    // Tiers 1b/1c: a stable global IPv6 address, with a pinhole if the
    // router opens one.
    let global_v6 = addresses.iter().find_map(|a| match a.ip {
        IpAddr::V6(v6) if a.stable && is_global_v6(v6) && listens_on(options.bind, a.ip) => {
            Some((a, v6))
        }
        _ => None,
    });
    if let Some((a, v6)) = global_v6 {
        let pinhole = match container {
            Some(why) => Err(format!(
                "skipped: in a container ({why}); the router's firewall is not ours to ask"
            )),
            None => pinhole_rung(v6, &a.interface, options).await,
        };
        return ipv6_outcome(a, v6, port, pinhole, rungs);
    }
    rungs.push(Rung {
        name: "stable global IPv6 address",
        outcome: "none".into(),
        chosen: false,
    });

    let lan = lan_ips.first().map_or_else(
        || "<this host's LAN address>".to_owned(),
        Ipv4Addr::to_string,
    );
    let forward = format!(
        "forward TCP port {port} on your router to {lan}:{port} and set IICP_PUBLIC_ENDPOINT=http://<your public address>:{port}"
    );
    if let Some(why) = container {
        return done(
            Tier::Local,
            None,
            format!("in a container ({why}) with no public address"),
            Some(format!(
                "publish the port (docker run -p {port}:{port}) and set IICP_PUBLIC_ENDPOINT=http://<host address>:{port}; if this is not a container, set IICP_CONTAINER=no"
            )),
            rungs,
            None,
        );
    }
    if let Some(why) = behind_cgnat {
        return done(
            Tier::Relay,
            None,
            format!("behind carrier-grade NAT: {why}"),
            Some(format!(
                "only a relay can reach this node (IICP_RELAY_WORKER_ENDPOINT=host:9485); or {forward} if your provider gives you a public address"
            )),
            rungs,
            None,
        );
    }
    done(
        Tier::Local,
        None,
        "no public address, no UPnP gateway, no global IPv6".into(),
        Some(forward),
        rungs,
        None,
    )
}

/// Tier 1b when the pinhole was opened (the lease to keep), else 1c with
/// the guidance to open the port by hand (`pinhole` says why not).
fn ipv6_outcome(
    a: &HostAddress,
    v6: Ipv6Addr,
    port: u16,
    pinhole: Result<(String, Lease), String>,
    mut rungs: Vec<Rung>,
) -> Reachability {
    let endpoint = Some(url_of(IpAddr::V6(v6), port));
    let opened = pinhole.is_ok();
    rungs.push(Rung {
        name: "stable global IPv6 address",
        outcome: format!("{v6} on {}", a.interface),
        chosen: !opened,
    });
    match pinhole {
        Ok((what, lease)) => {
            rungs.push(Rung {
                name: "IPv6 pinhole",
                outcome: format!("opened {what}"),
                chosen: true,
            });
            Reachability {
                tier: Tier::Ipv6Pinhole,
                endpoint,
                reason: format!("IPv6 pinhole {what} (reached over IPv6 only)"),
                guidance: None,
                rungs,
                mapping: Some(lease),
            }
        }
        Err(why) => {
            rungs.push(Rung {
                name: "IPv6 pinhole",
                outcome: why.clone(),
                chosen: false,
            });
            Reachability {
                tier: Tier::Ipv6Guidance,
                endpoint,
                reason: format!(
                    "global IPv6 address {v6} on {}; no pinhole: {why}",
                    a.interface
                ),
                guidance: Some(format!(
                    "allow inbound TCP port {port} to {v6} in your router's IPv6 firewall (the router opened no pinhole); IPv4-only consumers cannot reach this node"
                )),
                rungs,
                mapping: None,
            }
        }
    }
}

/// Opens a pinhole for `port` to `v6` on the IGD that answers on
/// `interface`: what was opened (for the log) and the lease, or why not.
#[cfg(feature = "nat")]
async fn pinhole_rung(
    v6: Ipv6Addr,
    interface: &str,
    options: &NatOptions,
) -> Result<(String, Lease), String> {
    let control = FirewallControl::discover(v6, interface, options.upnp).await;
    open_pinhole(control, options.port).await
}

#[cfg(not(feature = "nat"))]
async fn pinhole_rung(
    _v6: Ipv6Addr,
    _interface: &str,
    _options: &NatOptions,
) -> Result<(String, Lease), String> {
    Err("not built in (the `nat` Cargo feature is off)".into())
}

/// `AddPinhole` for `port` on `control`, when one was found.
#[cfg(feature = "nat")]
async fn open_pinhole(
    control: Result<FirewallControl, PinholeError>,
    port: u16,
) -> Result<(String, Lease), String> {
    let control = control.map_err(|e| e.to_string())?;
    match control.add(port).await {
        Ok(pinhole) => Ok((
            format!(
                "[{}]:{} (id {}) on gateway {}",
                pinhole.client,
                pinhole.port,
                pinhole.id,
                control.address()
            ),
            Lease::Pinhole(control, pinhole),
        )),
        Err(e) => Err(format!("gateway {}: {e}", control.address())),
    }
}

/// Removes what `lease` holds (mapping or pinhole) from the router.
#[cfg(feature = "nat")]
pub async fn release(lease: &Lease) -> Result<(), String> {
    match lease {
        Lease::Mapping(igd, mapping) => igd.unmap(mapping).await,
        Lease::Pinhole(control, pinhole) => {
            control.delete(pinhole).await.map_err(|e| e.to_string())
        }
    }
}

/// Removes what `lease` holds from the router.
#[cfg(not(feature = "nat"))]
pub async fn release(lease: &Lease) -> Result<(), String> {
    match *lease {}
}

/// What the UPnP rung gave.
enum UpnpOutcome {
    /// Reason, endpoint, lease and the rung.
    #[cfg_attr(not(feature = "nat"), allow(dead_code))]
    Mapped(String, String, Box<Lease>, Rung),
    /// The rung, and the reason when the gateway's address was not public.
    Failed(Rung, Option<String>),
}

#[cfg(feature = "nat")]
async fn upnp_rung(lan_ips: &[Ipv4Addr], options: &NatOptions) -> UpnpOutcome {
    let igd = match Igd::search(lan_ips, options.upnp).await {
        Ok(igd) => igd,
        Err(why) => {
            return UpnpOutcome::Failed(
                Rung {
                    name: "UPnP",
                    outcome: why,
                    chosen: false,
                },
                None,
            );
        }
    };
    match igd.map(options.port).await {
        Ok(mapping) => {
            let endpoint = url_of(mapping.external_ip, mapping.external_port);
            let what = format!(
                "{}:{} → {} on gateway {}",
                mapping.external_ip,
                mapping.external_port,
                mapping.internal,
                igd.address()
            );
            UpnpOutcome::Mapped(
                format!("UPnP mapping {what}"),
                endpoint,
                Box::new(Lease::Mapping(igd, mapping)),
                Rung {
                    name: "UPnP",
                    outcome: format!("mapped {what}"),
                    chosen: true,
                },
            )
        }
        Err(why) => {
            let cgnat = matches!(why, UpnpError::BehindNat(_)).then(|| why.to_string());
            UpnpOutcome::Failed(
                Rung {
                    name: "UPnP",
                    outcome: format!("gateway {}: {why}", igd.address()),
                    chosen: false,
                },
                cgnat,
            )
        }
    }
}

#[cfg(not(feature = "nat"))]
async fn upnp_rung(_lan_ips: &[Ipv4Addr], _options: &NatOptions) -> UpnpOutcome {
    UpnpOutcome::Failed(
        Rung {
            name: "UPnP",
            outcome: "not built in (the `nat` Cargo feature is off)".into(),
            chosen: false,
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(bind: &str, public_endpoint: Option<&str>) -> NatOptions {
        NatOptions {
            port: 9484,
            bind: bind.parse().unwrap(),
            public_endpoint: public_endpoint.map(str::to_owned),
            // No UPnP search from a unit test: the container rung skips it.
            container: ContainerMode::Yes,
            upnp: UpnpOptions::default(),
        }
    }

    fn addr(ip: &str, stable: bool) -> HostAddress {
        HostAddress {
            interface: "eth0".into(),
            ip: ip.parse().unwrap(),
            stable,
        }
    }

    #[tokio::test]
    async fn each_rung_decides_in_order_and_only_verified_endpoints_are_advertised() {
        struct Case {
            bind: &'static str,
            operator: Option<&'static str>,
            addresses: Vec<HostAddress>,
            tier: Tier,
            endpoint: Option<&'static str>,
            guidance_names: Option<&'static str>,
        }
        let cases = [
            // The operator's word wins over everything, unprobed.
            Case {
                bind: "::",
                operator: Some("http://node.example.net:9484"),
                addresses: vec![addr("8.8.4.4", true)],
                tier: Tier::Direct,
                endpoint: Some("http://node.example.net:9484"),
                guidance_names: None,
            },
            // Bound to loopback: nothing outside can connect.
            Case {
                bind: "127.0.0.1",
                operator: None,
                addresses: vec![addr("8.8.4.4", true)],
                tier: Tier::Local,
                endpoint: None,
                guidance_names: Some("--host"),
            },
            // A public IPv4 on an interface the node listens on.
            Case {
                bind: "0.0.0.0",
                operator: None,
                addresses: vec![addr("192.168.1.5", true), addr("8.8.4.4", true)],
                tier: Tier::Direct,
                endpoint: Some("http://8.8.4.4:9484"),
                guidance_names: None,
            },
            // ... but not one it does not listen on.
            Case {
                bind: "192.168.1.5",
                operator: None,
                addresses: vec![addr("192.168.1.5", true), addr("8.8.4.4", true)],
                tier: Tier::Local,
                endpoint: None,
                guidance_names: Some("IICP_PUBLIC_ENDPOINT"),
            },
            // A stable global IPv6 in a container: no pinhole is asked, 1c.
            Case {
                bind: "::",
                operator: None,
                addresses: vec![addr("192.168.1.5", true), addr("2a01:4f8::5", true)],
                tier: Tier::Ipv6Guidance,
                endpoint: Some("http://[2a01:4f8::5]:9484"),
                guidance_names: Some("IPv6 firewall"),
            },
            // A temporary (privacy) IPv6 address is never advertised.
            Case {
                bind: "::",
                operator: None,
                addresses: vec![addr("2a01:4f8::6", false)],
                tier: Tier::Local,
                endpoint: None,
                guidance_names: Some("IICP_PUBLIC_ENDPOINT"),
            },
            // CGNAT and documentation addresses are not public.
            Case {
                bind: "::",
                operator: None,
                addresses: vec![addr("100.64.3.4", true), addr("192.0.2.2", true)],
                tier: Tier::Local,
                endpoint: None,
                guidance_names: Some("IICP_PUBLIC_ENDPOINT"),
            },
        ];
        for (n, c) in cases.iter().enumerate() {
            let found = detect_with(&options(c.bind, c.operator), &c.addresses).await;
            assert_eq!(found.tier, c.tier, "case {n}: {found:?}");
            assert_eq!(found.endpoint.as_deref(), c.endpoint, "case {n}: {found:?}");
            match c.guidance_names {
                Some(text) => assert!(
                    found.guidance.as_deref().is_some_and(|g| g.contains(text)),
                    "case {n}: {found:?}"
                ),
                None => assert!(found.guidance.is_none(), "case {n}: {found:?}"),
            }
            assert!(found.mapping.is_none());
            assert_eq!(
                found.rungs.iter().filter(|r| r.chosen).count(),
                usize::from(found.endpoint.is_some()),
                "case {n}: one rung chose, or none: {:?}",
                found.rungs
            );
        }
    }
}
