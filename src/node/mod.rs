//! The provider: [`IicpNode`] serves `POST /v1/task`, `GET /iicp/health` and
//! `GET /metrics` (`metrics.rs`), registers with a directory, heartbeats,
//! re-registers when forgotten and deregisters on shutdown (PROTOCOL.md
//! §1.3-§1.5, §2).
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
mod contained;
mod directory_link;
pub(crate) mod envelope;
mod handler;
mod http;
pub(crate) mod inbound;
mod lifecycle;
mod listener;
mod metrics;
mod models;
#[cfg(feature = "iicp-tcp")]
mod native;
mod native_limits;
pub(crate) mod pipeline;
mod reach;
mod relayed;
mod replay;
mod runner;
mod running;
mod served;
mod signal;
mod stats;
pub(crate) mod task_auth;
mod task_route;
mod wiring;

#[cfg(feature = "iicp-tcp")]
pub(crate) use wiring::bind_exact;
use wiring::{
    keep_mapping, mesh_state, native_transport, relay_worker_wanted, start_relay,
    start_relay_worker,
};

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
        self.launch(runner::Runner::Handler(Arc::new(handler)), None)
            .await
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
        let handler = runner::Runner::Backend(Arc::new(backend_handler::BackendHandler {
            backend: backend.clone(),
            default_model: self.config.models.first().cloned(),
            advertised: advertised.clone(),
            limits: crate::backends::CostLimits {
                max_tokens: self.config.max_tokens,
                max_choices: self.config.max_choices,
            },
        }));
        self.launch(handler, Some((backend, advertised))).await
    }

    async fn launch(
        self,
        handler: runner::Runner,
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
            cfg.node_id = Some(crate::ids::uuid_v4_string());
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
        let intents: Vec<IntentUrn> = caps.iter().map(|c| c.intent.clone()).collect();
        let pipeline = Arc::new(Pipeline {
            metrics: metrics::NodeMetrics::new(&intents),
            handler,
            gate: admission::AdmissionGate::new(cfg.max_concurrent),
            replay: replay::ReplayGuard::new(
                NONCE_WINDOW,
                TASK_ID_WINDOW,
                cfg.replay_window_entries,
            ),
            intents: served::ServedIntents::new(intents),
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
        let relay = start_relay(
            &cfg,
            &endpoint,
            local_addr,
            &identity_rx,
            pipeline.metrics.relay_forwarded(),
        )
        .await?;
        let node_http = http::NodeHttp {
            pipeline: pipeline.clone(),
            health: Arc::new(http::HealthInfo {
                region: cfg.region.clone().unwrap_or_default(),
                models: cfg.models.clone(),
                intent: cfg.intent.clone(),
            }),
            max_body_bytes: cfg.max_body_bytes,
            mesh: mesh.clone(),
        };
        let task_route = Arc::new(task_route::TaskRoute(Arc::new(node_http.clone())));
        let app = http::router(node_http, relay.as_ref().map(|r| r.routes.clone()));
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
        )
        .with_direct_route(task_route);
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
