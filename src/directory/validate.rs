//! Validation of REGISTER bodies (PROTOCOL.md §1.3 step 2). Shape errors are
//! caught by serde; this checks ranges, patterns, sizes and the policy guard.

use crate::server::api_error::ApiError;
use crate::wire::endpoint::{EndpointError, parse_endpoint, parse_url_with_schemes};
use crate::wire::{HeartbeatRequest, RegisterRequest, check_intent_policy};
use axum::http::StatusCode;
use regex::Regex;
use std::collections::HashSet;
use std::sync::LazyLock;

static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$").expect("static regex"));
static IMPLEMENTATION_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9@][A-Za-z0-9._/@+-]{0,63}$").expect("static regex"));
static VARIANT_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._:-]{1,64}$").expect("static regex"));

/// Schemes a `transport_metadata.relay_endpoint` may use.
const RELAY_SCHEMES: &[&str] = &["http", "https", "ws", "wss", "iicp", "iicpsec"];

const LIMIT_UNITS: &[&str] = &["tokens", "items", "bytes", "milliseconds", "dimensions"];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::validation(message)
}

/// At most 64 unique strings of 1–255 characters.
fn check_string_list(field: &str, list: &[String]) -> Result<(), ApiError> {
    if list.len() > 64 {
        return Err(invalid(format!("{field}: at most 64 entries")));
    }
    let mut seen = HashSet::new();
    for s in list {
        if s.is_empty() || s.chars().count() > 255 {
            return Err(invalid(format!(
                "{field}: entries must be 1-255 characters"
            )));
        }
        if !seen.insert(s) {
            return Err(invalid(format!("{field}: duplicate entry")));
        }
    }
    Ok(())
}

/// Checks a node id (≤ 36 chars of `[A-Za-z0-9._:-]`, alphanumeric first).
pub(crate) fn check_node_id(node_id: &str) -> Result<(), ApiError> {
    if crate::wire::register::is_valid_node_id(node_id) {
        Ok(())
    } else {
        Err(invalid(
            "node_id: up to 36 characters of [A-Za-z0-9._:-], starting with a letter or digit",
        ))
    }
}

