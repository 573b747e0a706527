//! What `launch.rs` starts beside the task pipeline and the HTTP
//! router, one function per companion, each with its twin for a build
//! without the feature it needs: the native sessions on the node's port
//! (`iicp-tcp`), the relay server (`relay_capable`, `iicp-tcp`), the relay
//! worker (tier 3, `iicp-tcp`), the mesh (`enable_mesh`) and the UPnP
//! keeper (`nat`). Nothing here decides reachability (`reach.rs`) or talks
//! to the directory (`lifecycle.rs`).

use super::pipeline::Pipeline;
#[cfg(feature = "iicp-tcp")]
use super::{NativeLimits, listener};
use super::{NodeConfig, reach};
use crate::error::Result;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The mesh state when `enable_mesh` is on: the gossip key, whether peers
/// may have private endpoints (only when the directory is local, as for
/// the node's own endpoint in `reach`), and what the node says about itself.
pub(super) fn mesh_state(
    cfg: &NodeConfig,
    pipeline: &Arc<Pipeline>,
    identity: &watch::Receiver<Option<String>>,
    endpoint: &watch::Receiver<crate::nat::Advertised>,
) -> Option<Arc<crate::mesh::Mesh>> {
    if !cfg.enable_mesh {
        return None;
    }
    let load = pipeline.clone();
    Some(Arc::new(crate::mesh::Mesh::new(
        cfg.node_hmac_key.clone(),
        reach::directory_is_local(&cfg.directory_url),
        crate::mesh::SelfView {
            identity: identity.clone(),
            endpoint: endpoint.clone(),
            region: cfg.region.clone().unwrap_or_default(),
            relay_capable: cfg.relay_capable,
            relay_accept_port: cfg.relay_accept_port,
            load: Arc::new(move || f64::from(load.gate.active()) / f64::from(load.gate.max())),
        },
    )))
}

/// Whether this node should serve through a relay: never when it is a
/// relay itself; when the operator named one; or when the reachability
/// ladder found no endpoint for this directory's consumers (`reach`, which
/// logs `NAT tier=3: auto-electing relay from directory...`).
pub(super) fn relay_worker_wanted(cfg: &NodeConfig, reach: &reach::Resolved) -> bool {
    let named = cfg.relay_worker_endpoint.is_some();
    if cfg.relay_capable {
        if named {
            tracing::warn!(
                "relay_worker_endpoint ignored: a relay-capable node never becomes a relay worker"
            );
        }
        return false;
    }
    named || reach.relay
}

/// Starts the relay worker (`crate::relay::worker`): its task and the
/// relay it is bound at.
#[cfg(feature = "iicp-tcp")]
pub(super) fn start_relay_worker(
    cfg: &NodeConfig,
    pipeline: &Arc<Pipeline>,
    peers: Option<Arc<crate::mesh::PeerCache>>,
    http: reqwest::Client,
    advertise: watch::Sender<crate::nat::Advertised>,
    registrations: Option<watch::Receiver<u64>>,
    stop: &CancellationToken,
) -> Option<(tokio::task::JoinHandle<()>, watch::Receiver<Option<String>>)> {
    use crate::relay::worker;
    let named = match cfg
        .relay_worker_endpoint
        .as_deref()
        .map(worker::RelayTarget::parse_named)
    {
        None => None,
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => {
            // validate() refused this already; kept for safety.
            tracing::warn!(error = %e, "relay worker not started");
            return None;
        }
    };
    let setup = worker::WorkerSetup {
        pipeline: pipeline.clone(),
        limits: NativeLimits {
            max_frame: cfg.native_limits.max_frame.min(cfg.max_body_bytes),
            ..cfg.native_limits
        },
        worker_id: cfg.node_id.clone()?,
        intent: cfg.intent.clone(),
        models: cfg.models.clone(),
        http,
        directory_url: (!cfg.skip_registration).then(|| cfg.directory_url.clone()),
        local_directory: reach::directory_is_local(&cfg.directory_url),
        named,
        // With the mesh on, the gossip peer cache is the fallback source.
        candidates: peers.map(|cache| -> worker::CandidateSource {
            Arc::new(move || {
                cache
                    .relay_candidates("")
                    .into_iter()
                    .map(|p| worker::RelayCandidate {
                        node_id: p.node_id,
                        endpoint: p.endpoint,
                        relay_capable: p.relay_capable,
                        relay_accept_port: p.relay_accept_port,
                        load: p.relay_load,
                        reputation_score: None,
                    })
                    .collect()
            })
        }),
        advertise,
        registrations,
        grace: cfg.shutdown_grace,
    };
    let handle = worker::spawn(setup, stop.clone());
    Some((handle.task, handle.relay))
}

/// Without the `iicp-tcp` feature there is no relay worker.
#[cfg(not(feature = "iicp-tcp"))]
pub(super) fn start_relay_worker(
    _cfg: &NodeConfig,
    _pipeline: &Arc<Pipeline>,
    _peers: Option<Arc<crate::mesh::PeerCache>>,
    _http: reqwest::Client,
    _advertise: watch::Sender<crate::nat::Advertised>,
    _registrations: Option<watch::Receiver<u64>>,
    _stop: &CancellationToken,
) -> Option<(tokio::task::JoinHandle<()>, watch::Receiver<Option<String>>)> {
    tracing::warn!(
        "relay_worker_endpoint ignored: this build has no native transport (feature iicp-tcp)"
    );
    None
}

