//! REGISTER, HEARTBEAT and DEREGISTER handlers (PROTOCOL.md §1.3-§1.5).

use super::super::reachability::{check_public, health_ok};
use super::super::validate::check_register;
use super::AppState;
use crate::server::api_error::ApiError;
use crate::server::request::{RawBody, bearer, client_ip, parse_json};
use crate::wire::{
    DeregisterAck, DeregisterRequest, HeartbeatRequest, NatType, Pong, RegisterAck, RegisterRequest,
};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

/// `POST /v1/register`, in the order of §1.3: rate limit, validation,
/// routability, ownership of an existing id, liveness, then commit.
pub(super) async fn register(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<RegisterAck>), ApiError> {
    let now = st.clock.now_ms();
    let ip = client_ip(&headers, peer);
    if !st.register_limiter.allow(ip, now) {
        return Err(ApiError::flat(
            StatusCode::TOO_MANY_REQUESTS,
            "IICP-E034",
            "too many registrations from this address; wait and retry",
        )
        .retry_after(60));
    }
    let req: RegisterRequest = parse_json(&body)?;
    check_register(&req)?;

    let pin = if st.config.local_mode {
        None
    } else {
        let addr = check_public(&req.endpoint, st.config.probe_timeout)
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "IICP-E035", e.to_string())
            })?;
        Some(addr)
    };

    if let Some(old) = req.node_id.as_deref().and_then(|id| st.registry.get(id)) {
        let proven = req
            .current_node_token
            .as_ref()
            .is_some_and(|t| old.token_matches(t));
        if !proven {
            if old.registration.cx_public_key != req.cx_public_key {
                return Err(ApiError::flat(
                    StatusCode::FORBIDDEN,
                    "IICP-E049",
                    "cx_public_key changed: re-register with current_node_token",
                ));
            }
            let moved = old.registration.endpoint != req.endpoint
                || old.registration.transport_endpoint != req.transport_endpoint
                || old.registration.relay_endpoint() != req.relay_endpoint();
            if moved && endpoint_alive(&st, &old.registration.endpoint).await {
                return Err(ApiError::flat(
                    StatusCode::FORBIDDEN,
                    "IICP-E050",
                    "routing fields changed while the registered endpoint still answers: \
                     re-register with current_node_token",
                ));
            }
        }
    }

    // A concrete NAT classification with a transport method means the
    // directory cannot dial the node anyway (§1.3 step 4).
    let nat_exempt =
        req.nat_type.is_some_and(|n| n != NatType::Unknown) && req.transport_method.is_some();
    let reachable = if st.config.skip_liveness_check || nat_exempt {
        None
    } else if health_ok(&req.endpoint, pin, st.config.probe_timeout).await {
        Some(true)
    } else if st.config.local_mode
        && !st.config.require_local_liveness
        && is_local_endpoint(&req.endpoint)
    {
        // PROTOCOL.md §1.9 item 3: a local directory does not refuse loopback
        // nodes for the probe (the Python SDK registers before it listens).
        // The node stays out of discover until its first heartbeat.
        Some(false)
    } else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IICP-E036",
            format!(
                "endpoint did not answer GET /iicp/health with 2xx within {} ms",
                st.config.probe_timeout.as_millis()
            ),
        ));
    };

    let endpoint = req.endpoint.clone();
    let ack = st
        .registry
        .commit_registration(req, ip.to_string(), reachable, now);
    tracing::info!(node_id = %ack.node_id, %endpoint, recovered = ?ack.recovered, "node registered");
    Ok((StatusCode::CREATED, Json(ack)))
}

/// Whether an endpoint's host is a loopback or private address, or a
/// local-only name (never a public host).
fn is_local_endpoint(endpoint: &str) -> bool {
    use crate::wire::endpoint::{EndpointHost, classify_ip, classify_name, parse_endpoint};
    match parse_endpoint(endpoint).map(|p| p.host) {
        Ok(EndpointHost::Ip(ip)) => classify_ip(ip).is_some(),
        Ok(EndpointHost::Name(name)) => classify_name(&name).is_some(),
        Err(_) => false,
    }
}

/// Whether a previously registered endpoint still answers its health probe.
async fn endpoint_alive(st: &AppState, endpoint: &str) -> bool {
    if st.config.skip_liveness_check {
        return false;
    }
    let pin = if st.config.local_mode {
        None
    } else {
        match check_public(endpoint, st.config.probe_timeout).await {
            Ok(addr) => Some(addr),
            Err(_) => return false,
        }
    };
    health_ok(endpoint, pin, st.config.probe_timeout).await
}

fn require_bearer(headers: &HeaderMap) -> Result<crate::Secret, ApiError> {
    bearer(headers)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <node_token> is required"))
}

/// `POST /v1/heartbeat`.
pub(super) async fn heartbeat(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Pong>, ApiError> {
    let token = require_bearer(&headers)?;
    let hb: HeartbeatRequest = parse_json(&body)?;
    let interval = st.config.heartbeat_interval.as_millis() as u64;
    let pong = st
        .registry
        .heartbeat(&token, hb, st.clock.now_ms(), interval)?;
    Ok(Json(pong))
}

/// `DELETE /v1/register`.
pub(super) async fn deregister(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<DeregisterAck>, ApiError> {
    let token = require_bearer(&headers)?;
    let req: DeregisterRequest = parse_json(&body)?;
    st.registry.deregister(&token, &req.node_id)?;
    tracing::info!(node_id = %req.node_id, "node deregistered");
    Ok(Json(DeregisterAck { deregistered: true }))
}
