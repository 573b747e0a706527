//! The provider: [`IicpNode`] serves `POST /v1/task` and `GET /iicp/health`,
//! registers with a directory, heartbeats, re-registers when forgotten and
//! deregisters on shutdown (PROTOCOL.md §1.3-§1.5, §2).
//!
//! Tasks go through one pipeline (`pipeline.rs`); the directory state has
//! one owner (`lifecycle.rs`). The handler returns the *inner* result and
//! the node wraps it once.
//!
//! ```no_run
//! use iicp_client::{IicpNode, NodeConfig};
//! use serde_json::json;
//!
//! # async fn run() -> iicp_client::Result<()> {
//! let node = IicpNode::new(NodeConfig {
//!     directory_url: "http://127.0.0.1:8020/api".into(),
//!     models: vec!["echo".into()],
//!     ..Default::default()
//! });
//! node.serve(|req: iicp_client::TaskRequest, _ctx| async move {
//!     Ok(json!({"echo": req.payload}))
//! })
//! .await
//! # }
//! ```

mod admission;
pub(crate) mod answer;
mod backend_handler;
mod capabilities;
mod config;
mod config_builder;
pub(crate) mod envelope;
mod handler;
mod http;
pub(crate) mod inbound;
mod lifecycle;
mod listener;
mod models;
#[cfg(feature = "iicp-tcp")]
mod native;
mod native_limits;
pub(crate) mod pipeline;
mod reach;
mod replay;
mod running;
mod signal;
mod stats;
pub(crate) mod task_auth;

#[cfg(feature = "iicp-tcp")]
pub use crate::relay::worker::{RelayCandidate, RelayTarget, preview as preview_relay};
pub use admission::ADMISSION_WAIT;
pub use capabilities::{capabilities, intent_for_model, modalities_for_model};
pub use config::{
    DEFAULT_PORT, DEFAULT_RELAY_ACCEPT_PORT, DEFAULT_REPLAY_WINDOW_ENTRIES, NodeConfig,
};
pub use config_builder::NodeConfigBuilder;
pub use handler::{HandlerError, HandlerFuture, TaskContext, TaskHandler, handler_fn};
pub use native_limits::{
    DEFAULT_NATIVE_IDLE_TIMEOUT, DEFAULT_NATIVE_INIT_TIMEOUT, DEFAULT_NATIVE_MAX_CALLS,
    MAX_NATIVE_CALLS, MAX_NATIVE_FRAME_BYTES, MIN_NATIVE_FRAME_BYTES, NativeLimits,
};
#[cfg(feature = "iicp-tcp")]
pub(crate) use reach::directory_is_local;
pub use running::RunningNode;
pub use signal::shutdown_signal;
pub use task_auth::TaskAuthMode;

use crate::backends::Backend;
use crate::error::Result;
use crate::server::serve::Server;
use crate::wire::{IntentUrn, NodeLimits, RegisterRequest};
use pipeline::Pipeline;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long task ids (300 s) and nonces (5 min) are remembered
/// (PROTOCOL.md §2.3 steps 5-6).
const TASK_ID_WINDOW: Duration = Duration::from_secs(300);
const NONCE_WINDOW: Duration = Duration::from_secs(300);

/// An IICP provider node. Build it with [`IicpNode::new`], then
/// [`serve`](Self::serve) (until SIGINT/SIGTERM) or [`start`](Self::start)
/// (returns a handle).
#[derive(Debug, Clone)]
pub struct IicpNode {
    config: NodeConfig,
}

