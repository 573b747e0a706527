//! The node's HTTP plane (PROTOCOL.md §2.1-§2.3): `POST /v1/task`,
//! `GET /iicp/health`, `GET /metrics`, CORS on every route and `OPTIONS`
//! pre-flights. Only adapters: the task route is in `task_route.rs`
//! (which the connection answers ahead of this router). Every refusal is
//! JSON, never plain text.

use super::pipeline::Pipeline;
use crate::server::request::{BodyError, BodyLimit, RawBody};
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the health route reports besides the pipeline's counters.
#[derive(Debug, Clone)]
pub(crate) struct HealthInfo {
    pub region: String,
    pub models: Vec<String>,
    pub intent: String,
}

/// The state of a node's routes.
#[derive(Debug, Clone)]
pub(crate) struct NodeHttp {
    pub pipeline: Arc<Pipeline>,
    pub health: Arc<HealthInfo>,
    /// Largest task body read (413 `payload_too_large` above).
    pub max_body_bytes: usize,
    /// `POST /v1/peers`, when the mesh is on.
    pub mesh: Option<Arc<crate::mesh::Mesh>>,
}

/// The router of a node, with `extra` routes (the relay's, when the node
/// is relay-capable) under the same body limit, fallbacks and CORS.
pub(crate) fn router(state: NodeHttp, extra: Option<Router>) -> Router {
    let max_body_bytes = state.max_body_bytes;
    let mesh = state
        .mesh
        .clone()
        .map(|mesh| crate::mesh::route::router(mesh, max_body_bytes));
    let mut app = Router::new()
        .route(super::task_route::PATH, post(task))
        .route("/iicp/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state);
    if let Some(mesh) = mesh {
        app = app.merge(mesh);
    }
    if let Some(extra) = extra {
        app = app.merge(extra);
    }
    app.fallback(crate::server::fallback::not_found)
        .method_not_allowed_fallback(crate::server::fallback::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimit(max_body_bytes)))
        .layer(middleware::from_fn(cors))
}

/// CORS on every answer; `OPTIONS` is answered here with 204.
async fn cors(req: Request, next: Next) -> Response {
    let mut response = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        r.headers_mut().insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        r
    } else {
        next.run(req).await
    };
    add_cors(response.headers_mut());
    response
}

/// The CORS headers every answer of a node carries.
pub(super) fn add_cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, traceparent, X-IICP-Consumer-Token"),
    );
}

/// `POST /v1/task` as the router reaches it; the connection normally
/// answers it first ([`TaskRoute`](super::task_route::TaskRoute)), with the
/// same function.
async fn task(
    State(st): State<NodeHttp>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<RawBody, BodyError>,
) -> Response {
    let body = body.map(|RawBody(bytes)| bytes);
    super::task_route::answer(&st, peer.map(|p| p.0.0), &headers, body).await
}

async fn health(State(st): State<NodeHttp>) -> Response {
    let p = &st.pipeline;
    let active = p.gate.active();
    let max = p.gate.max();
    let available = !p.is_draining();
    axum::Json(json!({
        "status": if available { "ok" } else { "degraded" },
        "node_id": p.identity.borrow().clone(),
        "region": st.health.region,
        "load": f64::from(active) / f64::from(max),
        "active_jobs": active,
        "max_concurrent": max,
        "effective_max_concurrent": max,
        "available": available,
        "model": st.health.models.first(),
        "models": st.health.models,
        "intent": st.health.intent,
        "pinhole_state": {"active": false},
        "backend_stability": {"state": if available { "stable" } else { "draining" }},
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// `GET /metrics`: the node's counters in the Prometheus text format 0.0.4.
/// Open like `/iicp/health` (counts by served intent and outcome; no
/// payload, token or id).
async fn metrics(State(st): State<NodeHttp>) -> Response {
    let p = &st.pipeline;
    let body = p.metrics.encode(p.gate.active(), p.gate.max());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::metrics::CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}
