//! The relay worker (PROTOCOL.md §7.2, tier 3): a node nobody can dial
//! holds a session open to a relay, and consumers reach it at
//! `http://{relay}:{relay_http_port}/v1/relay-for/{worker_id}`.
//!
//! When: the operator names a relay (`NodeConfig::relay_worker_endpoint`,
//! `IICP_RELAY_WORKER_ENDPOINT=host:port`), or the reachability ladder
//! found no endpoint to advertise and either ended at tier 3 (carrier-grade
//! NAT) or the directory is not local (tier 4: registering the local
//! endpoint would list an unreachable node). Then the node logs `NAT
//! tier=N: auto-electing relay from directory...` and elects one
//! (`election.rs`). A `relay_capable` node never becomes a worker.
//!
//! Order of a start, and why:
//! 1. `worker_id` is the node id. A node without one chooses a fresh UUID
//!    v4 at start and claims it at registration (a directory takes an
//!    unregistered id as asked), so the relay and the directory know the
//!    worker by the same id before either has seen it.
//! 2. The directory lifecycle holds its first registration until the
//!    worker publishes an endpoint: before a bind the node has nothing a
//!    consumer could reach.
//! 3. Relay: the named one, else elected (`supervisor`).
//! 4. Ticket: a node holding a node token (operator-provisioned, or from an
//!    earlier registration) asks the directory for a bind ticket naming the
//!    relay (`ticket.rs`); without a token it binds without one.
//! 5. Bind (`session.rs`). On success the relay endpoint, with
//!    `transport_method: "turn_relay"`, `nat_type: "symmetric"` and
//!    `transport_metadata {relay_for, relay_host, relay_port}`, goes out on
//!    the node's `endpoint_updates` watch and the lifecycle registers (or
//!    registers again) with it; the directory does not probe such a
//!    registration, and the relay serves the worker's health under the
//!    same prefix for anyone who does.
//! 6. A relay that refuses the bind for want of a ticket while the node has
//!    no token: the node registers first (through that relay, step 5's
//!    fields with the relay's HTTP port as the directory lists it), then
//!    fetches the ticket with its new token, then binds.
//! 7. Loss: reconnect with backoff 2 s doubling to 60 s; after 3 failed
//!    attempts in a row, elect another relay and register through it.
//! 8. Shutdown: the lifecycle deregisters first, then the session closes
//!    with CLOSE `graceful`.

mod election;
mod response;
mod session;
mod supervisor;
mod ticket;

pub(crate) use election::CandidateSource;
pub use election::{RelayCandidate, RelayTarget};

use crate::nat::Advertised;
use crate::node::NativeLimits;
use crate::node::pipeline::Pipeline;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything a worker needs from its node.
pub(crate) struct WorkerSetup {
    pub pipeline: Arc<Pipeline>,
    pub limits: NativeLimits,
    pub worker_id: String,
    pub intent: String,
    pub models: Vec<String>,
    pub http: reqwest::Client,
    /// `None` when the node does not register.
    pub directory_url: Option<String>,
    pub local_directory: bool,
    pub named: Option<RelayTarget>,
    pub candidates: Option<CandidateSource>,
    pub advertise: watch::Sender<Advertised>,
    pub registrations: Option<watch::Receiver<u64>>,
    pub grace: Duration,
}

/// A running worker.
pub(crate) struct WorkerHandle {
    pub task: JoinHandle<()>,
    /// The relay bound at now, `host:port`.
    pub relay: watch::Receiver<Option<String>>,
}

/// Starts the supervisor; it runs until `stop`.
pub(crate) fn spawn(setup: WorkerSetup, stop: CancellationToken) -> WorkerHandle {
    let (bound, relay) = watch::channel(None);
    let supervisor = supervisor::Supervisor {
        session: session::SessionConfig {
            pipeline: setup.pipeline,
            limits: setup.limits,
            worker_id: setup.worker_id,
            intent: setup.intent,
            models: setup.models,
            timings: session::Timings::default(),
            local_directory: setup.local_directory,
        },
        http: setup.http,
        directory_url: setup.directory_url,
        named: setup.named,
        candidates: setup.candidates,
        advertise: setup.advertise,
        registrations: setup.registrations,
        bound,
        grace: setup.grace,
    };
    WorkerHandle {
        task: tokio::spawn(supervisor.run(stop)),
        relay,
    }
}

/// The relay a node started now would bind at, for `iicp-node doctor`:
/// the election over `directory_url`'s relay-capable nodes for `intent`,
/// as `worker_id` (a fresh id when `None`; the tie-break depends on it).
/// `Ok(None)`: the directory offers no relay this node may use.
pub async fn preview(
    directory_url: &str,
    intent: &str,
    worker_id: Option<&str>,
) -> crate::Result<Option<RelayTarget>> {
    let http =
        crate::outbound::directory_client(&format!("iicp-node/{}", env!("CARGO_PKG_VERSION")))?;
    let found = supervisor::discover(&http, directory_url, intent).await?;
    let id = worker_id.map_or_else(crate::ids::uuid_v4_string, str::to_owned);
    let local = crate::node::directory_is_local(directory_url);
    Ok(election::elect(&found, &id, &[], local))
}