impl IicpNode {
    /// A node with this configuration (checked when it starts).
    pub fn new(config: NodeConfig) -> Self {
        Self { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Serves tasks with `handler` until SIGINT or SIGTERM, then stops taking
    /// tasks, lets running ones finish (within `shutdown_grace`), deregisters
    /// and returns.
    pub async fn serve<H: TaskHandler>(self, handler: H) -> Result<()> {
        self.start(handler).await?.run_until_signal().await;
        Ok(())
    }

    /// Binds, starts serving and (unless `skip_registration`) starts the
    /// directory lifecycle in the background.
    pub async fn start<H: TaskHandler>(self, handler: H) -> Result<RunningNode> {
        self.launch(Arc::new(handler), None).await
    }

    /// Serves a model server until SIGINT or SIGTERM (see [`start_backend`](Self::start_backend)).
    pub async fn serve_backend(self, backend: Arc<dyn Backend>) -> Result<()> {
        self.start_backend(backend).await?.run_until_signal().await;
        Ok(())
    }

    /// Serves tasks with a [`Backend`]. Its models are probed at start (when
    /// `models` is empty they become the advertised models, and the engine
    /// flavour the register `backend` field) and before every heartbeat
    /// (`health_models`; a changed list re-registers with new capabilities).
    /// A task may name only an advertised model (else 404 `IICP-E029`), and
    /// its cost fields are lowered to `max_tokens` / `max_choices`.
    pub async fn start_backend(mut self, backend: Arc<dyn Backend>) -> Result<RunningNode> {
        match backend.probe().await {
            Ok((models, flavour)) => {
                if self.config.models.is_empty() {
                    self.config.models = models;
                }
                self.config.backend.get_or_insert(flavour);
            }
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), "could not list the backend's models at start")
            }
        }
        let advertised = models::AdvertisedModels::new(&self.config.models);
        let handler: Arc<dyn TaskHandler> = Arc::new(backend_handler::BackendHandler {
            backend: backend.clone(),
            default_model: self.config.models.first().cloned(),
            advertised: advertised.clone(),
            limits: crate::backends::CostLimits {
                max_tokens: self.config.max_tokens,
                max_choices: self.config.max_choices,
            },
        });
        self.launch(handler, Some((backend, advertised))).await
    }

    async fn launch(
        self,
        handler: Arc<dyn TaskHandler>,
        model_probe: Option<(Arc<dyn Backend>, models::AdvertisedModels)>,
    ) -> Result<RunningNode> {
        let mut cfg = self.config;
        cfg.validate()?;
        let intent = IntentUrn::parse(&cfg.intent)?;
        let explicit_endpoint = !cfg.endpoint.is_empty();
        let listener = listener::bind(&cfg.host, cfg.port, !explicit_endpoint).await?;
        let local_addr = listener.local_addr()?;
        let reach = reach::resolve(&cfg, local_addr).await;
        let endpoint = reach.endpoint.clone();
        let relay_worker = relay_worker_wanted(&cfg, &reach);
        if relay_worker && cfg.node_id.is_none() {
            // The worker binds under its node id before the directory has
            // seen it: choose one now and claim it at registration.
            cfg.node_id = Some(uuid::Uuid::new_v4().to_string());
        }
        let caps = capabilities::capabilities(&cfg.models, &intent, None);
        let cx = match (cfg.confidentiality, &cfg.cx_key_file) {
            (false, _) => None,
            (true, Some(path)) => Some(crate::cx::CxKeyPair::from_secret_bytes(
                crate::key_file::load_or_create(path, "CX key")?,
            )),
            (true, None) => Some(crate::cx::CxKeyPair::generate()),
        };
        let (identity_tx, identity_rx) = watch::channel(cfg.node_id.clone());
        let (error_tx, error_rx) = watch::channel(None);
        let pipeline = Arc::new(Pipeline {
            handler,
            gate: admission::AdmissionGate::new(cfg.max_concurrent),
            replay: replay::ReplayGuard::new(
                NONCE_WINDOW,
                TASK_ID_WINDOW,
                cfg.replay_window_entries,
            ),
            intents: caps.iter().map(|c| c.intent.clone()).collect(),
            default_timeout: cfg.default_task_timeout,
            identity: identity_rx.clone(),
            draining: AtomicBool::new(false),
            stats: Default::default(),
            cx: cx.clone(),
            auth: task_auth::Authorizer::new(cfg.task_auth, cfg.node_token.clone()),
        });
        let (endpoint_tx, endpoint_rx) =
            watch::channel(crate::nat::Advertised::direct(endpoint.clone()));
        let mesh = mesh_state(&cfg, &pipeline, &identity_rx, &endpoint_rx);
        let relay = start_relay(&cfg, &endpoint, local_addr, &identity_rx).await?;
        let app = http::router(
            http::NodeHttp {
                pipeline: pipeline.clone(),
                health: Arc::new(http::HealthInfo {
                    region: cfg.region.clone().unwrap_or_default(),
                    models: cfg.models.clone(),
                    intent: cfg.intent.clone(),
                }),
                max_body_bytes: cfg.max_body_bytes,
                mesh: mesh.clone(),
            },
            relay.as_ref().map(|r| r.routes.clone()),
        );
        let relay = relay.map(|r| running::RelayRun {
            addr: r.accept_addr,
            task: r.task,
            stop: r.stop,
        });
        let native = native_transport(&cfg, &endpoint, &pipeline);
        let transport_endpoint = native.as_ref().map(|(_, te)| te.clone());
        let server_stop = CancellationToken::new();
        let server = Server::new(
            listener,
            app,
            cfg.server_limits,
            native.map(|(handler, _)| handler),
            "node",
        );
        let server = tokio::spawn(server.run(server_stop.clone()));
        let mesh_stop = CancellationToken::new();
        let mesh_task = mesh.as_ref().map(|mesh| {
            let params = crate::mesh::exchange::Params {
                mesh: mesh.clone(),
                directory_url: Some(cfg.directory_url.clone())
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://")),
                interval: cfg.mesh_interval,
            };
            tokio::spawn(crate::mesh::exchange::run(params, mesh_stop.clone()))
        });

        let lifecycle_stop = CancellationToken::new();
        let (registrations_tx, registrations_rx) = watch::channel(0u64);
        let http =
            crate::outbound::directory_client(&format!("iicp-node/{}", env!("CARGO_PKG_VERSION")))?;
        let registers = !cfg.skip_registration && (reach.register || relay_worker);
        let worker_stop = CancellationToken::new();
        let worker = relay_worker
            .then(|| {
                start_relay_worker(
                    &cfg,
                    &pipeline,
                    mesh.as_ref().map(|m| m.cache.clone()),
                    http.clone(),
                    endpoint_tx.clone(),
                    registers.then_some(registrations_rx),
                    &worker_stop,
                )
            })
            .flatten();
        let keeper_stop = CancellationToken::new();
        let recheck = Arc::new(tokio::sync::Notify::new());
        // A relay worker advertises its relay: a mapping's address changes
        // must not replace that endpoint.
        let keeper_endpoint = if relay_worker {
            watch::channel(crate::nat::Advertised::direct(endpoint.clone())).0
        } else {
            endpoint_tx
        };
        let keeper = keep_mapping(
            &cfg,
            reach.lease,
            local_addr.port(),
            keeper_endpoint,
            recheck.clone(),
            &keeper_stop,
        );
        let lifecycle = if !registers {
            None
        } else {
            let mut registration = registration(&cfg, endpoint.clone(), caps, cx.as_ref());
            registration.transport_endpoint = transport_endpoint;
            // What the relay really is: none without the native transport,
            // and the port actually bound (a test binds port 0).
            registration.relay_capable = Some(relay.is_some());
            registration.relay_accept_port = relay.as_ref().map(|r| r.addr.port());
            let params = lifecycle::LifecycleParams {
                http,
                directory_url: cfg.directory_url.clone(),
                registration,
                node_token: cfg.node_token.clone(),
                identity: identity_tx,
                registration_error: error_tx,
                pipeline: pipeline.clone(),
                health_models: (!cfg.models.is_empty()).then(|| cfg.models.clone()),
                model_probe,
                intent: intent.clone(),
                endpoint_updates: endpoint_rx,
                hold_until_advertised: relay_worker,
                registrations: registrations_tx,
                registration_failed: recheck,
            };
            Some(tokio::spawn(lifecycle::run(params, lifecycle_stop.clone())))
        };
        Ok(RunningNode {
            local_addr,
            endpoint,
            identity: identity_rx,
            registration_error: error_rx,
            pipeline,
            server: Some(server),
            server_stop,
            registers: lifecycle.is_some(),
            lifecycle,
            lifecycle_stop,
            grace: cfg.shutdown_grace,
            tier: if relay_worker {
                Some(crate::nat::Tier::Relay)
            } else {
                reach.tier
            },
            keeper,
            keeper_stop,
            mesh: mesh.map(|m| m.cache.clone()),
            mesh_task,
            mesh_stop,
            relay_bound: worker
                .as_ref()
                .map_or_else(|| watch::channel(None).1, |(_, relay)| relay.clone()),
            worker: worker.map(|(task, _)| task),
            worker_stop,
            relay,
        })
    }
}

