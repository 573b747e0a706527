//! The state changes of one node's record that REGISTER and HEARTBEAT make
//! (PROTOCOL.md §1.3-§1.4): the record of an accepted registration with
//! fresh credentials, and a heartbeat applied. Pure functions of the
//! record, shared by the registry (memory and SQLite) and the replicas of a
//! PostgreSQL directory (`replica.rs`), which apply them to the database's
//! copy.

use super::beat::{
    apply_metrics, backend_state, check_challenge, heartbeat_bytes, over_budget, registration_bytes,
};
use super::record::{INITIAL_REPUTATION, NodeRecord, token_digest};
use crate::secret::Secret;
use crate::server::api_error::ApiError;
use crate::wire::{HeartbeatRequest, Pong, RegisterAck, RegisterRequest};

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

/// The record of a registration that passed every check, with fresh
/// credentials, and the answer that hands them out. A proven
/// re-registration passes the record it replaces as `previous`: its
/// reputation and task counts carry over.
pub(crate) fn new_record(
    req: RegisterRequest,
    node_id: String,
    recovered: bool,
    observed_ip: String,
    reachable: Option<bool>,
    now_ms: u64,
    previous: Option<&NodeRecord>,
) -> (NodeRecord, RegisterAck) {
    let node_token = Secret::new(random_hex(32));
    let proxy_token = Secret::new(random_hex(32));
    let hmac_key = Secret::new(random_hex(16));
    let record = NodeRecord {
        node_id: node_id.clone(),
        token_sha256: token_digest(&node_token),
        proxy_token_sha256: token_digest(&proxy_token),
        hmac_key: hmac_key.clone(),
        challenge: None,
        previous_challenge: None,
        registration_bytes: registration_bytes(&req),
        registration: req,
        observed_ip: observed_ip.clone(),
        registered_at_ms: now_ms,
        last_seen_ms: now_ms,
        load: 0.0,
        active_jobs: 0,
        available: true,
        health_models: None,
        backend_state: None,
        reputation: previous.map_or(INITIAL_REPUTATION, |p| p.reputation),
        completed_tasks: previous.map_or(0, |p| p.completed_tasks),
        failed_tasks: previous.map_or(0, |p| p.failed_tasks),
        last_metrics_batch: previous.and_then(|p| p.last_metrics_batch.clone()),
        rep_window_start_ms: previous.map_or(now_ms, |p| p.rep_window_start_ms),
        rep_window_gain: previous.map_or(0.0, |p| p.rep_window_gain),
        awaiting_first_heartbeat: reachable == Some(false),
        change_seq: 0,
        derived: Default::default(),
    };
    let ack = RegisterAck {
        node_id,
        node_token: Some(node_token),
        token: None,
        proxy_token: Some(proxy_token),
        node_hmac_key: Some(hmac_key),
        expires_at: Some(serde_json::Value::Null),
        jwt_token: None,
        jwt_expires_at: None,
        directory: Some("iicp-node-directory".into()),
        observed_source_ip: Some(observed_ip),
        recovered: Some(recovered),
        lifetime_jobs: Some(record.completed_tasks),
        public_reachable: reachable,
        message_type: Some("ACK".into()),
        extra: Default::default(),
    };
    (record, ack)
}

/// Applies a heartbeat from the holder of `token` to `record`: the token,
/// the challenge and the node's storage budget are checked first, and
/// nothing changes when one fails.
pub(crate) fn apply_heartbeat(
    record: &mut NodeRecord,
    token: &Secret,
    hb: &HeartbeatRequest,
    now_ms: u64,
    next_heartbeat_ms: u64,
    max_node_bytes: usize,
) -> Result<Pong, ApiError> {
    if !record.token_matches(token) {
        return Err(ApiError::unauthorized(
            "node token is not valid for this node",
        ));
    }
    check_challenge(record, hb.challenge_response.as_deref())?;
    let backend_state = backend_state(hb);
    let stored = record.registration_bytes
        + heartbeat_bytes(
            hb.health_models.as_ref().or(record.health_models.as_ref()),
            backend_state.as_deref(),
            hb.metrics_batch_id.as_deref(),
        );
    if stored > max_node_bytes {
        return Err(over_budget(max_node_bytes));
    }
    record.last_seen_ms = now_ms;
    record.awaiting_first_heartbeat = false;
    record.available = hb.available.unwrap_or(true);
    if let Some(load) = hb.load.filter(|l| l.is_finite()) {
        record.load = load.clamp(0.0, 1.0);
    }
    if let Some(jobs) = hb.active_jobs {
        record.active_jobs = jobs;
    }
    record.backend_state = backend_state;
    if let Some(models) = &hb.health_models {
        record.health_models = Some(models.clone());
    }
    let accepted = apply_metrics(record, hb, now_ms);
    record.previous_challenge = record.challenge.take();
    let challenge = random_hex(16);
    record.challenge = Some(challenge.clone());
    Ok(Pong {
        ok: true,
        next_heartbeat_ms,
        reputation_score: Some(record.reputation),
        reputation_model: Some("outcome-v2".into()),
        reputation_epoch: Some(serde_json::Value::from(1)),
        metrics_batch_accepted: accepted,
        challenge: Some(challenge),
        free_credits_awarded: None,
        extra: Default::default(),
    })
}
