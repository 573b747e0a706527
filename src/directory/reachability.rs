//! Network checks on endpoints: routability (DNS included) and the liveness
//! probe `GET {endpoint}/iicp/health` (PROTOCOL.md §1.3 steps 3-4).
//!
//! Names are resolved once, the whole answer is judged, and the probe then
//! connects to a validated address only (no second lookup to rebind).

use crate::wire::endpoint::{
    EndpointError, EndpointHost, NonPublic, check_endpoint_form, check_resolved,
};
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
    let addrs: Vec<IpAddr> = match &parsed.host {
        EndpointHost::Ip(ip) => vec![*ip],
        EndpointHost::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), parsed.port));
            match tokio::time::timeout(timeout, lookup).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => vec![],
            }
        }
    };
    check_resolved(&addrs, false).map_err(|np| match (np, addrs.is_empty()) {
        (_, true) => EndpointError::NonPublic(NonPublic::SpecialPurpose),
        (np, false) => EndpointError::NonPublic(np),
    })?;
    Ok(SocketAddr::new(addrs[0], parsed.port))
}

/// Whether `GET {endpoint}/iicp/health` answers 2xx within `timeout`. When
/// `pin` is given, the request goes to that address whatever DNS says now.
pub(crate) async fn health_ok(endpoint: &str, pin: Option<SocketAddr>, timeout: Duration) -> bool {
    let url = format!("{}/iicp/health", endpoint.trim_end_matches('/'));
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let (Some(addr), Ok(parsed)) = (pin, reqwest::Url::parse(endpoint)) {
        if let Some(host) = parsed.host_str() {
            builder = builder.resolve(host, addr);
        }
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
