//! REGISTER, HEARTBEAT and DEREGISTER handlers (PROTOCOL.md §1.3-§1.5).

use super::super::rate_limit::Verdict;
use super::super::reachability::{LocalTarget, check_public, health_ok, local_target};
use super::super::validate::{check_heartbeat, check_register};
use super::AppState;
use crate::server::api_error::ApiError;
use crate::server::request::{RawBody, bearer, client_ip, parse_json};
use crate::wire::endpoint::{
    EndpointHost, ParsedEndpoint, classify_ip, classify_name, parse_endpoint,
};
use crate::wire::{
    DeregisterAck, DeregisterRequest, HeartbeatRequest, NatType, Pong, RegisterAck, RegisterRequest,
};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// `POST /v1/register`, in the order of §1.3: rate limit, validation and
/// size, room, routability (public mode) or the probe's allowed set (local
/// mode), liveness, then commit, where ownership of an existing id is
/// decided under the registry's lock.
///
/// Every refusal is logged at warn with its status, code, message, the
/// source address and the endpoint asked for (Debug-quoted and cut short: it
/// is the registrant's text), never a token: an operator sees why a node
/// does not appear. A rate-limited source is logged once per window.
pub(super) async fn register(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<RegisterAck>), ApiError> {
    let now = st.clock.now_ms();
    let ip = client_ip(&headers, peer, &st.config.trusted_proxies);
    if let Verdict::Refused { first } = st.register_limiter.check(ip, now) {
        st.metrics.rate_limited();
        let refusal = ApiError::flat(
            StatusCode::TOO_MANY_REQUESTS,
            "IICP-E034",
            "too many registrations from this address; wait and retry",
        )
        .retry_after(60);
        if first {
            log_refusal(&refusal, ip, None);
        }
        return Err(refusal);
    }
    let req: RegisterRequest =
        parse_json(&body).inspect_err(|refusal| log_refusal(refusal, ip, None))?;
    let endpoint = req.endpoint.clone();
    admit(&st, req, ip, now)
        .await
        .inspect_err(|refusal| log_refusal(refusal, ip, Some(&endpoint)))
}

/// Longest part of a refused registration's endpoint that is logged.
const LOGGED_ENDPOINT_CHARS: usize = 200;

fn log_refusal(refusal: &ApiError, source: IpAddr, endpoint: Option<&str>) {
    let endpoint: Option<String> =
        endpoint.map(|e| e.chars().take(LOGGED_ENDPOINT_CHARS).collect());
    tracing::warn!(
        status = refusal.status().as_u16(),
        code = refusal.code(),
        reason = ?refusal.message(),
        %source,
        endpoint = ?endpoint,
        "registration refused"
    );
}

/// A registration that passed the rate limit and parsed, checked and
/// committed.
async fn admit(
    st: &AppState,
    req: RegisterRequest,
    ip: IpAddr,
    now: u64,
) -> Result<(StatusCode, Json<RegisterAck>), ApiError> {
    check_register(&req)?;
    st.registry.check_registration_size(&req)?;
    if st.shared.is_none() {
        // On a shared database, room is checked when the node is stored.
        st.registry.ensure_room(&req, now)?;
    }
    let parsed = parse_endpoint(&req.endpoint)
        .map_err(|e| ApiError::validation(format!("endpoint: {e}")))?;

    // A concrete NAT classification with a transport method means the
    // directory cannot dial the node anyway (§1.3 step 4).
    let nat_exempt =
        req.nat_type.is_some_and(|n| n != NatType::Unknown) && req.transport_method.is_some();
    let probe = !st.config.skip_liveness_check && !nat_exempt;
    let timeout = st.config.probe_timeout;

    let pin = if !st.config.local_mode {
        let addr = check_public(&req.endpoint, timeout).await.map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "IICP-E035", e.to_string())
        })?;
        Some(addr)
    } else if probe {
        match local_target(&parsed, ip, &st.config.probe_allow, timeout).await {
            LocalTarget::Pinned(addr) => Some(addr),
            LocalTarget::Unresolved => None,
            LocalTarget::Outside => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "IICP-E035",
                    "endpoint resolves to an address this local directory does not probe \
                     (it probes loopback, the registrant's own address and the operator's \
                     --probe-allow ranges)",
                ));
            }
        }
    } else {
        None
    };

    let answered = match pin {
        Some(addr) if probe => health_ok(&parsed, addr, timeout).await,
        _ => false,
    };
    let reachable = if !probe {
        None
    } else if answered {
        Some(true)
    } else if st.config.local_mode
        && !st.config.require_local_liveness
        && is_local_endpoint(&parsed)
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
                timeout.as_millis()
            ),
        ));
    };

    let endpoint = req.endpoint.clone();
    let ack = match st.replica() {
        Some(replica) => {
            let evict_after = st.config.evict_after.as_millis() as u64;
            replica
                .register(req, ip.to_string(), reachable, now, evict_after)
                .await?
        }
        None => st
            .registry
            .commit_registration(req, ip.to_string(), reachable, now)?,
    };
    tracing::info!(node_id = %ack.node_id, %endpoint, recovered = ?ack.recovered, "node registered");
    Ok((StatusCode::CREATED, Json(ack)))
}

/// Whether an endpoint's host is a loopback or private address, or a
/// local-only name (never a public host).
fn is_local_endpoint(parsed: &ParsedEndpoint) -> bool {
    match &parsed.host {
        EndpointHost::Ip(ip) => classify_ip(*ip).is_some(),
        EndpointHost::Name(name) => classify_name(name).is_some(),
    }
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
    check_heartbeat(&hb)?;
    let interval = st.config.heartbeat_interval.as_millis() as u64;
    let now = st.clock.now_ms();
    let pong = match st.replica() {
        Some(replica) => {
            replica
                .heartbeat(&token, hb, now, interval, st.config.max_node_bytes)
                .await?
        }
        None => st.registry.heartbeat(&token, hb, now, interval)?,
    };
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
    match st.replica() {
        Some(replica) => replica.deregister(&token, &req.node_id).await?,
        None => st.registry.deregister(&token, &req.node_id)?,
    }
    tracing::info!(node_id = %req.node_id, "node deregistered");
    Ok(Json(DeregisterAck { deregistered: true }))
}