/// Starts the relay server when the node is relay-capable: binds
/// `relay_accept_port` on the node's `host` and returns its routes (for the
/// node's router) and its task (stopped with the node).
#[cfg(feature = "iicp-tcp")]
pub(super) async fn start_relay(
    cfg: &NodeConfig,
    endpoint: &str,
    local_addr: std::net::SocketAddr,
    identity: &watch::Receiver<Option<String>>,
    forwarded: prometheus_client::metrics::counter::Counter,
) -> Result<Option<crate::relay::server::RelayServer>> {
    if !cfg.relay_capable {
        return Ok(None);
    }
    // Workers register `http://relay:PORT/v1/relay-for/{id}`: the port
    // consumers reach, the advertised one when it says.
    let http_port = url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(local_addr.port());
    let ticket_key = cfg
        .relay_bind_ticket_public_key
        .as_deref()
        .map(crate::token::DirectoryPublicKey::from_hex)
        .transpose()
        .map_err(|_| {
            crate::IicpError::InvalidConfig("relay_bind_ticket_public_key is not a key".into())
        })?;
    let params = crate::relay::server::RelayParams {
        host: cfg.host.clone(),
        accept_port: cfg.relay_accept_port,
        http_port,
        limits: cfg.relay_limits,
        native: cfg.native_limits,
        require_ticket: cfg.relay_require_bind_ticket,
        ticket_key,
        directory_url: cfg.directory_url.clone(),
        identity: identity.clone(),
        default_timeout: cfg.default_task_timeout,
        forwarded,
    };
    crate::relay::server::start(params).await.map(Some)
}

/// Without the `iicp-tcp` feature there is no relay server.
#[cfg(not(feature = "iicp-tcp"))]
pub(super) async fn start_relay(
    cfg: &NodeConfig,
    _endpoint: &str,
    _local_addr: std::net::SocketAddr,
    _identity: &watch::Receiver<Option<String>>,
    _forwarded: prometheus_client::metrics::counter::Counter,
) -> Result<Option<AbsentRelay>> {
    if cfg.relay_capable {
        tracing::warn!(
            "relay_capable is set but this build has no native transport (feature iicp-tcp): no relay"
        );
    }
    Ok(None)
}

/// The shape of a started relay in a build that cannot start one (never
/// constructed: `start_relay` answers `None` there).
#[cfg(not(feature = "iicp-tcp"))]
pub(super) struct AbsentRelay {
    pub routes: axum::Router,
    pub accept_addr: std::net::SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
    pub stop: CancellationToken,
}

/// Binds `host:port` exactly (no next free port): the relay's accept port.
#[cfg(feature = "iicp-tcp")]
pub(crate) async fn bind_exact(host: &str, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    listener::bind(host, port, false).await
}

/// Keeps a UPnP mapping or IPv6 pinhole renewed while the node serves and
/// removes it when `stop` is cancelled (`nat::keep`).
#[cfg(feature = "nat")]
pub(super) fn keep_mapping(
    cfg: &NodeConfig,
    lease: Option<crate::nat::Lease>,
    port: u16,
    endpoint: watch::Sender<crate::nat::Advertised>,
    recheck: Arc<tokio::sync::Notify>,
    stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let lease = lease?;
    let keeping = crate::nat::Keeping {
        port,
        every: cfg.reachability.recheck_interval,
        endpoint,
        recheck,
        stop: stop.clone(),
    };
    Some(tokio::spawn(crate::nat::keep(lease, keeping)))
}

/// Without the `nat` feature no mapping is ever made.
#[cfg(not(feature = "nat"))]
pub(super) fn keep_mapping(
    _cfg: &NodeConfig,
    lease: Option<crate::nat::Lease>,
    _port: u16,
    _endpoint: watch::Sender<crate::nat::Advertised>,
    _recheck: Arc<tokio::sync::Notify>,
    _stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    match lease {
        None => None,
        Some(never) => match never {},
    }
}

/// The native transport's session handler and the `transport_endpoint` it
/// is advertised under, when the node serves it (`native_transport`, the
/// `iicp-tcp` feature, and an http(s) endpoint to derive it from).
#[cfg(feature = "iicp-tcp")]
pub(super) fn native_transport(
    cfg: &NodeConfig,
    endpoint: &str,
    pipeline: &Arc<Pipeline>,
) -> Option<(Arc<dyn crate::server::NativeHandler>, String)> {
    if !cfg.native_transport {
        return None;
    }
    let transport_endpoint = super::native::transport_endpoint(endpoint)?;
    let sessions = super::native::NativeSessions {
        pipeline: pipeline.clone(),
        info: Arc::new(super::native::NativeInfo {
            endpoint: endpoint.to_owned(),
            transport_endpoint: transport_endpoint.clone(),
            region: cfg.region.clone().unwrap_or_default(),
            models: cfg.models.clone(),
        }),
        limits: NativeLimits {
            max_frame: cfg.native_limits.max_frame.min(cfg.max_body_bytes),
            ..cfg.native_limits
        },
    };
    Some((Arc::new(sessions), transport_endpoint))
}

/// Without the `iicp-tcp` feature the node speaks HTTP only.
#[cfg(not(feature = "iicp-tcp"))]
pub(super) fn native_transport(
    _cfg: &NodeConfig,
    _endpoint: &str,
    _pipeline: &Arc<Pipeline>,
) -> Option<(Arc<dyn crate::server::NativeHandler>, String)> {
    None
}
