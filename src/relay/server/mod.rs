//! The relay server (PROTOCOL.md §7.2), run by a node with
//! `NodeConfig::relay_capable`:
//!
//! - `accept.rs` / `link.rs`: the native listener for workers on
//!   `relay_accept_port` (INIT/ACK, RELAY_BIND → RELAY_ACK, CALL ↔ RESPONSE,
//!   PING/PONG);
//! - `forward.rs`: the consumers' HTTP routes on the node's own port
//!   (`/v1/relay-for/{worker_id}/v1/task`, its `/iicp/health`, `/v1/relay`);
//! - `poll.rs`: the HTTP long-poll workers (`/v1/relay/bind|pull|result|unbind`);
//! - `sessions.rs`: the one registry both kinds of worker share, with the
//!   relay rules (`admission.rs`) and bind tickets (`tickets.rs`);
//! - `reply.rs`: a worker's RESPONSE as the consumer's answer.
//!
//! [`start`] binds the accept port and returns the routes to mount and the
//! handle the node's lifecycle stops: on stop the listener closes, every
//! TCP worker gets CLOSE `graceful` and every session ends.

mod accept;
mod admission;
mod forward;
mod link;
mod poll;
mod reply;
mod sessions;
mod tickets;

use crate::node::NativeLimits;
use crate::relay::RelayLimits;
use crate::token::DirectoryPublicKey;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often dead sessions (silent TCP workers, long-poll workers that
/// stopped pulling) are dropped and their waiting calls failed.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What a relay needs from its node.
pub(crate) struct RelayParams {
    /// Address to bind the accept port on (the node's `host`).
    pub host: String,
    pub accept_port: u16,
    /// The node's HTTP port, told to workers in RELAY_ACK key 4.
    pub http_port: u16,
    pub limits: RelayLimits,
    /// INIT deadline and frame size of the accept port.
    pub native: NativeLimits,
    pub require_ticket: bool,
    pub ticket_key: Option<DirectoryPublicKey>,
    pub directory_url: String,
    /// The node's id (ACK key 2, a ticket's audience).
    pub identity: watch::Receiver<Option<String>>,
    /// A task's deadline when it sets no `constraints.timeout_ms`.
    pub default_timeout: Duration,
    /// Counts tasks forwarded to a bound worker.
    pub forwarded: prometheus_client::metrics::counter::Counter,
}

/// The relay's shared state.
pub(crate) struct Relay {
    pub registry: sessions::Registry,
    pub tickets: tickets::Tickets,
    pub limits: RelayLimits,
    pub native: NativeLimits,
    pub http_port: u16,
    pub identity: watch::Receiver<Option<String>>,
    pub default_timeout: Duration,
    /// Tasks forwarded to a bound worker (the node's metrics).
    pub forwarded: prometheus_client::metrics::counter::Counter,
}

/// A started relay: its routes (to mount on the node's router) and its
/// accept port's task.
pub(crate) struct RelayServer {
    pub routes: Router,
    pub accept_addr: SocketAddr,
    pub task: JoinHandle<()>,
    pub stop: CancellationToken,
}

/// Binds the accept port on `host` and starts accepting workers.
pub(crate) async fn start(params: RelayParams) -> crate::Result<RelayServer> {
    let listener = crate::node::bind_exact(&params.host, params.accept_port)
        .await
        .map_err(|e| {
            crate::IicpError::InvalidConfig(format!(
                "relay accept port {} on {}: {e}",
                params.accept_port, params.host
            ))
        })?;
    let accept_addr = listener.local_addr()?;
    let relay = Arc::new(Relay {
        registry: sessions::Registry::new(params.limits),
        tickets: tickets::Tickets::new(
            params.require_ticket,
            params.ticket_key,
            &params.directory_url,
            params.identity.clone(),
            params.limits.max_ticket_ids,
        )?,
        limits: params.limits,
        native: params.native,
        http_port: params.http_port,
        identity: params.identity,
        default_timeout: params.default_timeout,
        forwarded: params.forwarded,
    });
    let stop = CancellationToken::new();
    let routes = forward::routes(relay.clone());
    let task = tokio::spawn(run(relay, listener, stop.clone()));
    tracing::info!(
        accept = %accept_addr,
        http_port = params.http_port,
        tickets = if params.require_ticket { "required" } else { "optional" },
        "relay: accepting workers"
    );
    Ok(RelayServer {
        routes,
        accept_addr,
        task,
        stop,
    })
}

/// The accept loop and the sweeper, until `stop`; then every session ends.
async fn run(relay: Arc<Relay>, listener: tokio::net::TcpListener, stop: CancellationToken) {
    let sweeper = {
        let relay = relay.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => {
                        for dead in relay.registry.sweep() {
                            tracing::info!(worker_id = %dead.worker_id, source = %dead.source, why = "silent", "relay: worker unbound");
                        }
                    }
                }
            }
        })
    };
    accept::run(relay.clone(), listener, stop).await;
    relay.registry.end_all();
    let _ = sweeper.await;
}
