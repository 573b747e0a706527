//! `POST /v1/peers` (PROTOCOL.md §8), served on the node's HTTP port when
//! the mesh is on (404 otherwise: the route does not exist).
//!
//! In order: the per-source rate limit (429 with `Retry-After`, before the
//! body is read), the body (at most [`MAX_BODY_BYTES`], 413 above), the
//! signature when the node has a gossip key (401 `IICP-E012`), the JSON
//! (400 malformed, 422 `known_peers` not a list). Only the first
//! [`MAX_ENTRIES_READ`](super::wire::MAX_ENTRIES_READ) entries are read;
//! the rest are ignored, not refused, so a peer with a big cache still gets
//! its exchange. The answer is `{"peers":[…]}`: this node and its freshest
//! peers, at most [`MAX_REPLY`](super::cache::MAX_REPLY).

use super::cache::{MAX_NEW_PER_EXCHANGE, Source};
use super::wire::ExchangeBody;
use super::{Mesh, sign};
use crate::server::api_error::ApiError;
use crate::server::request::{BodyLimit, RawBody, parse_json};
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// The largest exchange body read (413 above).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The route, with its own body limit (at most the node's task limit).
pub(crate) fn router(mesh: Arc<Mesh>, node_body_limit: usize) -> Router {
    let limit = MAX_BODY_BYTES.min(node_body_limit);
    Router::new()
        .route("/v1/peers", post(peers))
        .with_state(mesh)
        // Applied to this route only, inside the node's own (larger) limit.
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
}

async fn peers(
    State(mesh): State<Arc<Mesh>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    req: Request,
) -> Response {
    let from = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip());
    if let Err(wait) = mesh.limit.take(from, Instant::now()) {
        tracing::debug!(%from, "mesh exchange refused: rate limited");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many peer exchanges from this address",
        )
        .retry_after(wait)
        .close_connection()
        .into_response();
    }
    let signature = req
        .headers()
        .get(sign::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match RawBody::from_request(req, &()).await {
        Ok(RawBody(body)) => body,
        Err(e) => return e.into_response(),
    };
    if let Some(key) = &mesh.key {
        if !sign::verify(key, &body, signature.as_deref()) {
            tracing::debug!(%from, signed = signature.is_some(), "mesh exchange refused: bad signature");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "IICP-E012",
                "missing or invalid X-IICP-Signature",
            )
            .into_response();
        }
    }
    let parsed: ExchangeBody = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let entries = &parsed.known_peers;
    let (taken, added) = mesh.take_in(&entries.entries, Source::Gossip, MAX_NEW_PER_EXCHANGE);
    tracing::debug!(
        %from,
        received = entries.entries.len() + entries.skipped,
        taken,
        added,
        cached = mesh.cache.len(),
        "mesh exchange received"
    );
    axum::Json(json!({ "peers": mesh.view() })).into_response()
}
