//! How a node comes up ([`launch`], behind every `IicpNode::start*`), one
//! step per function and in this order:
//!
//! 1. [`bind`]: the configuration checked, the port bound, then how the
//!    node is reached from its directory's consumers (`reach.rs`: direct,
//!    UPnP, or a relay worker when neither works);
//! 2. [`cx_key`]: the CX key pair, loaded from its file or made;
//! 3. [`pipeline`]: the one task pipeline every transport shares;
//! 4. [`serve`]: one accept loop for HTTP (the task route ahead of the
//!    router), native sessions and, on a relay-capable node, the relay's
//!    routes; the relay server's own port;
//! 5. the companions (`wiring.rs`): the mesh exchange, the relay worker,
//!    the UPnP keeper;
//! 6. [`registration`] and the directory lifecycle (`lifecycle.rs`),
//!    unless the node skips registration.
//!
//! Nothing is served before the pipeline exists, and nothing registers
//! before the node serves.

use super::pipeline::Pipeline;
use super::running::{RelayRun, RunningNode};
use super::wiring::{
    keep_mapping, mesh_state, native_transport, relay_worker_wanted, start_relay,
    start_relay_worker,
};
use super::{
    NodeConfig, admission, capabilities, http, lifecycle, listener, metrics, models, reach, replay,
    runner, served, task_auth, task_route,
};
use crate::backends::Backend;
use crate::error::Result;
use crate::server::serve::Server;
use crate::wire::{Capability, IntentUrn, NodeLimits, RegisterRequest};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long task ids (300 s) and nonces (5 min) are remembered
/// (PROTOCOL.md §2.3 steps 5-6).
const TASK_ID_WINDOW: Duration = Duration::from_secs(300);
const NONCE_WINDOW: Duration = Duration::from_secs(300);

/// Starts a node with `cfg` and `handler`; `model_probe` is the backend
/// whose models are listed again before every heartbeat.
pub(super) async fn launch(
    mut cfg: NodeConfig,
    handler: runner::Runner,
    model_probe: Option<(Arc<dyn Backend>, models::AdvertisedModels)>,
) -> Result<RunningNode> {
    let Bound {
        listener,
        local_addr,
        reach,
        intent,
        relay_worker,
    } = bind(&mut cfg).await?;
    let endpoint = reach.endpoint.clone();
    let caps = capabilities::capabilities(&cfg.models, &intent, None);
    let cx = cx_key(&cfg)?;
    let (identity_tx, identity_rx) = watch::channel(cfg.node_id.clone());
    let (error_tx, error_rx) = watch::channel(None);
    let pipeline = pipeline(&cfg, handler, &caps, cx.clone(), identity_rx.clone());

    let (endpoint_tx, endpoint_rx) =
        watch::channel(crate::nat::Advertised::direct(endpoint.clone()));
    let mesh = mesh_state(&cfg, &pipeline, &identity_rx, &endpoint_rx);
    let serving = serve(
        &cfg,
        listener,
        local_addr,
        &endpoint,
        &pipeline,
        &identity_rx,
        mesh.clone(),
    )
    .await?;

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

    let lifecycle_stop = CancellationToken::new();
    let lifecycle = registers.then(|| {
        let mut registration = registration(&cfg, endpoint.clone(), caps, cx.as_ref());
        registration.transport_endpoint = serving.transport_endpoint.clone();
        // What the relay really is: none without the native transport,
        // and the port actually bound (a test binds port 0).
        registration.relay_capable = Some(serving.relay.is_some());
        registration.relay_accept_port = serving.relay.as_ref().map(|r| r.addr.port());
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
            intent,
            endpoint_updates: endpoint_rx,
            hold_until_advertised: relay_worker,
            registrations: registrations_tx,
            registration_failed: recheck,
        };
        tokio::spawn(lifecycle::run(params, lifecycle_stop.clone()))
    });
    Ok(RunningNode {
        local_addr,
        endpoint,
        identity: identity_rx,
        registration_error: error_rx,
        pipeline,
        server: Some(serving.server),
        server_stop: serving.stop,
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
        relay: serving.relay,
    })
}

/// The node's port, bound, and how it is reached.
struct Bound {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    reach: reach::Resolved,
    intent: IntentUrn,
    /// Whether the node serves through a relay (it then has a node id
    /// already: the worker binds under it before the directory saw it).
    relay_worker: bool,
}