/// The mesh state when `enable_mesh` is on: the gossip key, whether peers
/// may have private endpoints (only when the directory is local, as for
/// the node's own endpoint in `reach`), and what the node says about itself.
fn mesh_state(
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
fn relay_worker_wanted(cfg: &NodeConfig, reach: &reach::Resolved) -> bool {
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
fn start_relay_worker(
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
fn start_relay_worker(
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
async fn start_relay(
    cfg: &NodeConfig,
    endpoint: &str,
    local_addr: std::net::SocketAddr,
    identity: &watch::Receiver<Option<String>>,
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
    };
    crate::relay::server::start(params).await.map(Some)
}

/// Without the `iicp-tcp` feature there is no relay server.
#[cfg(not(feature = "iicp-tcp"))]
async fn start_relay(
    cfg: &NodeConfig,
    _endpoint: &str,
    _local_addr: std::net::SocketAddr,
    _identity: &watch::Receiver<Option<String>>,
) -> Result<Option<RelayStub>> {
    if cfg.relay_capable {
        tracing::warn!(
            "relay_capable is set but this build has no native transport (feature iicp-tcp): no relay"
        );
    }
    Ok(None)
}

/// The shape of a started relay, for builds without one.
#[cfg(not(feature = "iicp-tcp"))]
struct RelayStub {
    routes: axum::Router,
    accept_addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

/// Binds `host:port` exactly (no next free port): the relay's accept port.
#[cfg(feature = "iicp-tcp")]
pub(crate) async fn bind_exact(host: &str, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    listener::bind(host, port, false).await
}

/// Keeps a UPnP mapping or IPv6 pinhole renewed while the node serves and
/// removes it when `stop` is cancelled (`nat::keep`).
#[cfg(feature = "nat")]
fn keep_mapping(
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
fn keep_mapping(
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

/// The `transport_endpoint` advertised beside `endpoint`, when the node
/// serves the native transport.
pub(crate) fn transport_endpoint_for(endpoint: &str) -> Option<String> {
    #[cfg(feature = "iicp-tcp")]
    {
        native::transport_endpoint(endpoint)
    }
    #[cfg(not(feature = "iicp-tcp"))]
    {
        let _ = endpoint;
        None
    }
}

/// What the node registers with: its endpoint and capabilities, limits,
/// identity, implementation metadata and CX key (PROTOCOL.md §1.3).
fn registration(
    cfg: &NodeConfig,
    endpoint: String,
    caps: Vec<crate::wire::Capability>,
    cx: Option<&crate::cx::CxKeyPair>,
) -> RegisterRequest {
    let mut registration = RegisterRequest::new(endpoint, caps);
    registration.region = Some(cfg.region.clone().unwrap_or_else(|| "unknown".into()));
    registration.limits = Some(NodeLimits {
        max_concurrent: cfg.max_concurrent.clamp(1, 256),
        tokens_per_min: cfg.tokens_per_min.max(1),
        extra: Default::default(),
    });
    registration.node_id = cfg.node_id.clone();
    registration.backend = cfg.backend;
    registration.relay_capable = Some(cfg.relay_capable);
    registration.relay_accept_port = cfg.relay_capable.then_some(cfg.relay_accept_port);
    registration.sdk_language = Some("rust".into());
    registration.sdk_version = Some(env!("CARGO_PKG_VERSION").into());
    registration.sdk_compatibility_version = Some(env!("CARGO_PKG_VERSION").into());
    registration.implementation_name = Some("iicp-client-rs".into());
    registration.implementation_version = Some(env!("CARGO_PKG_VERSION").into());
    registration.cx_public_key = cx.map(|k| k.advertised());
    registration
}

/// The native transport's session handler and the `transport_endpoint` it
/// is advertised under, when the node serves it (`native_transport`, the
/// `iicp-tcp` feature, and an http(s) endpoint to derive it from).
#[cfg(feature = "iicp-tcp")]
fn native_transport(
    cfg: &NodeConfig,
    endpoint: &str,
    pipeline: &Arc<Pipeline>,
) -> Option<(Arc<dyn crate::server::NativeHandler>, String)> {
    if !cfg.native_transport {
        return None;
    }
    let transport_endpoint = native::transport_endpoint(endpoint)?;
    let sessions = native::NativeSessions {
        pipeline: pipeline.clone(),
        info: Arc::new(native::NativeInfo {
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
fn native_transport(
    _cfg: &NodeConfig,
    _endpoint: &str,
    _pipeline: &Arc<Pipeline>,
) -> Option<(Arc<dyn crate::server::NativeHandler>, String)> {
    None
}
