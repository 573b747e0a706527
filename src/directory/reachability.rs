//! Network checks on endpoints: routability (DNS included) and the liveness
//! probe `GET {endpoint}/iicp/health` (PROTOCOL.md §1.3 steps 3-4).
//!
//! Names are resolved once, the whole answer is judged, and the probe then
//! connects to a validated address only (no second lookup to rebind). In
//! public mode every address must be public; in local mode every address
//! must be in the probe's allowed set (loopback, the registrant's own
//! address, the operator's `probe_allow` ranges), so the probe, and the
//! `public_reachable` it reports, says nothing about any other host.

use super::addresses::probe_allowed;
use crate::wire::endpoint::{
    EndpointError, EndpointHost, NonPublic, ParsedEndpoint, check_endpoint_form, check_resolved,
};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Checks that `endpoint` is publicly routable: its form, then every address
/// its name resolves to (within `timeout`). Returns a validated address to
/// connect to.
pub(crate) async fn check_public(
    endpoint: &str,
    timeout: Duration,
) -> Result<SocketAddr, EndpointError> {
    let parsed = check_endpoint_form(endpoint)?;
    let addrs = resolve(&parsed, timeout).await;
    check_resolved(&addrs, false).map_err(|np| match (np, addrs.is_empty()) {
        (_, true) => EndpointError::NonPublic(NonPublic::SpecialPurpose),
        (np, false) => EndpointError::NonPublic(np),
    })?;
    Ok(SocketAddr::new(addrs[0], parsed.port))
}

/// Every address an endpoint's host stands for: itself for an IP, the
/// look-up's answer for a name (empty when it fails or takes longer than
/// `timeout`).
async fn resolve(parsed: &ParsedEndpoint, timeout: Duration) -> Vec<IpAddr> {
    match &parsed.host {
        EndpointHost::Ip(ip) => vec![*ip],
        EndpointHost::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), parsed.port));
            match tokio::time::timeout(timeout, lookup).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => vec![],
            }
        }
    }
}

/// Where the local-mode probe of an endpoint may go.
#[derive(Debug)]
pub(crate) enum LocalTarget {
    /// Every address the host resolved to is allowed: probe this one.
    Pinned(SocketAddr),
    /// The name did not resolve (within the time limit): nothing to probe.
    Unresolved,
    /// An address outside the allowed set: refuse without connecting.
    Outside,
}

/// Resolves a local-mode endpoint once and judges the whole answer against
/// the probe's allowed set (loopback, the registrant's `source`, `allow`).
pub(crate) async fn local_target(
    parsed: &ParsedEndpoint,
    source: IpAddr,
    allow: &[IpNet],
    timeout: Duration,
) -> LocalTarget {
    let addrs = resolve(parsed, timeout).await;
    match addrs.first() {
        None => LocalTarget::Unresolved,
        Some(_) if addrs.iter().any(|ip| !probe_allowed(*ip, source, allow)) => {
            LocalTarget::Outside
        }
        Some(first) => LocalTarget::Pinned(SocketAddr::new(*first, parsed.port)),
    }
}

/// Whether `GET {endpoint path}/iicp/health` answers 2xx within `timeout`.
/// The URL is built from the parsed endpoint (scheme, host, port, path), and
/// the request goes to `pin` whatever DNS says now, never through a proxy,
/// never following a redirect.
pub(crate) async fn health_ok(parsed: &ParsedEndpoint, pin: SocketAddr, timeout: Duration) -> bool {
    let url = parsed.url_for("/iicp/health");
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let EndpointHost::Name(host) = &parsed.host {
        builder = builder.resolve(host, pin);
    }
    let Ok(client) = builder.build() else {
        return false;
    };
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

/// Whether a TCP connection to `addr` opens within `timeout`, and how long it took.
pub(crate) async fn tcp_reachable(addr: SocketAddr, timeout: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Some(start.elapsed()),
        _ => None,
    }
}