/// Every check of §1.3 step 2 that needs no network.
pub(crate) fn check_register(req: &RegisterRequest) -> Result<(), ApiError> {
    match parse_endpoint(&req.endpoint) {
        Ok(_) => {}
        Err(e @ EndpointError::Scheme(_)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IICP-E035",
                e.to_string(),
            ));
        }
        Err(e) => return Err(invalid(format!("endpoint: {e}"))),
    }
    if req.endpoint.len() > 2048 {
        return Err(invalid("endpoint: longer than 2048 characters"));
    }
    if req.capabilities.is_empty() {
        return Err(invalid("capabilities: at least one capability is required"));
    }
    if req.capabilities.len() > 64 {
        return Err(invalid("capabilities: at most 64 entries"));
    }
    let mut pairs = HashSet::new();
    for cap in &req.capabilities {
        if let Err(v) = check_intent_policy(cap.intent.as_str()) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                v.code(),
                v.to_string(),
            ));
        }
        // One intent may appear several times: one capability per input
        // modality group (a text and a vision model on one node). What must
        // be unique is an explicit variant id, and no capability may repeat.
        if let Some(variant) = cap.variant_id.as_deref() {
            if !pairs.insert((cap.intent.as_str(), variant)) {
                return Err(invalid("capabilities: duplicate (intent, variant_id)"));
            }
        }
        if req.capabilities.iter().filter(|c| *c == cap).count() > 1 {
            return Err(invalid("capabilities: duplicate capability"));
        }
        check_string_list("capabilities[].models", &cap.models)?;
        for (field, list) in [
            ("capabilities[].features", &cap.features),
            (
                "capabilities[].execution_capabilities",
                &cap.execution_capabilities,
            ),
            ("capabilities[].supported_profiles", &cap.supported_profiles),
        ] {
            check_string_list(field, list.as_deref().unwrap_or_default())?;
        }
        if cap.max_tokens == Some(0) {
            return Err(invalid("capabilities[].max_tokens: must be greater than 0"));
        }
        if cap.phase == Some(0) {
            return Err(invalid("capabilities[].phase: must be at least 1"));
        }
        if cap
            .version
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.chars().count() > 32)
        {
            return Err(invalid("capabilities[].version: 1-32 characters"));
        }
        if cap
            .variant_id
            .as_ref()
            .is_some_and(|v| !VARIANT_ID.is_match(v))
        {
            return Err(invalid(
                "capabilities[].variant_id: up to 64 of [A-Za-z0-9._:-]",
            ));
        }
        if let Some(profiles) = &cap.supported_profiles {
            if profiles.len() > 16 || profiles.iter().any(|p| !p.starts_with("urn:iicp:profile:")) {
                return Err(invalid(
                    "capabilities[].supported_profiles: at most 16, each urn:iicp:profile:…",
                ));
            }
        }
        if let Some(limits) = &cap.limits {
            if limits.len() > 32 {
                return Err(invalid("capabilities[].limits: at most 32 entries"));
            }
            let ok = limits.values().all(|l| {
                l.get("value").is_some_and(|v| v.is_number())
                    && l.get("unit")
                        .and_then(|u| u.as_str())
                        .is_some_and(|u| LIMIT_UNITS.contains(&u))
            });
            if !ok {
                return Err(invalid(
                    "capabilities[].limits: each is {value, unit} with unit tokens|items|bytes|milliseconds|dimensions",
                ));
            }
        }
    }
    if let Some(limits) = &req.limits {
        if !(1..=256).contains(&limits.max_concurrent) || limits.tokens_per_min == 0 {
            return Err(invalid(
                "limits: max_concurrent 1-256 and tokens_per_min > 0",
            ));
        }
    }
    if let Some(id) = &req.node_id {
        check_node_id(id)?;
    }
    if req.region.as_ref().is_some_and(|r| r.chars().count() > 64) {
        return Err(invalid("region: at most 64 characters"));
    }
    for (field, value) in [
        ("sdk_version", &req.sdk_version),
        ("sdk_compatibility_version", &req.sdk_compatibility_version),
        ("implementation_version", &req.implementation_version),
    ] {
        if value.as_ref().is_some_and(|v| !VERSION.is_match(v)) {
            return Err(invalid(format!(
                "{field}: must match ^[0-9A-Za-z][0-9A-Za-z._+-]{{0,31}}$"
            )));
        }
    }
    if let (Some(a), Some(b)) = (&req.sdk_version, &req.sdk_compatibility_version) {
        if a != b {
            return Err(invalid("sdk_version and sdk_compatibility_version differ"));
        }
    }
    if req
        .implementation_name
        .as_ref()
        .is_some_and(|n| !IMPLEMENTATION_NAME.is_match(n))
    {
        return Err(invalid(
            "implementation_name: must match ^[A-Za-z0-9@][A-Za-z0-9._/@+-]{0,63}$",
        ));
    }
    if let Some(te) = &req.transport_endpoint {
        if te.len() > 2048 || parse_url_with_schemes(te, &["iicp", "iicpsec"]).is_err() {
            return Err(invalid(
                "transport_endpoint: iicp://host:port or iicpsec://host:port \
                 (no credentials, query or fragment)",
            ));
        }
    }
    if let Some(relay) = req.relay_endpoint() {
        if relay.len() > 2048 || parse_url_with_schemes(relay, RELAY_SCHEMES).is_err() {
            return Err(invalid(
                "transport_metadata.relay_endpoint: scheme://host[:port][/path] with scheme \
                 http, https, ws, wss, iicp or iicpsec (no credentials, query or fragment)",
            ));
        }
    }
    if let Some(key) = &req.cx_public_key {
        if !key.algorithm.eq_ignore_ascii_case("x25519")
            || key.key.is_empty()
            || key.key.len() > 128
        {
            return Err(invalid("cx_public_key: an X25519 key is expected"));
        }
    }
    if let Some(p) = &req.pricing {
        if p.credit_cost_multiplier
            .is_some_and(|m| !(0.0..=1000.0).contains(&m))
        {
            return Err(invalid("pricing.credit_cost_multiplier: 0-1000"));
        }
        if p.pricing_model
            .as_deref()
            .is_some_and(|m| !["per_token", "per_request", "flat"].contains(&m))
        {
            return Err(invalid(
                "pricing.pricing_model: per_token, per_request or flat",
            ));
        }
    }
    if let Some(profiles) = &req.supported_receipt_profiles {
        if profiles.len() > 4 || profiles.iter().any(|p| p != "consumer_cosignature_v1") {
            return Err(invalid(
                "supported_receipt_profiles: only consumer_cosignature_v1",
            ));
        }
    }
    if req.availability.as_ref().is_some_and(|a| a.len() > 32) {
        return Err(invalid("availability: at most 32 windows"));
    }
    Ok(())
}

/// Longest `backend_state` (or `backend_stability.state`) a heartbeat may set.
const MAX_BACKEND_STATE_CHARS: usize = 64;
/// Longest `challenge_response` read (an HMAC-SHA256 in hex is 64).
const MAX_CHALLENGE_RESPONSE_CHARS: usize = 128;

/// Checks a HEARTBEAT body with the registration's rules for the fields
/// the directory keeps: `health_models` as a capability's `models` (at most
/// 64 unique strings of 1-255 characters), `metrics_batch_id` 1-64
/// printable ASCII characters (PROTOCOL.md §1.4), and bounded lengths for
/// `node_id`, `challenge_response` and the backend state.
pub(crate) fn check_heartbeat(hb: &HeartbeatRequest) -> Result<(), ApiError> {
    check_node_id(&hb.node_id)?;
    if let Some(models) = &hb.health_models {
        check_string_list("health_models", models)?;
    }
    if let Some(batch) = &hb.metrics_batch_id {
        if batch.is_empty()
            || batch.len() > 64
            || !batch.bytes().all(|b| (0x20..=0x7e).contains(&b))
        {
            return Err(invalid("metrics_batch_id: 1-64 printable ASCII characters"));
        }
    }
    if hb
        .challenge_response
        .as_ref()
        .is_some_and(|r| r.len() > MAX_CHALLENGE_RESPONSE_CHARS)
    {
        return Err(invalid("challenge_response: at most 128 characters"));
    }
    let states = [
        hb.extra
            .get("backend_stability")
            .and_then(|b| b.get("state")),
        hb.extra.get("backend_state"),
    ];
    for state in states.into_iter().flatten() {
        if state
            .as_str()
            .is_some_and(|s| s.chars().count() > MAX_BACKEND_STATE_CHARS)
        {
            return Err(invalid("backend_state: at most 64 characters"));
        }
    }
    Ok(())
}
