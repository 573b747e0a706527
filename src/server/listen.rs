//! Binding a server's listening socket with an accept queue deep enough for
//! bursts of connections.
//!
//! `TcpListener::bind` asks the kernel for a queue of 128 connections that
//! completed their handshake but were not accepted yet. A burst larger than
//! that (a reconnect storm of attacking sockets, many clients at once) while
//! the accept loop is busy overflows it, and the kernel drops the SYNs past
//! it: a well-behaved client's connection then waits for its SYN to be sent
//! again, 1 s later, then 3 s. [`bind`] asks for [`ACCEPT_BACKLOG`] instead
//! (the kernel still caps it at `net.core.somaxconn`, 4096 on current
//! Linux). It costs nothing until used: queued connections are the
//! kernel's, and the accept loop's cap and eviction policy apply to each
//! as it is accepted.

use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may hold for the accept loop.
pub(crate) const ACCEPT_BACKLOG: u32 = 1024;

/// Binds `addr` (with `SO_REUSEADDR` on Unix, as `TcpListener::bind` does)
/// and listens with [`ACCEPT_BACKLOG`]. Must be called in a Tokio runtime.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_listener_accepts_and_a_taken_port_is_addr_in_use() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let taken = bind(addr).unwrap_err();
        assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
    }
}
