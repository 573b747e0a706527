//! The consumers' side of the relay, on the node's own HTTP port:
//!
//! - `POST /v1/relay-for/{worker_id}/v1/task`: the body (the consumer's
//!   whole task envelope, at most the node's `max_body_bytes`, else 413)
//!   goes to the worker as one CALL (with the consumer's bearer token and
//!   trace id); the worker's answer comes back with its status. 404
//!   `IICP-E030` when no alive session holds `worker_id`, 502 `IICP-E031`
//!   when the session ends first, 504 `task_timeout` when the deadline (the
//!   task's `constraints.timeout_ms`, else the node's default task timeout,
//!   at most `max_call_timeout`) passes, and the call is forgotten then.
//! - `GET /v1/relay-for/{worker_id}/iicp/health`: the bound worker's health
//!   as the relay sees it (the directory's liveness probe hits it), or 404
//!   `IICP-E030`.
//! - `POST /v1/relay {target_node_id, task}`: the same forward for a bound
//!   worker named in the body (404 `IICP-E030` otherwise).
//!
//! CX passes through untouched: the envelope is forwarded as it came and a
//! complete answer as the worker sent it. Neither is ever logged.

use super::Relay;
use super::poll;
use super::reply;
use super::sessions::{CallError, CallMeta, Session};
use crate::Secret;
use crate::server::api_error::ApiError;
use crate::server::request::{BodyError, RawBody, bearer, decode_json};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The relay's routes, with their state.
pub(super) fn routes(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/v1/relay-for/{worker_id}/v1/task", post(relay_for_task))
        .route(
            "/v1/relay-for/{worker_id}/iicp/health",
            get(relay_for_health),
        )
        .route("/v1/relay", post(relay_task))
        .route("/v1/relay/bind", post(poll::bind))
        .route("/v1/relay/pull", get(poll::pull))
        .route("/v1/relay/result", post(poll::result))
        .route("/v1/relay/unbind", post(poll::unbind))
        .with_state(relay)
}

/// 404 `IICP-E030`.
pub(super) fn unknown_worker() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "IICP-E030",
        "no alive relay session for this worker",
    )
}

/// A JSON object from a request body, or the JSON error to answer.
pub(super) fn object_body(body: Result<RawBody, BodyError>) -> Result<Value, ApiError> {
    let RawBody(bytes) = body.map_err(ApiError::from)?;
    let value: Value = decode_json(&bytes).map_err(|r| {
        ApiError::new(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
            "validation_error",
            r.message,
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::validation("invalid body: expected a JSON object"));
    }
    Ok(value)
}

async fn relay_for_task(
    State(relay): State<Arc<Relay>>,
    Path(worker_id): Path<String>,
    headers: HeaderMap,
    body: Result<RawBody, BodyError>,
) -> Response {
    let task = match object_body(body) {
        Ok(task) => task,
        Err(e) => return e.into_response(),
    };
    forward(&relay, &worker_id, task, &headers).await
}

async fn relay_task(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    body: Result<RawBody, BodyError>,
) -> Response {
    let mut body = match object_body(body) {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let target = body
        .get("target_node_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let task = body
        .get_mut("task")
        .map(Value::take)
        .filter(Value::is_object);
    let (Some(target), Some(task)) = (target.filter(|t| !t.is_empty()), task) else {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IICP-E000",
            "target_node_id (a string) and task (an object) are required",
        )
        .into_response();
    };
    forward(&relay, &target, task, &headers).await
}

/// One consumer's task to a bound worker, and the worker's answer.
async fn forward(relay: &Relay, worker_id: &str, task: Value, headers: &HeaderMap) -> Response {
    let Some(session) = relay.registry.get(worker_id) else {
        return unknown_worker().into_response();
    };
    relay.forwarded.inc();
    let timeout = deadline_of(&task, relay.default_timeout, relay.limits.max_call_timeout);
    let task_id = task
        .get("task_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let meta = CallMeta {
        auth_token: bearer(headers).or_else(|| {
            headers
                .get("x-iicp-consumer-token")
                .and_then(|v| v.to_str().ok())
                .map(Secret::new)
        }),
        trace_id: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id),
    };
    match session.call(task, meta, Instant::now() + timeout).await {
        Ok(answer) => {
            let (status, body) = reply::render(answer, &task_id, &session.worker_id);
            json_response(status, &body)
        }
        Err(e) => call_error(e, &session, timeout).into_response(),
    }
}

/// The error answer for a call that got no answer.
pub(super) fn call_error(e: CallError, session: &Session, timeout: Duration) -> ApiError {
    match e {
        CallError::Busy => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "IICP-E021",
            "too many tasks wait for this worker; retry later",
        )
        .retry_after(1),
        CallError::Gone => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "IICP-E031",
            format!(
                "the relay session of worker {} ended before it answered",
                session.worker_id
            ),
        ),
        CallError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "task_timeout",
            format!(
                "the worker did not answer within {} ms",
                timeout.as_millis()
            ),
        ),
    }
}

/// A JSON answer with this status.
pub(super) fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// How long the consumer waits: `constraints.timeout_ms` (when positive),
/// else the default, at most `max`.
fn deadline_of(task: &Value, default: Duration, max: Duration) -> Duration {
    task.pointer("/constraints/timeout_ms")
        .and_then(Value::as_u64)
        .filter(|ms| *ms > 0)
        .map_or(default, Duration::from_millis)
        .min(max)
}

/// The 16-byte trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn trace_id(traceparent: &str) -> Option<[u8; 16]> {
    let id = traceparent.trim().split('-').nth(1)?;
    let bytes = hex::decode(id).ok()?;
    <[u8; 16]>::try_from(bytes).ok().filter(|b| b != &[0; 16])
}

async fn relay_for_health(
    State(relay): State<Arc<Relay>>,
    Path(worker_id): Path<String>,
) -> Response {
    let Some(session) = relay.registry.get(&worker_id) else {
        return unknown_worker().into_response();
    };
    json_response(
        200,
        &json!({
            "status": "ok",
            "node_id": session.worker_id,
            "via_relay": true,
            "available": true,
            "models": session.models,
            "model": session.models.first(),
            "intent": session.intent,
            "relay_node_id": relay.identity.borrow().clone(),
            "transport": match session.link {
                super::sessions::Link::Tcp { .. } => "tcp",
                super::sessions::Link::Poll(_) => "http_poll",
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_task_within_the_cap() {
        let d = Duration::from_secs(60);
        let max = Duration::from_secs(120);
        assert_eq!(deadline_of(&json!({}), d, max), d);
        assert_eq!(
            deadline_of(&json!({"constraints": {"timeout_ms": 1500}}), d, max),
            Duration::from_millis(1500)
        );
        assert_eq!(
            deadline_of(&json!({"constraints": {"timeout_ms": 900_000}}), d, max),
            max
        );
        assert_eq!(
            deadline_of(&json!({"constraints": {"timeout_ms": 0}}), d, max),
            d
        );
    }

    #[test]
    fn trace_ids_come_from_traceparent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            hex::encode(trace_id(tp).unwrap()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(trace_id("garbage").is_none());
        assert!(trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
    }
}
