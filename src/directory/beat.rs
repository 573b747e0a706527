//! The rules of one heartbeat applied to a node's record (PROTOCOL.md
//! §1.4): the challenge answer, the storage budget, backend state and
//! metrics batches. Pure functions; the registry calls them under its lock.

use super::record::NodeRecord;
use crate::server::api_error::ApiError;
use crate::wire::heartbeat::verify_challenge_response;
use crate::wire::{HeartbeatRequest, RegisterRequest};

/// Most task outcomes one heartbeat may report.
const METRICS_CAP: u64 = 1000;
/// Largest reputation gain per heartbeat, and per hour (§1.4).
const GAIN_PER_HEARTBEAT: f64 = 0.10;
const GAIN_PER_HOUR: f64 = 0.20;
const HOUR_MS: u64 = 3_600_000;

/// Checks the heartbeat's `challenge_response`. Once a PONG carried a
/// challenge, the next heartbeat must answer it (or the one before it, when
/// a PONG was lost); a missing or wrong answer is 401 `challenge_failed`,
/// and the node registers again (which resets the challenge). Before the
/// first challenge of a registration there is nothing to answer, and an
/// answer is ignored: the Python SDK keeps answering its last challenge
/// after it registers again, and refusing that would make it loop.
pub(super) fn check_challenge(record: &NodeRecord, answer: Option<&str>) -> Result<(), ApiError> {
    let issued = [&record.challenge, &record.previous_challenge];
    let ok = match answer {
        _ if record.challenge.is_none() => true,
        Some(answer) => issued
            .into_iter()
            .flatten()
            .any(|c| verify_challenge_response(&record.hmac_key, c, answer)),
        None => false,
    };
    if ok {
        return Ok(());
    }
    let message = if answer.is_some() {
        "challenge_response does not match the last challenge; register again"
    } else {
        "challenge_response is required: the last PONG carried a challenge; register again"
    };
    Err(ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "challenge_failed",
        message,
    ))
}

/// Bytes a registration takes once stored (its JSON form).
pub(crate) fn registration_bytes(req: &RegisterRequest) -> usize {
    serde_json::to_vec(req).map_or(usize::MAX, |v| v.len())
}

/// Bytes the heartbeat-updated fields of a record take (JSON-sized).
pub(super) fn heartbeat_bytes(
    health_models: Option<&Vec<String>>,
    backend_state: Option<&str>,
    metrics_batch: Option<&str>,
) -> usize {
    let models: usize = health_models.map_or(0, |m| m.iter().map(|s| s.len() + 3).sum());
    models + backend_state.map_or(0, str::len) + metrics_batch.map_or(0, str::len)
}

/// 413 `payload_too_large` for a node over its storage budget.
pub(super) fn over_budget(max: usize) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "this directory stores at most {max} bytes per node (registration and heartbeat fields together)"
        ),
    )
}

/// Backend state from a heartbeat: `backend_stability.state`, a top-level
/// `backend_state`, or `status: "draining"`.
pub(super) fn backend_state(hb: &HeartbeatRequest) -> Option<String> {
    hb.extra
        .get("backend_stability")
        .and_then(|b| b.get("state"))
        .or_else(|| hb.extra.get("backend_state"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            hb.status
                .clone()
                .filter(|s| s == "draining" || s == "unavailable")
        })
}

/// Applies a metrics batch once (deduplicated by `metrics_batch_id`) and
/// returns the id to echo in `metrics_batch_accepted`.
pub(super) fn apply_metrics(
    record: &mut NodeRecord,
    hb: &HeartbeatRequest,
    now_ms: u64,
) -> Option<String> {
    let metrics = hb.metrics.as_ref()?;
    let batch = hb.metrics_batch_id.clone();
    if batch.is_some() && batch == record.last_metrics_batch {
        return batch; // already applied: acknowledge again, change nothing
    }
    let success = metrics.tasks_success.min(METRICS_CAP);
    let failed = metrics.tasks_failed.min(METRICS_CAP);
    let timeouts = metrics
        .extra
        .get("tasks_timeout")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
        .min(METRICS_CAP);
    if now_ms.saturating_sub(record.rep_window_start_ms) >= HOUR_MS {
        record.rep_window_start_ms = now_ms;
        record.rep_window_gain = 0.0;
    }
    let gain = (0.01 * success as f64)
        .min(GAIN_PER_HEARTBEAT)
        .min((GAIN_PER_HOUR - record.rep_window_gain).max(0.0));
    record.rep_window_gain += gain;
    let loss = 0.05 * failed as f64 + 0.10 * timeouts as f64;
    record.reputation = (record.reputation + gain - loss).clamp(0.0, 1.0);
    record.completed_tasks += success;
    record.failed_tasks += failed + timeouts;
    record.last_metrics_batch = batch.clone();
    batch
}
