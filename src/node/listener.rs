//! Binding the node's port: 9484 by default, and the next free port when it
//! is taken (so several nodes share a host without hand-picked ports),
//! unless the operator fixed the endpoint.

use crate::server::listen;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::TcpListener;

/// Ports tried after the first before giving up.
const MAX_INCREMENT: u16 = 100;

/// Binds `host:port`; with `auto_increment`, tries the following ports while
/// the address is in use. `::` falls back to `0.0.0.0` where IPv6 is off.
pub(crate) async fn bind(host: &str, port: u16, auto_increment: bool) -> io::Result<TcpListener> {
    let ip: IpAddr = host.trim_matches(['[', ']']).parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("host `{host}` is not an IP address"),
        )
    })?;
    let tries = if auto_increment && port != 0 {
        MAX_INCREMENT
    } else {
        0
    };
    let mut last_err = None;
    for offset in 0..=tries {
        let Some(p) = port.checked_add(offset) else {
            break;
        };
        match bind_one(ip, p).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port")))
}

async fn bind_one(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    match listen::bind(SocketAddr::new(ip, port)) {
        Err(e)
            if ip.is_unspecified()
                && ip.is_ipv6()
                && e.kind() == io::ErrorKind::AddrNotAvailable =>
        {
            listen::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
        }
        other => other,
    }
}

/// The endpoint to advertise for a bound address when none was configured:
/// loopback for wildcard binds (reachable from this machine only).
pub(crate) fn default_endpoint(local: SocketAddr) -> String {
    match local.ip() {
        ip if ip.is_unspecified() => format!("http://127.0.0.1:{}", local.port()),
        IpAddr::V6(v6) => format!("http://[{v6}]:{}", local.port()),
        ip => format!("http://{ip}:{}", local.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_moves_to_the_next() {
        let first = bind("127.0.0.1", 0, true).await.unwrap();
        let port = first.local_addr().unwrap().port();
        // Hold `port`; the next bind on it lands on a higher port.
        let second = bind("127.0.0.1", port, true).await.unwrap();
        assert!(second.local_addr().unwrap().port() > port);
        let err = bind("127.0.0.1", port, false).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(
            bind("localhost", 0, true).await.is_err(),
            "host must be an address"
        );
    }

    #[test]
    fn default_endpoints() {
        assert_eq!(
            default_endpoint("[::]:9484".parse().unwrap()),
            "http://127.0.0.1:9484"
        );
        assert_eq!(
            default_endpoint("10.0.0.2:9485".parse().unwrap()),
            "http://10.0.0.2:9485"
        );
    }
}
