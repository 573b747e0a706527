//! The directory's HTTP routes, served under both `/v1` and `/api/v1`
//! (PROTOCOL.md §1.1), with health at the root.

mod discovery;
mod lifecycle;
mod misc;
mod tokens;

use super::DirectoryConfig;
use super::clock::Clock;
use super::rate_limit::RateLimiter;
use super::registry::Registry;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// Shared state of every handler.
#[derive(Debug)]
pub(crate) struct AppState {
    pub registry: Registry,
    pub config: DirectoryConfig,
    pub register_limiter: RateLimiter,
    pub clock: Arc<dyn Clock>,
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
        .fallback(crate::server::fallback::not_found)
        .method_not_allowed_fallback(crate::server::fallback::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(crate::server::request::BodyLimit(max_body)))
        .with_state(state)
}
