//! The registry: every node's record, and the state changes of REGISTER,
//! HEARTBEAT and DEREGISTER (PROTOCOL.md §1.3-§1.5).
//!
//! All mutation happens here, under one lock, and is mirrored to the store.
//! Network checks (routability, liveness) happen in the route handlers
//! before these methods are called; nothing here does I/O except queueing
//! writes for the store's own thread.

use super::ranking::{self, EligibilityQuery};
use super::record::{INITIAL_REPUTATION, NodeRecord, token_digest};
use super::store::Store;
use crate::secret::Secret;
use crate::server::api_error::ApiError;
use crate::wire::heartbeat::verify_challenge_response;
use crate::wire::{HeartbeatRequest, NodeInfo, Pong, RegisterAck, RegisterRequest};
use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Most task outcomes one heartbeat may report.
const METRICS_CAP: u64 = 1000;
/// Largest reputation gain per heartbeat, and per hour (§1.4).
const GAIN_PER_HEARTBEAT: f64 = 0.10;
const GAIN_PER_HOUR: f64 = 0.20;
const HOUR_MS: u64 = 3_600_000;

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

/// A discover query after validation.
#[derive(Debug)]
pub(crate) struct DiscoverFilter<'a> {
    pub intent: &'a str,
    pub region: Option<&'a str>,
    pub eligibility: EligibilityQuery<'a>,
    pub limit: usize,
}

/// All registered nodes.
#[derive(Debug)]
pub(crate) struct Registry {
    nodes: RwLock<HashMap<String, NodeRecord>>,
    store: Option<Store>,
    ttl_ms: u64,
}

