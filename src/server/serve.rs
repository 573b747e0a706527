//! The accept loop of the node and the directory: one [`Server`] owns its
//! listener, hands each connection to [`connection::serve`] in a task it
//! tracks, caps how many are open ([`Slots`]), and on shutdown stops
//! accepting and waits for the open ones to finish.
//!
//! At the cap the open connection that has waited longest on its client is
//! evicted (closed at once) to make room (the policy and why:
//! [`super::slots`]). When every open connection is busy the new one is
//! shed at once: a minimal JSON 503 is written without waiting (it fits the
//! empty send buffer) and the socket is closed, so no file descriptor
//! outlives the accept call.

use super::connection::{self, ConnectionContext, DirectRoute, NativeHandler};
use super::limits::ServerLimits;
use super::slots::{Admission, Slots};
use crate::wire::ErrorBody;
use axum::Router;
use std::io;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause after an accept error other than a peer's reset (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(250);
/// Shed and evicted connections are reported at most this often.
const SHED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// An HTTP/1.1 server for an axum [`Router`] with [`ServerLimits`].
pub(crate) struct Server {
    listener: TcpListener,
    context: ConnectionContext,
    slots: Slots,
    name: &'static str,
}

impl Server {
    /// A server on `listener`; `name` ("node", "directory") labels its logs.
    /// With `native`, connections that open with `IICP` go to it.
    pub(crate) fn new(
        listener: TcpListener,
        app: Router,
        limits: ServerLimits,
        native: Option<Arc<dyn NativeHandler>>,
        name: &'static str,
    ) -> Self {
        Self {
            listener,
            context: ConnectionContext::new(app, limits, native),
            slots: Slots::new(limits.max_connections),
            name,
        }
    }

    /// Answers `route`'s requests ahead of the router
    /// ([`DirectRoute`]).
    pub(crate) fn with_direct_route(mut self, route: Arc<dyn DirectRoute>) -> Self {
        self.context = self.context.with_direct_route(route);
        self
    }

    /// Accepts until `shutdown` is cancelled, then closes the listener, asks
    /// every open connection to finish its current request and close, and
    /// returns once all have. Dropping the returned future (e.g. aborting
    /// its task) aborts the open connections too.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let Self {
            listener,
            context,
            slots,
            name,
        } = self;
        let context = Arc::new(context);
        let mut connections = JoinSet::new();
        let mut shed = ShedLog::default();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    report_panic(done, name);
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let slot = match admit(&slots, &mut connections, name).await {
                            Admission::Admitted(slot) => slot,
                            Admission::Evicted(slot) => {
                                shed.record_eviction(name);
                                slot
                            }
                            Admission::Closing | Admission::Shed => {
                                shed_connection(stream);
                                shed.record(name);
                                continue;
                            }
                        };
                        // Answers are small and often several in flight on one
                        // connection (native calls): without this, Nagle's
                        // algorithm holds each behind the peer's delayed ACK.
                        let _ = stream.set_nodelay(true);
                        let context = context.clone();
                        let stop = shutdown.clone();
                        let activity = slot.activity().clone();
                        // An eviction aborts this task: dropping the
                        // connection closes its socket, dropping the slot
                        // gives it back.
                        let task = connections.spawn(async move {
                            let activity = slot.activity().clone();
                            connection::serve(stream, peer, &context, stop, activity).await;
                            drop(slot);
                        });
                        activity.set_task(task);
                    }
                    Err(e) if is_peer_error(&e) => {}
                    Err(e) => {
                        tracing::error!(server = name, error = %e, "accepting a connection failed");
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                            () = shutdown.cancelled() => {}
                        }
                    }
                },
            }
        }
        drop(listener);
        tracing::debug!(
            server = name,
            open = connections.len(),
            "stopped accepting; waiting for open connections"
        );
        while connections.join_next().await.is_some() {}
    }
}

/// Most times the accept loop yields for evicted connections to close
/// before it sheds a new one (each yield lets the worker run a batch of
/// other tasks; a few are enough unless the runtime is stuck).
const MAX_CLOSING_YIELDS: usize = 256;

/// The admission of a connection accepted now. At twice the cap the
/// sockets over the cap are evicted connections whose tasks have not run
/// since their eviction: on one worker thread, or a busy machine, the
/// accept loop can outrun them, and would shed a client for a limit that
/// only their closing upholds. So while evictions are still closing, the
/// loop yields to let them run and close (the kernel keeps new connections
/// in the listen backlog meanwhile), reaps them, and asks again; it sheds
/// only when none is closing or it has waited [`MAX_CLOSING_YIELDS`] times.
async fn admit(slots: &Slots, connections: &mut JoinSet<()>, name: &str) -> Admission {
    for _ in 0..MAX_CLOSING_YIELDS {
        match slots.admit() {
            Admission::Closing => {
                tokio::task::yield_now().await;
                while let Some(done) = connections.try_join_next() {
                    report_panic(done, name);
                }
            }
            admission => return admission,
        }
    }
    slots.admit()
}

/// Logs a connection task that panicked.
fn report_panic(done: Result<(), tokio::task::JoinError>, name: &str) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(server = name, "a connection task panicked");
        }
    }
}

/// A connection reset or aborted by its peer before it was accepted.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// The answer of a shed connection: 503 `IICP-E005`, JSON, `Connection: close`.
static BUSY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = serde_json::to_string(&ErrorBody::new(
        "IICP-E005",
        "server at its connection limit; retry later",
    ))
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Answers 503 without waiting and closes: whatever the client already sent
/// is read once without waiting (so the close is less likely to become a
/// reset that discards the answer), never more.
fn shed_connection(stream: TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(&BUSY);
}

/// Counts shed and evicted connections and logs each kind at most every
/// [`SHED_LOG_INTERVAL`].
#[derive(Default)]
struct ShedLog {
    shed: Counted,
    evicted: Counted,
}

/// Events since the last log line, and when that was.
#[derive(Default)]
struct Counted {
    since_last: u64,
    last: Option<Instant>,
}

impl Counted {
    /// Counts one; the count to log when it is time to log.
    fn due(&mut self) -> Option<u64> {
        self.since_last += 1;
        if self.last.is_some_and(|t| t.elapsed() < SHED_LOG_INTERVAL) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since_last))
    }
}

impl ShedLog {
    fn record(&mut self, name: &str) {
        if let Some(shed) = self.shed.due() {
            tracing::warn!(
                server = name,
                shed,
                "at the connection limit with every connection busy: closing new connections with 503"
            );
        }
    }

    fn record_eviction(&mut self, name: &str) {
        if let Some(evicted) = self.evicted.due() {
            tracing::warn!(
                server = name,
                evicted,
                "at the connection limit: closing the connections that waited longest on their clients"
            );
        }
    }
}
