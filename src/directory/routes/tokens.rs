//! Signed directory tokens (PROTOCOL.md §1.7): the directory's public key,
//! and consumer tokens that let one registered node send tasks of an intent
//! to another for five minutes (checked by the target, §2.4), and relay bind
//! tickets that let a registered node bind once at a relay (§7.2).
//!
//! Nothing here logs a token or a bearer credential.

use super::AppState;
use crate::secret::Secret;
use crate::server::api_error::ApiError;
use crate::server::request::{RawBody, bearer};
use crate::token::{ALGORITHM, ConsumerClaims, DirectorySigningKey, RelayTicketClaims};
use crate::wire::IntentUrn;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// The header naming the calling node next to its bearer token.
const NODE_ID_HEADER: &str = "x-node-id";

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_configured",
        "this directory has no signing key and issues no tokens",
    )
}

fn signing_key(st: &AppState) -> Result<&DirectorySigningKey, ApiError> {
    st.config.signing_key.as_ref().ok_or_else(not_configured)
}

/// `GET /v1/directory-key`: the Ed25519 public key nodes verify consumer
/// tokens with; 503 `not_configured` without a key.
pub(super) async fn directory_key(
    State(st): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    let key = signing_key(&st)?;
    Ok(Json(json!({
        "public_key": key.public_key().to_hex(),
        "algorithm": ALGORITHM,
    })))
}

/// The node making the request. Two forms are accepted:
/// - `Authorization: Bearer <node_token>` with `X-Node-Id: <node_id>` (the
///   reference directory's form): the token must be that node's node token;
/// - `Authorization: Bearer <node_token>` alone (what the SDKs send): the
///   caller is the node holding that token.
///
/// Only node tokens count; a proxy token is not a node's credential here.
fn caller(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token: Secret = bearer(headers)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <node_token> is required"))?;
    let record = match headers.get(NODE_ID_HEADER) {
        Some(id) => id
            .to_str()
            .ok()
            .and_then(|id| st.registry.get(id.trim()))
            .filter(|r| r.token_matches(&token)),
        None => st
            .registry
            .find_by_token(&token)
            .filter(|r| r.token_matches(&token)),
    };
    record
        .map(|r| r.node_id)
        .ok_or_else(|| ApiError::unauthorized("the token is not the node token of this node"))
}

/// A required, non-empty string field of the request body.
fn string_field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Err(ApiError::validation(format!(
            "invalid body: missing field `{name}`"
        ))),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ApiError::validation(format!(
            "invalid body: `{name}` must be a non-empty string"
        ))),
    }
}

/// `POST /v1/consumer-token` with `{"target_node_id","intent"}`: a token
/// for the calling node to reach `target_node_id` with `intent` (an intent
/// URN, or `*` for any), valid for 300 s.
///
/// Order: 503 without a key, then 401 (before the body is read), then 422
/// for the body (malformed JSON included), then 404 for an unknown target.
pub(super) async fn consumer_token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = signing_key(&st)?;
    let caller = caller(&st, &headers)?;

    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::validation("malformed JSON body"))?;
    if !body.is_object() {
        return Err(ApiError::validation("the body must be a JSON object"));
    }
    let target = string_field(&body, "target_node_id")?;
    let intent = string_field(&body, "intent")?;
    if intent != "*" {
        IntentUrn::parse(intent).map_err(|e| {
            ApiError::validation(format!("intent must be an intent URN or \"*\": {e}"))
        })?;
    }
    if st.registry.get(target).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the target node is not registered",
        ));
    }

    let iat = st.clock.now_ms() / 1000;
    let claims = ConsumerClaims::new(&st.config.issuer, &caller, target, intent, iat);
    let token = key.sign_consumer_token(&claims);
    tracing::info!(caller = %caller, target = %target, intent = %intent, "consumer token issued");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "expires_at": claims.exp,
            "caller_node_id": caller,
            "target_node_id": target,
            "intent": intent,
        })),
    ))
}

/// `POST /v1/relay/ticket` with `{"relay_node_id"?}`: a single-use ticket
/// (its own random `jti`) for the calling node to bind at that relay, or at
/// any relay (`*`) when the field is absent, valid for 120 s.
///
/// Order as for consumer tokens: 503 without a key, 401 before the body is
/// read, 422 for the body. An empty body means "any relay". The relay named
/// need not be registered: the ticket only narrows where it can be used.
pub(super) async fn relay_ticket(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = signing_key(&st)?;
    let worker = caller(&st, &headers)?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::validation("malformed JSON body"))?
    };
    if !body.is_object() {
        return Err(ApiError::validation("the body must be a JSON object"));
    }
    let relay = match body.get("relay_node_id") {
        None | Some(Value::Null) => "*",
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.as_str(),
        Some(_) => {
            return Err(ApiError::validation(
                "invalid body: `relay_node_id` must be a string of 1-256 characters",
            ));
        }
    };
    let iat = st.clock.now_ms() / 1000;
    let claims = RelayTicketClaims::new(&st.config.issuer, &worker, relay, iat);
    let ticket = key.sign_relay_ticket(&claims);
    tracing::info!(worker = %worker, relay = %relay, "relay bind ticket issued");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "ticket": ticket,
            "expires_at": claims.exp,
            "worker_node_id": worker,
            "relay_node_id": relay,
            "algorithm": ALGORITHM,
        })),
    ))
}