impl Registry {
    /// A registry holding `records` (from the store), mirroring to `store`.
    pub fn new(records: Vec<NodeRecord>, store: Option<Store>, ttl_ms: u64) -> Self {
        let nodes = records
            .into_iter()
            .map(|r| (r.node_id.clone(), r))
            .collect();
        Self {
            nodes: RwLock::new(nodes),
            store,
            ttl_ms,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, NodeRecord>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, NodeRecord>> {
        self.nodes.write().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, record: &NodeRecord) {
        if let Some(store) = &self.store {
            store.upsert(record);
        }
    }

    /// Flushes and closes the store.
    pub fn close(&self) {
        if let Some(store) = &self.store {
            store.close();
        }
    }

    /// Whether a node is live: available by its last heartbeat and seen recently.
    pub fn is_live(&self, record: &NodeRecord, now_ms: u64) -> bool {
        record.available && !record.awaiting_first_heartbeat && record.is_fresh(now_ms, self.ttl_ms)
    }

    /// A copy of one node's record.
    pub fn get(&self, node_id: &str) -> Option<NodeRecord> {
        self.read().get(node_id).cloned()
    }

    /// Nodes whose id starts with `prefix`.
    pub fn find_prefix(&self, prefix: &str) -> Vec<NodeRecord> {
        self.read()
            .values()
            .filter(|r| r.node_id.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// The node holding `token` (node token or proxy token).
    pub fn find_by_token(&self, token: &Secret) -> Option<NodeRecord> {
        self.read()
            .values()
            .find(|r| r.any_token_matches(token))
            .cloned()
    }

    /// Stores a registration that passed every check and issues fresh
    /// credentials. A previous record of the same id keeps its reputation and
    /// task counts; its token stops working. `reachable: Some(false)` (a local
    /// node that did not answer the probe yet) keeps the node out of discover
    /// until its first heartbeat.
    pub fn commit_registration(
        &self,
        mut req: RegisterRequest,
        observed_ip: String,
        reachable: Option<bool>,
        now_ms: u64,
    ) -> RegisterAck {
        let node_token = Secret::new(random_hex(32));
        let proxy_token = Secret::new(random_hex(32));
        let hmac_key = Secret::new(random_hex(16));
        let requested_id = req.node_id.take();
        let recovered = requested_id.is_some();
        let node_id = requested_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        req.current_node_token = None;

        let mut nodes = self.write();
        let previous = nodes.remove(&node_id);
        let record = NodeRecord {
            node_id: node_id.clone(),
            token_sha256: token_digest(&node_token),
            proxy_token_sha256: token_digest(&proxy_token),
            hmac_key: hmac_key.clone(),
            challenge: None,
            previous_challenge: None,
            registration: req,
            observed_ip: observed_ip.clone(),
            registered_at_ms: now_ms,
            last_seen_ms: now_ms,
            load: 0.0,
            active_jobs: 0,
            available: true,
            health_models: None,
            backend_state: None,
            reputation: previous
                .as_ref()
                .map_or(INITIAL_REPUTATION, |p| p.reputation),
            completed_tasks: previous.as_ref().map_or(0, |p| p.completed_tasks),
            failed_tasks: previous.as_ref().map_or(0, |p| p.failed_tasks),
            last_metrics_batch: previous.as_ref().and_then(|p| p.last_metrics_batch.clone()),
            rep_window_start_ms: previous.as_ref().map_or(now_ms, |p| p.rep_window_start_ms),
            rep_window_gain: previous.as_ref().map_or(0.0, |p| p.rep_window_gain),
            awaiting_first_heartbeat: reachable == Some(false),
        };
        let lifetime_jobs = record.completed_tasks;
        self.persist(&record);
        nodes.insert(node_id.clone(), record);
        drop(nodes);

        RegisterAck {
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
            lifetime_jobs: Some(lifetime_jobs),
            public_reachable: reachable,
            message_type: Some("ACK".into()),
            extra: Default::default(),
        }
    }

    /// Applies a heartbeat from the holder of `token`.
    pub fn heartbeat(
        &self,
        token: &Secret,
        hb: HeartbeatRequest,
        now_ms: u64,
        next_heartbeat_ms: u64,
    ) -> Result<Pong, ApiError> {
        let mut nodes = self.write();
        let record = nodes
            .get_mut(&hb.node_id)
            .ok_or_else(ApiError::unknown_node)?;
        if !record.token_matches(token) {
            return Err(ApiError::unauthorized(
                "node token is not valid for this node",
            ));
        }
        if let Some(answer) = &hb.challenge_response {
            // The current challenge, or the one before it when a PONG was lost.
            let answered = [&record.challenge, &record.previous_challenge]
                .into_iter()
                .flatten()
                .any(|c| verify_challenge_response(&record.hmac_key, c, answer));
            if !answered {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "challenge_failed",
                    "challenge_response does not match the last challenge; register again",
                ));
            }
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
        record.backend_state = backend_state(&hb);
        if let Some(models) = &hb.health_models {
            record.health_models = Some(models.clone());
        }
        let accepted = apply_metrics(record, &hb, now_ms);
        record.previous_challenge = record.challenge.take();
        let challenge = random_hex(16);
        record.challenge = Some(challenge.clone());
        let pong = Pong {
            ok: true,
            next_heartbeat_ms,
            reputation_score: Some(record.reputation),
            reputation_model: Some("outcome-v2".into()),
            reputation_epoch: Some(serde_json::Value::from(1)),
            metrics_batch_accepted: accepted,
            challenge: Some(challenge),
            free_credits_awarded: None,
            extra: Default::default(),
        };
        self.persist(record);
        Ok(pong)
    }

    /// Removes the node of `node_id` if `token` is its token.
    pub fn deregister(&self, token: &Secret, node_id: &str) -> Result<(), ApiError> {
        let mut nodes = self.write();
        let record = nodes.get(node_id).ok_or_else(ApiError::unknown_node)?;
        if !record.token_matches(token) {
            return Err(ApiError::unauthorized(
                "node token is not valid for this node",
            ));
        }
        nodes.remove(node_id);
        if let Some(store) = &self.store {
            store.delete(node_id);
        }
        Ok(())
    }

    /// Eligible nodes for a query, best first (score descending, ties by id).
    pub fn discover(&self, f: &DiscoverFilter<'_>, now_ms: u64) -> Vec<NodeInfo> {
        let nodes = self.read();
        let mut ranked: Vec<(f64, &NodeRecord)> = nodes
            .values()
            .filter(|r| r.serves(f.intent))
            .filter_map(|r| {
                let live = self.is_live(r, now_ms);
                let models = r.capability_models();
                if !ranking::is_eligible(&r.eligibility(live, &models), &f.eligibility) {
                    return None;
                }
                let served = r.health_models.clone().unwrap_or(models);
                let s = ranking::score(&r.rank_input(live, &served), f.eligibility.model, f.region);
                Some((s, r))
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.1.node_id.cmp(&b.1.node_id))
        });
        ranked
            .into_iter()
            .take(f.limit)
            .map(|(s, r)| r.to_node_info(s, true, Some(f.intent)))
            .collect()
    }

    /// Live nodes, most recently seen first.
    pub fn recent(&self, now_ms: u64, limit: usize) -> Vec<NodeRecord> {
        let nodes = self.read();
        let mut live: Vec<&NodeRecord> =
            nodes.values().filter(|r| self.is_live(r, now_ms)).collect();
        live.sort_by(|a, b| {
            b.last_seen_ms
                .cmp(&a.last_seen_ms)
                .then_with(|| a.node_id.cmp(&b.node_id))
        });
        live.into_iter().take(limit).cloned().collect()
    }
}

/// Backend state from a heartbeat: `backend_stability.state`, a top-level
/// `backend_state`, or `status: "draining"`.
fn backend_state(hb: &HeartbeatRequest) -> Option<String> {
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
fn apply_metrics(record: &mut NodeRecord, hb: &HeartbeatRequest, now_ms: u64) -> Option<String> {
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