/// Checks `cfg`, binds its port and resolves how the node is reached.
async fn bind(cfg: &mut NodeConfig) -> Result<Bound> {
    cfg.validate()?;
    let intent = IntentUrn::parse(&cfg.intent)?;
    let explicit_endpoint = !cfg.endpoint.is_empty();
    let listener = listener::bind(&cfg.host, cfg.port, !explicit_endpoint).await?;
    let local_addr = listener.local_addr()?;
    let reach = reach::resolve(cfg, local_addr).await;
    let relay_worker = relay_worker_wanted(cfg, &reach);
    if relay_worker && cfg.node_id.is_none() {
        // Chosen now, claimed at registration.
        cfg.node_id = Some(crate::ids::uuid_v4_string());
    }
    Ok(Bound {
        listener,
        local_addr,
        reach,
        intent,
        relay_worker,
    })
}

/// The CX key pair when the node accepts encrypted tasks: from
/// `cx_key_file` (made there on first start), else one for this run.
fn cx_key(cfg: &NodeConfig) -> Result<Option<crate::cx::CxKeyPair>> {
    Ok(match (cfg.confidentiality, &cfg.cx_key_file) {
        (false, _) => None,
        (true, Some(path)) => Some(crate::cx::CxKeyPair::from_secret_bytes(
            crate::key_file::load_or_create(path, "CX key")?,
        )),
        (true, None) => Some(crate::cx::CxKeyPair::generate()),
    })
}

/// The task pipeline for the intents in `caps`.
fn pipeline(
    cfg: &NodeConfig,
    handler: runner::Runner,
    caps: &[Capability],
    cx: Option<crate::cx::CxKeyPair>,
    identity: watch::Receiver<Option<String>>,
) -> Arc<Pipeline> {
    let intents: Vec<IntentUrn> = caps.iter().map(|c| c.intent.clone()).collect();
    Arc::new(Pipeline {
        metrics: metrics::NodeMetrics::new(&intents),
        handler,
        gate: admission::AdmissionGate::new(cfg.max_concurrent),
        replay: replay::ReplayGuard::new(NONCE_WINDOW, TASK_ID_WINDOW, cfg.replay_window_entries),
        intents: served::ServedIntents::new(intents),
        default_timeout: cfg.default_task_timeout,
        identity,
        draining: AtomicBool::new(false),
        stats: Default::default(),
        cx,
        auth: task_auth::Authorizer::new(cfg.task_auth, cfg.node_token.clone()),
    })
}

/// What [`serve`] started.
struct Serving {
    /// The accept loop's task, and what stops it.
    server: JoinHandle<()>,
    stop: CancellationToken,
    /// The relay server, when the node is relay-capable.
    relay: Option<RelayRun>,
    /// The native transport's endpoint, when the node serves it.
    transport_endpoint: Option<String>,
}

/// Serves the node's port (HTTP, with the task route answered ahead of the
/// router; native sessions) and, when relay-capable, the relay's.
async fn serve(
    cfg: &NodeConfig,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    endpoint: &str,
    pipeline: &Arc<Pipeline>,
    identity: &watch::Receiver<Option<String>>,
    mesh: Option<Arc<crate::mesh::Mesh>>,
) -> Result<Serving> {
    let relay = start_relay(
        cfg,
        endpoint,
        local_addr,
        identity,
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
        mesh,
    };
    let task_route = Arc::new(task_route::TaskRoute(Arc::new(node_http.clone())));
    let app = http::router(node_http, relay.as_ref().map(|r| r.routes.clone()));
    let native = native_transport(cfg, endpoint, pipeline);
    let transport_endpoint = native.as_ref().map(|(_, te)| te.clone());
    let stop = CancellationToken::new();
    let server = Server::new(
        listener,
        app,
        cfg.server_limits,
        native.map(|(handler, _)| handler),
        "node",
    )
    .with_direct_route(task_route);
    Ok(Serving {
        server: tokio::spawn(server.run(stop.clone())),
        stop,
        relay: relay.map(|r| RelayRun {
            addr: r.accept_addr,
            task: r.task,
            stop: r.stop,
        }),
        transport_endpoint,
    })
}

/// What the node registers with: its endpoint and capabilities, limits,
/// identity, implementation metadata and CX key (PROTOCOL.md §1.3).
fn registration(
    cfg: &NodeConfig,
    endpoint: String,
    caps: Vec<Capability>,
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
