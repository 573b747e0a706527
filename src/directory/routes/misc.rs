//! Health, the routes this directory does not serve (answered in JSON so
//! clients can tell "not configured" from "broken"), the reachability probe,
//! and the authenticated credit and telemetry boundaries.

use super::super::reachability::{check_public, tcp_reachable};
use super::AppState;
use crate::server::api_error::ApiError;
use crate::server::request::bearer;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /iicp/health` and `GET /health`.
pub(super) async fn health(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "ok": true,
        "status": "ok",
        "service": "iicp-node directory",
        "version": env!("CARGO_PKG_VERSION"),
        "local_mode": st.config.local_mode,
        "persistence": st.persistence(),
    }))
}

/// `POST /v1/dispatch/ticket`: ticketed routing is not offered; clients fall
/// back to discover on exactly this answer (PROTOCOL.md §1.9 item 5).
pub(super) async fn dispatch_ticket() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_configured",
        "this directory does not issue dispatch tickets; use GET /v1/discover",
    )
}

#[derive(Deserialize)]
pub(super) struct ProbeQuery {
    host: Option<String>,
    port: Option<u16>,
}

/// `GET /v1/probe?host&port`: can a public host:port be reached over TCP?
/// Loopback and private targets are refused even in local mode: the probe
/// exists to test public reachability and must not become an SSRF tool.
pub(super) async fn probe(
    State(st): State<Arc<AppState>>,
    q: Result<Query<ProbeQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::validation(format!("invalid query: {}", e.body_text())))?;
    let host = q
        .host
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::validation("host is required"))?;
    let port = q
        .port
        .filter(|p| *p != 0)
        .ok_or_else(|| ApiError::validation("port is required"))?;
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let addr = check_public(
        &format!("http://{bracketed}:{port}"),
        st.config.probe_timeout,
    )
    .await
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "IICP-E035", e.to_string()))?;
    let rtt = tcp_reachable(addr, st.config.probe_timeout).await;
    Ok(Json(json!({
        "host": host,
        "port": port,
        "reachable": rtt.is_some(),
        "latency_ms": rtt.map(|d| d.as_millis() as u64),
    })))
}

fn authenticate(st: &AppState, headers: &HeaderMap, code: &str) -> Result<(), ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            code,
            "Authorization: Bearer <token> is required",
        )
    })?;
    st.registry
        .find_by_token(&token)
        .map(|_| ())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, code, "token is not valid"))
}

/// `/v1/credits/*`: authenticated first (401 before any body is read), then
/// 501, because the local directory keeps no credit ledger.
pub(super) async fn credits(State(st): State<Arc<AppState>>, headers: HeaderMap) -> ApiError {
    match authenticate(&st, &headers, "unauthorized") {
        Err(e) => e,
        Ok(()) => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "this directory keeps no credit ledger",
        ),
    }
}

/// `POST /v1/telemetry`: needs a node or proxy token (`IICP-E032`), then 501.
pub(super) async fn telemetry(State(st): State<Arc<AppState>>, headers: HeaderMap) -> ApiError {
    match authenticate(&st, &headers, "IICP-E032") {
        Err(e) => e,
        Ok(()) => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "this directory does not collect telemetry",
        ),
    }
}
