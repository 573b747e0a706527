//! The relay's accept port: a native listener for WORKERS (not consumers).
//!
//! Each connection gets [`NativeLimits::init_timeout`](crate::node::NativeLimits)
//! to say INIT and RELAY_BIND; at most [`RelayLimits::max_handshakes`]
//! connections may be at that stage at once, and when one more arrives the
//! oldest is dropped, so a crowd of idle connections cannot keep a worker
//! out (nor hold more than that many file descriptors). A bound connection
//! counts against [`RelayLimits::max_sessions`] instead; the listener thus
//! holds at most `max_handshakes + max_sessions` connections.

use super::Relay;
use super::link;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause after an accept error (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(250);

/// Connections that have not bound yet, oldest first; each can be dropped.
#[derive(Default)]
pub(crate) struct Handshakes {
    inner: Mutex<(u64, BTreeMap<u64, CancellationToken>)>,
}

impl Handshakes {
    /// Registers a new connection, dropping the oldest when `max` are
    /// already waiting. Returns its id and the token that drops it.
    fn enter(&self, max: usize) -> (u64, CancellationToken) {
        let mut inner = crate::sync::lock(&self.inner);
        while inner.1.len() >= max {
            if let Some((_, oldest)) = inner.1.pop_first() {
                oldest.cancel();
            }
        }
        inner.0 += 1;
        let id = inner.0;
        let token = CancellationToken::new();
        inner.1.insert(id, token.clone());
        (id, token)
    }

    /// The connection bound or ended.
    pub(crate) fn leave(&self, id: u64) {
        crate::sync::lock(&self.inner).1.remove(&id);
    }
}

/// Accepts worker connections until `stop` is cancelled, then waits for
/// every connection to close (each sends CLOSE graceful).
pub(crate) async fn run(relay: Arc<Relay>, listener: TcpListener, stop: CancellationToken) {
    let handshakes = Arc::new(Handshakes::default());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (id, drop_it) = handshakes.enter(relay.limits.max_handshakes);
                    let relay = relay.clone();
                    let handshakes = handshakes.clone();
                    let stop = stop.clone();
                    connections.spawn(async move {
                        let conn = link::Conn { relay: &relay, peer: canonical(peer), stop };
                        conn.serve(stream, drop_it, || handshakes.leave(id)).await;
                        handshakes.leave(id);
                    });
                }
                Err(e) if is_peer_error(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "relay: accepting a connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                        () = stop.cancelled() => {}
                    }
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_handshake_is_dropped_first() {
        let h = Handshakes::default();
        let (a, ta) = h.enter(2);
        let (_b, tb) = h.enter(2);
        h.leave(a);
        let (_c, tc) = h.enter(2);
        assert!(!ta.is_cancelled() && !tb.is_cancelled());
        let (_d, _) = h.enter(2);
        assert!(tb.is_cancelled(), "the oldest still waiting goes");
        assert!(!tc.is_cancelled());
    }
}
