//! HTTP long-poll workers (browser workers and others that can only speak
//! HTTP), in the same registry and under the same rules as TCP workers:
//!
//! - `POST /v1/relay/bind {worker_id, intent, models[], bind_ticket?}` →
//!   200 `{session_token, poll_timeout_s, worker_endpoint_path}`; 401
//!   `IICP-E040` (ticket missing or invalid), 409 `IICP-E040` (replayed),
//!   409 `IICP-E038` (alive session), 429 / 503 `IICP-E039` (rate,
//!   capacity), 422 for a malformed body;
//! - `GET /v1/relay/pull` (Bearer session_token) → 200 `{call_id, task}`,
//!   or 204 after `poll_timeout` with no call;
//! - `POST /v1/relay/result {call_id, result | event, http_status?}` → 204
//!   (`event`: a lifecycle step; only a final one answers the call;
//!   `http_status`, an addition of ours, is the status of `result`);
//! - `POST /v1/relay/unbind` → 204.
//!
//! The session stays alive while the worker pulls at least every
//! `silence_timeout`. Session tokens are 256 random bits, compared in
//! constant time and never logged; a missing or unknown one is 401
//! `IICP-E021`.

use super::Relay;
use super::admission::{BindRequest, Refusal};
use super::forward::{json_response, object_body};
use super::reply::WorkerAnswer;
use super::sessions::{Link, PollLink, Session};
use crate::Secret;
use crate::server::api_error::ApiError;
use crate::server::request::{BodyError, RawBody, bearer};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

fn bad_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "IICP-E021",
        "invalid or missing relay session token",
    )
}

/// The long-poll session whose token the request bears.
fn authed(relay: &Relay, headers: &HeaderMap) -> Result<Arc<Session>, ApiError> {
    let token = bearer(headers).ok_or_else(bad_token)?;
    relay
        .registry
        .by_token(token.expose())
        .ok_or_else(bad_token)
}

pub(super) async fn bind(
    State(relay): State<Arc<Relay>>,
    peer: Peer,
    body: Result<RawBody, BodyError>,
) -> Response {
    let source = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| {
        p.0.0.ip().to_canonical()
    });
    match bind_session(&relay, source, body).await {
        Ok(answer) => json_response(200, &answer),
        Err(e) => e.into_response(),
    }
}

async fn bind_session(
    relay: &Relay,
    source: IpAddr,
    body: Result<RawBody, BodyError>,
) -> Result<Value, ApiError> {
    let body = object_body(body)?;
    let request = BindRequest::from_json(&body).map_err(|r| r.to_api_error())?;
    let refused = |r: Refusal| {
        tracing::info!(worker_id = %request.worker_id, source = %source, reason = %r.reason(), "relay: bind refused");
        r.to_api_error()
    };
    let claims = relay
        .tickets
        .check(request.ticket.as_ref(), &request.worker_id)
        .await
        .map_err(refused)?;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let (queue, pulls) = mpsc::channel(relay.limits.max_pending_calls);
    let link = Link::Poll(PollLink {
        token: Secret::new(token.clone()),
        queue,
        pulls: tokio::sync::Mutex::new(pulls),
    });
    let session = Session::new(&request, source, link, &relay.limits);
    let session = relay
        .registry
        .admit(session, claims.as_ref(), &relay.tickets)
        .map_err(refused)?;
    tracing::info!(
        worker_id = %session.worker_id,
        source = %source,
        transport = "http_poll",
        ticket = claims.is_some(),
        "relay: worker bound"
    );
    Ok(json!({
        "session_token": token,
        "poll_timeout_s": relay.limits.poll_timeout.as_secs_f64().ceil() as u64,
        "worker_endpoint_path": format!("/v1/relay-for/{}", session.worker_id),
    }))
}

pub(super) async fn pull(State(relay): State<Arc<Relay>>, headers: HeaderMap) -> Response {
    let session = match authed(&relay, &headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Link::Poll(poll) = &session.link else {
        return bad_token().into_response();
    };
    session.touch();
    let deadline = Instant::now() + relay.limits.poll_timeout;
    let no_call = || {
        session.touch();
        StatusCode::NO_CONTENT.into_response()
    };
    // One pull at a time takes calls; a second one waits its turn.
    let Ok(mut calls) = tokio::time::timeout_at(deadline, poll.pulls.lock()).await else {
        return no_call();
    };
    loop {
        tokio::select! {
            () = session.ended.cancelled() => return bad_token().into_response(),
            next = tokio::time::timeout_at(deadline, calls.recv()) => match next {
                // Calls whose consumer stopped waiting are skipped.
                Ok(Some(call)) if session.is_pending(&call.call_id) => {
                    session.touch();
                    return json_response(200, &json!({"call_id": call.call_id, "task": call.task}));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return no_call(),
            },
        }
    }
}

pub(super) async fn result(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    body: Result<RawBody, BodyError>,
) -> Response {
    let session = match authed(&relay, &headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    session.touch();
    let mut body = match object_body(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let call_id = body
        .get("call_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let status = body
        .get("http_status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s));
    let result = body
        .get_mut("result")
        .map(Value::take)
        .filter(|r| !r.is_null());
    let event = body
        .get_mut("event")
        .map(Value::take)
        .filter(Value::is_object);
    let answer = match (call_id, result, event) {
        (Some(id), Some(result), _) => Some((
            id,
            WorkerAnswer {
                status,
                body: Some(result),
                error: None,
            },
        )),
        (Some(id), None, Some(mut event)) => {
            if event.get("is_final").and_then(Value::as_bool) == Some(true) {
                let error = event.get("error").map(|e| {
                    let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
                    (text("code"), text("message"))
                });
                let result = event
                    .get_mut("result")
                    .map(Value::take)
                    .filter(|r| !r.is_null());
                Some((
                    id,
                    WorkerAnswer {
                        status,
                        body: result,
                        error,
                    },
                ))
            } else {
                None // a partial step: not relayed
            }
        }
        _ => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "call_id and result (or event) are required",
            )
            .into_response();
        }
    };
    if let Some((call_id, answer)) = answer {
        session.resolve(&call_id, answer);
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn unbind(State(relay): State<Arc<Relay>>, headers: HeaderMap) -> Response {
    let session = match authed(&relay, &headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if relay.registry.remove(&session) {
        tracing::info!(
            worker_id = %session.worker_id,
            source = %session.source,
            transport = "http_poll",
            why = "unbind",
            "relay: worker unbound"
        );
    }
    StatusCode::NO_CONTENT.into_response()
}
