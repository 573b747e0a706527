//! DISCOVER, BOOTSTRAP and the node look-ups (PROTOCOL.md §1.6, §1.8).

use super::super::ranking::EligibilityQuery;
use super::super::registry::DiscoverFilter;
use super::AppState;
use crate::server::api_error::ApiError;
use crate::server::request::bearer;
use crate::wire::discover::clamp_limit;
use crate::wire::{Bootstrap, DiscoverQuery, IntentUrn, NodeList, PeerInfo, check_intent_policy};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// `Cache-Control` of discover answers (DIR-DISC-08).
const DISCOVER_CACHE_CONTROL: &str = "public, max-age=5, s-maxage=10, stale-while-revalidate=5";
/// Route fields removed from the `view=public` projection.
const ROUTE_FIELDS: &[&str] = &[
    "node_id",
    "endpoint",
    "transport_endpoint",
    "transport_metadata",
];

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::validation(format!("invalid query: {}", e.body_text())))
}

/// `GET /v1/discover`.
pub(super) async fn discover(
    State(st): State<Arc<AppState>>,
    q: Result<Query<DiscoverQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let q = query(q)?;
    let intent = q
        .intent
        .as_deref()
        .ok_or_else(|| ApiError::validation("the intent query parameter is required"))?;
    if let Err(v) = check_intent_policy(intent) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            v.code(),
            v.to_string(),
        ));
    }
    IntentUrn::parse(intent).map_err(|e| ApiError::validation(e.to_string()))?;
    let min_reputation = q.min_reputation.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_reputation) {
        return Err(ApiError::validation("min_reputation must be within 0..1"));
    }
    let filter = DiscoverFilter {
        intent,
        region: q.region.as_deref().filter(|r| !r.is_empty()),
        eligibility: EligibilityQuery {
            model: q.model.as_deref().filter(|m| !m.is_empty()),
            min_reputation,
            qos: q.qos,
            enforce_qos_gates: st.config.enforce_probation,
        },
        limit: clamp_limit(q.limit) as usize,
    };
    let nodes = st.registry.discover(&filter, st.clock.now_ms());
    let public = q.view.as_deref() == Some("public");
    let query_ms = started.elapsed().as_millis() as u64;
    let list = NodeList {
        count: nodes.len(),
        relay_available: nodes.iter().any(|n| n.relay_capable == Some(true)),
        query_ms: Some(query_ms),
        view: Some(if public { "public" } else { "dispatch" }.into()),
        data_class: Some(
            if public {
                "public_presentation"
            } else {
                "route_dispatch"
            }
            .into(),
        ),
        route_fields_present: Some(!public),
        nodes,
        extra: Default::default(),
    };
    let mut body = serde_json::to_value(&list).unwrap_or(Value::Null);
    if public {
        for node in body["nodes"].as_array_mut().into_iter().flatten() {
            if let Some(obj) = node.as_object_mut() {
                ROUTE_FIELDS.iter().for_each(|f| {
                    obj.remove(*f);
                });
            }
        }
    }
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(DISCOVER_CACHE_CONTROL),
    );
    headers.insert(
        "x-iicp-discover-data-class",
        HeaderValue::from_static(if public {
            "public_presentation"
        } else {
            "route_dispatch"
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("discover;dur={query_ms}")) {
        headers.insert("server-timing", v);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct LimitQuery {
    limit: Option<i64>,
}

/// `GET /v1/bootstrap?limit=5` (max 50): live nodes, newest first.
pub(super) async fn bootstrap(
    State(st): State<Arc<AppState>>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Bootstrap>, ApiError> {
    let limit = query(q)?.limit.unwrap_or(5).clamp(1, 50) as usize;
    let peers: Vec<PeerInfo> = st
        .registry
        .recent(st.clock.now_ms(), limit)
        .into_iter()
        .map(|r| PeerInfo {
            node_id: r.node_id,
            endpoint: r.registration.endpoint,
            region: r.registration.region.unwrap_or_default(),
            last_seen: None,
        })
        .collect();
    Ok(Json(Bootstrap {
        count: peers.len(),
        peers,
    }))
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("{what} is not registered"),
    )
}

/// `GET /v1/node/{id}`: the node object with all its capabilities.
pub(super) async fn node(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = st.registry.get(&id).ok_or_else(|| not_found("node"))?;
    let live = st.registry.is_live(&record, st.clock.now_ms());
    let info = record.to_node_info(if live { 1.0 } else { 0.0 }, live, None);
    let mut value = serde_json::to_value(info).unwrap_or(Value::Null);
    value["capabilities"] =
        serde_json::to_value(&record.registration.capabilities).unwrap_or_default();
    Ok(Json(value))
}

/// `GET /v1/registry/nodes/{id-or-prefix}`: 200 while a matching node is
/// live, 404 otherwise (nodes use it to notice they were dropped).
pub(super) async fn registry_node(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = st.clock.now_ms();
    let candidates = match st.registry.get(&id) {
        Some(exact) => vec![exact],
        None if id.len() >= 4 => st.registry.find_prefix(&id),
        None => vec![],
    };
    let record = candidates
        .into_iter()
        .find(|r| st.registry.is_live(r, now))
        .ok_or_else(|| not_found("no live node with that id or prefix"))?;
    let mut info = serde_json::to_value(record.to_node_info(1.0, true, None)).unwrap_or_default();
    info["status_summary"] = "available".into();
    Ok(Json(json!({ "node": info })))
}

/// `GET /v1/me`: who the bearer token belongs to.
pub(super) async fn me(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token = bearer(&headers)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <node_token> is required"))?;
    let by_header = headers
        .get("x-node-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| st.registry.get(id))
        .filter(|r| r.token_matches(&token));
    let record = by_header
        .or_else(|| st.registry.find_by_token(&token))
        .ok_or_else(|| ApiError::unauthorized("token is not valid"))?;
    Ok(Json(json!({
        "node_id": record.node_id,
        "observed_source_ip": record.observed_ip,
        "endpoint": record.registration.endpoint,
    })))
}
