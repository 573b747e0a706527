//! The directory's HTTP routes, served under both `/v1` and `/api/v1`
//! (PROTOCOL.md §1.1), with health at the root.

mod discovery;
mod lifecycle;
mod misc;
mod tokens;

use super::DirectoryConfig;
use super::clock::Clock;
use super::metrics::{DirectoryMetrics, Route};
use super::rate_limit::RateLimiter;
use super::registry::Registry;
use super::replica::Replica;
use super::store::postgres::shared::Shared;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// Shared state of every handler.
#[derive(Debug)]
pub(crate) struct AppState {
    /// Every node: the registry itself, or (PostgreSQL) the read cache.
    pub registry: Arc<Registry>,
    /// The shared PostgreSQL database, the source of truth when set.
    pub shared: Option<Arc<Shared>>,
    pub config: DirectoryConfig,
    pub register_limiter: RateLimiter,
    pub clock: Arc<dyn Clock>,
    /// What `GET /metrics` reports.
    pub metrics: DirectoryMetrics,
}

impl AppState {
    /// Register, heartbeat and deregister on the shared database, in
    /// PostgreSQL mode.
    pub fn replica(&self) -> Option<Replica<'_>> {
        self.shared.as_deref().map(|shared| Replica {
            shared,
            registry: &self.registry,
        })
    }

    /// Where registrations are kept, for the health answer.
    pub fn persistence(&self) -> &'static str {
        match &self.shared {
            Some(s) if s.is_available() => "postgres",
            Some(_) => "postgres (database unreachable: writes refused, discover from the cache)",
            None => self.registry.persistence(),
        }
    }
}

fn v1(max_register_body: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/register",
            post(lifecycle::register)
                .delete(lifecycle::deregister)
                .layer(DefaultBodyLimit::max(max_register_body)),
        )
        .route("/heartbeat", post(lifecycle::heartbeat))
        .route("/discover", get(discovery::discover))
        .route("/bootstrap", get(discovery::bootstrap))
        .route("/node/{id}", get(discovery::node))
        .route("/registry/nodes/{id}", get(discovery::registry_node))
        .route("/me", get(discovery::me))
        .route("/directory-key", get(tokens::directory_key))
        .route("/consumer-token", post(tokens::consumer_token))
        .route("/relay/ticket", post(tokens::relay_ticket))
        .route("/dispatch/ticket", post(misc::dispatch_ticket))
        .route("/probe", get(misc::probe))
        .route("/credits/balance", get(misc::credits))
        .route("/credits/transactions", get(misc::credits))
        .route("/credits/quote", get(misc::credits))
        .route("/credits/summary", get(misc::credits))
        .route("/credits/award", post(misc::credits))
        .route("/telemetry", post(misc::telemetry))
        .route("/health", get(misc::health))
}

/// The complete router.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let max_body = state.config.max_body_bytes;
    // The register limit only ever tightens the general one.
    let max_register = state.config.max_register_body_bytes.min(max_body);
    Router::new()
        .nest("/v1", v1(max_register))
        .nest("/api/v1", v1(max_register))
        .route("/iicp/health", get(misc::health))
        .route("/health", get(misc::health))
        .route("/metrics", get(metrics))
        .fallback(crate::server::fallback::not_found)
        .method_not_allowed_fallback(crate::server::fallback::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(crate::server::request::BodyLimit(max_body)))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts the lifecycle and discover requests by status class and times
/// discover, around everything else (body limits and extraction included).
async fn count(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(route) = Route::of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    st.metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics`: the directory's counters in the Prometheus text format
/// 0.0.4. Open like `/health`: counts and node totals, no node id,
/// endpoint, token or queried intent.
async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let body = st.metrics.encode(st.registry.counts(st.clock.now_ms()));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::server::metrics::CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}
