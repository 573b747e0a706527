//! The registry: every node's record, and the state changes of REGISTER,
//! HEARTBEAT and DEREGISTER (PROTOCOL.md §1.3-§1.5).
//!
//! All mutation happens here, under one lock, and is mirrored to the store
//! (the changes of one record are `change.rs`'s). On a shared PostgreSQL
//! database the registry is each replica's read cache instead (the
//! `cache_*` methods), and `replica.rs` makes the changes on the database.
//! Network checks (routability, liveness) happen in the route handlers
//! before these methods are called; nothing here does I/O except queueing
//! writes for the store's own thread.

use super::beat::{over_budget, registration_bytes};
use super::change::{apply_heartbeat, new_record};
use super::nodes::{Hot, Nodes, model_bit};
use super::ranking::{self, EligibilityQuery};
use super::record::NodeRecord;
use super::store::Store;
use crate::secret::Secret;
use crate::server::api_error::ApiError;
use crate::wire::{HeartbeatRequest, NodeInfo, Pong, RegisterAck, RegisterRequest};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A discover query after validation.
#[derive(Debug)]
pub(crate) struct DiscoverFilter<'a> {
    pub intent: &'a str,
    pub region: Option<&'a str>,
    pub eligibility: EligibilityQuery<'a>,
    pub limit: usize,
}

/// How much the registry holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// A node unseen for this long is no longer live (discover shows it offline).
    pub ttl_ms: u64,
    /// A node unseen for this long is forgotten (memory and store).
    pub evict_after_ms: u64,
    /// Most records held at once.
    pub max_nodes: usize,
    /// Most bytes one node may store: its registration plus what heartbeats update.
    pub max_node_bytes: usize,
}

/// All registered nodes.
#[derive(Debug)]
pub(crate) struct Registry {
    nodes: RwLock<Nodes>,
    store: Option<Store>,
    bounds: Bounds,
}

/// Seconds a refused registration is told to wait when the registry is full.
const FULL_RETRY_AFTER_S: u64 = 60;

impl Registry {
    /// A registry holding `records` (from the store), mirroring to `store`.
    pub fn new(records: Vec<NodeRecord>, store: Option<Store>, bounds: Bounds) -> Self {
        let nodes = records
            .into_iter()
            .map(|mut r| {
                r.registration_bytes = registration_bytes(&r.registration);
                r
            })
            .collect();
        Self {
            nodes: RwLock::new(nodes),
            store,
            bounds,
        }
    }

    /// Forgets every node unseen for longer than the eviction age, in memory
    /// and in the store; returns how many went.
    pub fn evict_expired(&self, now_ms: u64) -> usize {
        let mut nodes = self.write();
        self.evict_locked(&mut nodes, now_ms)
    }

    fn evict_locked(&self, nodes: &mut Nodes, now_ms: u64) -> usize {
        let expired: Vec<String> = nodes
            .values()
            .filter(|r| !r.is_fresh(now_ms, self.bounds.evict_after_ms))
            .map(|r| r.node_id.clone())
            .collect();
        for id in &expired {
            nodes.remove(id);
            if let Some(store) = &self.store {
                store.delete(id);
            }
        }
        if !expired.is_empty() {
            tracing::info!(
                evicted = expired.len(),
                "forgot nodes unseen for longer than the eviction age"
            );
        }
        expired.len()
    }

    /// Makes room for one more record: evicts expired ones when the registry
    /// is full, and refuses (503 `directory_full`) when that is not enough.
    fn make_room(&self, nodes: &mut Nodes, now_ms: u64) -> Result<(), ApiError> {
        if nodes.len() < self.bounds.max_nodes {
            return Ok(());
        }
        self.evict_locked(nodes, now_ms);
        if nodes.len() < self.bounds.max_nodes {
            return Ok(());
        }
        // The register handler logs the refusal with its source and endpoint.
        Err(Self::full_error(self.bounds.max_nodes))
    }

    fn full_error(max_nodes: usize) -> ApiError {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "directory_full",
            format!(
                "this directory holds its maximum of {max_nodes} nodes; retry after the idle ones expire"
            ),
        )
        .retry_after(FULL_RETRY_AFTER_S)
    }

    /// Whether a registration of `requested_id` proven with `token` would
    /// replace the existing record (a proven re-registration) rather than
    /// create one.
    fn replaces(nodes: &Nodes, requested_id: Option<&str>, token: Option<&Secret>) -> bool {
        requested_id
            .and_then(|id| nodes.get(id))
            .is_some_and(|old| token.is_some_and(|t| old.token_matches(t)))
    }

    /// Refuses early (before any probe) a registration that needs a new
    /// record while the registry is full even after eviction.
    pub fn ensure_room(&self, req: &RegisterRequest, now_ms: u64) -> Result<(), ApiError> {
        let mut nodes = self.write();
        if Self::replaces(
            &nodes,
            req.node_id.as_deref(),
            req.current_node_token.as_ref(),
        ) {
            return Ok(());
        }
        self.make_room(&mut nodes, now_ms)
    }

    /// Refuses (413 `payload_too_large`) a registration whose stored form
    /// alone exceeds the per-node budget.
    pub fn check_registration_size(&self, req: &RegisterRequest) -> Result<(), ApiError> {
        let bytes = registration_bytes(req);
        if bytes > self.bounds.max_node_bytes {
            return Err(over_budget(self.bounds.max_node_bytes));
        }
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, Nodes> {
        crate::sync::read(&self.nodes)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Nodes> {
        crate::sync::write(&self.nodes)
    }

    fn persist(&self, record: &NodeRecord) {
        if let Some(store) = &self.store {
            store.upsert(record);
        }
    }

    /// Where registrations are kept: `memory` (no store), `sqlite`, or
    /// `memory (sqlite writes failing)` while the file refuses writes (a
    /// PostgreSQL directory answers for itself: `AppState::persistence`).
    pub fn persistence(&self) -> &'static str {
        match &self.store {
            None => "memory",
            Some(s) if s.is_failing() => "memory (sqlite writes failing)",
            Some(_) => "sqlite",
        }
    }

    /// Flushes and closes the store.
    pub fn close(&self) {
        if let Some(store) = &self.store {
            store.close();
        }
    }

    /// Whether a new record would exceed the most nodes held (the read
    /// cache's count, in PostgreSQL mode).
    pub fn is_full(&self) -> bool {
        self.read().len() >= self.bounds.max_nodes
    }

    /// The 503 `directory_full` answer.
    pub fn full(&self) -> ApiError {
        Self::full_error(self.bounds.max_nodes)
    }

    /// Read cache (PostgreSQL mode): stores `record` unless the cache holds
    /// a newer copy of that node (a higher `change_seq`).
    pub fn cache_put(&self, mut record: NodeRecord) {
        let mut nodes = self.write();
        if nodes
            .get(&record.node_id)
            .is_some_and(|held| held.change_seq >= record.change_seq)
        {
            return;
        }
        record.registration_bytes = registration_bytes(&record.registration);
        nodes.insert(record);
    }

    /// Read cache: forgets `node_id` unless the copy held is newer than the
    /// deletion numbered `deleted_seq`. Whether it was held.
    pub fn cache_remove(&self, node_id: &str, deleted_seq: i64) -> bool {
        let mut nodes = self.write();
        if nodes
            .get(node_id)
            .is_some_and(|held| held.change_seq < deleted_seq)
        {
            nodes.remove(node_id);
            return true;
        }
        false
    }

    /// Read cache: the change number of the copy held of `node_id`.
    pub fn cache_version(&self, node_id: &str) -> Option<i64> {
        self.read().get(node_id).map(|r| r.change_seq)
    }

    /// Read cache: the change numbers of the nodes held, by id (what a
    /// reload compares the table with).
    pub fn cache_versions(&self) -> std::collections::HashMap<String, i64> {
        self.read()
            .values()
            .map(|r| (r.node_id.clone(), r.change_seq))
            .collect()
    }

    /// How many nodes are held, and how many of them are live now.
    pub fn counts(&self, now_ms: u64) -> (usize, usize) {
        let nodes = self.read();
        let live = nodes.values().filter(|r| self.is_live(r, now_ms)).count();
        (nodes.len(), live)
    }

    /// Whether a node is live: available by its last heartbeat and seen recently.
    pub fn is_live(&self, record: &NodeRecord, now_ms: u64) -> bool {
        record.available
            && !record.awaiting_first_heartbeat
            && record.is_fresh(now_ms, self.bounds.ttl_ms)
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
    /// credentials.
    ///
    /// Ownership (PROTOCOL.md §1.3 step 5, decided stricter here): naming a
    /// registered `node_id` keeps that id only with its valid
    /// `current_node_token`; the old record's reputation and task counts
    /// carry over and its token stops working (`recovered: true`). Without
    /// that proof the registration is a new node under a fresh UUID
    /// (`recovered: false`) and the existing record is left untouched. An id
    /// that is not registered (never, or evicted) is taken as asked
    /// (`recovered: true`).
    ///
    /// `reachable: Some(false)` (a local node that did not answer the probe
    /// yet) keeps the node out of discover until its first heartbeat. Fails
    /// with 503 `directory_full` when a new record does not fit.
    pub fn commit_registration(
        &self,
        mut req: RegisterRequest,
        observed_ip: String,
        reachable: Option<bool>,
        now_ms: u64,
    ) -> Result<RegisterAck, ApiError> {
        let requested_id = req.node_id.take();
        let proof = req.current_node_token.take();

        let mut nodes = self.write();
        let replaces = Self::replaces(&nodes, requested_id.as_deref(), proof.as_ref());
        let (node_id, recovered) = match requested_id {
            Some(id) if replaces || !nodes.contains_key(&id) => (id, true),
            _ => (crate::ids::uuid_v4_string(), false),
        };
        if !replaces {
            self.make_room(&mut nodes, now_ms)?;
        }
        let previous = if replaces {
            nodes.remove(&node_id)
        } else {
            None
        };

        let (record, ack) = new_record(
            req,
            node_id,
            recovered,
            observed_ip,
            reachable,
            now_ms,
            previous.as_ref(),
        );
        self.persist(&record);
        nodes.insert(record);
        drop(nodes);
        Ok(ack)
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
        let pong = apply_heartbeat(
            record,
            token,
            &hb,
            now_ms,
            next_heartbeat_ms,
            self.bounds.max_node_bytes,
        )?;
        self.persist(record);
        nodes.refresh(&hb.node_id);
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
    ///
    /// Only the nodes serving the intent are looked at (the intent index),
    /// through their [`Hot`](super::nodes::Hot) copies, and only the `limit`
    /// best are sorted and rendered.
    pub fn discover(&self, f: &DiscoverFilter<'_>, now_ms: u64) -> Vec<NodeInfo> {
        let nodes = self.read();
        let q = Query::new(&nodes, f);
        let best_first = |a: &(f64, u32), b: &(f64, u32)| {
            b.0.total_cmp(&a.0).then_with(|| {
                let id = |slot: u32| &nodes.at(slot as usize).node_id;
                id(a.1).cmp(id(b.1))
            })
        };
        // The best `limit` so far, in a buffer of at most twice that: when
        // it fills, the best half is kept (a total order, so the same
        // nodes as a full sort).
        let keep = f.limit.max(1);
        let mut ranked: Vec<(f64, u32)> = Vec::with_capacity(2 * keep);
        for h in nodes.serving(f.intent) {
            if let Some(s) = self.rank(&nodes, h, f, &q, now_ms) {
                if ranked.len() == 2 * keep {
                    ranked.select_nth_unstable_by(keep - 1, best_first);
                    ranked.truncate(keep);
                }
                ranked.push((s, h.slot));
            }
        }
        ranked.sort_unstable_by(best_first);
        ranked.truncate(f.limit);
        ranked
            .into_iter()
            .map(|(s, slot)| {
                nodes
                    .at(slot as usize)
                    .to_node_info(s, true, Some(f.intent))
            })
            .collect()
    }

    /// The score of a node serving the query's intent, from its [`Hot`]
    /// copy, or `None` when it is not eligible: [`ranking::is_eligible`]
    /// and [`ranking::score`] as for the record; the record itself is read
    /// only to confirm a model the mask says the node may serve.
    fn rank(
        &self,
        nodes: &Nodes,
        h: &Hot,
        f: &DiscoverFilter<'_>,
        q: &Query,
        now_ms: u64,
    ) -> Option<f64> {
        let live = h.up && now_ms.saturating_sub(h.last_seen_ms) <= self.bounds.ttl_ms;
        let input = ranking::EligibilityInput {
            live,
            reputation: h.reputation,
            completed_tasks: h.completed_tasks,
            // Either hides the node: an empty health list stands for both.
            health_models: h.hidden.then_some(&[][..]),
            models: &[],
            backend_state: None,
        };
        let unmodelled = EligibilityQuery {
            model: None,
            ..f.eligibility
        };
        if !ranking::is_eligible(&input, &unmodelled) {
            return None;
        }
        if let Some(model) = f.eligibility.model {
            let id = q.model?; // no node serves it
            if h.model_mask & model_bit(id) == 0 {
                return None;
            }
            if id >= 63 {
                // The shared overflow bit: ask the record.
                let r = nodes.at(h.slot as usize);
                let served = r.health_models.as_deref().unwrap_or(&r.derived.models);
                if !served.iter().any(|m| m == model) {
                    return None;
                }
            }
        }
        let region_match = q.region.is_some() && q.region == Some(h.region);
        let rank = ranking::RankInput {
            available: live,
            load: h.load,
            active_jobs: h.active_jobs,
            max_concurrent: h.max_concurrent,
            // The score compares regions for equality only.
            region: match f.region {
                Some(r) if region_match => r,
                _ => "",
            },
            // An eligible node serves the query's model (checked above),
            // and the score looks at no other.
            models: &q.models,
            reputation: Some(h.reputation),
            price: h.price,
            has_cx_key: h.has_cx_key,
            sdk_current: h.sdk_current,
        };
        Some(ranking::score(&rank, f.eligibility.model, f.region))
    }

    /// Discover as it was before the index: every node scanned, everything
    /// derived again, a full sort. The reference the index is tested against
    /// (here and by the fuzz crate's `directory_lifecycle` target).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn discover_reference(&self, f: &DiscoverFilter<'_>, now_ms: u64) -> Vec<NodeInfo> {
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
                let input = ranking::RankInput {
                    sdk_current: ranking::sdk_is_current(r.registration.effective_sdk_version())
                        .unwrap_or(false),
                    ..r.rank_input(live, &served)
                };
                let s = ranking::score(&input, f.eligibility.model, f.region);
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

/// What a discover query needs once rather than per node.
struct Query {
    /// The region's interned id (`None`: no region asked, or no node in it).
    region: Option<u32>,
    /// The model asked for, as the score's model list.
    models: Vec<String>,
    /// Its interned id (`None`: no model asked, or no node serves it).
    model: Option<u32>,
}

impl Query {
    fn new(nodes: &Nodes, f: &DiscoverFilter<'_>) -> Self {
        Self {
            region: f.region.and_then(|r| nodes.region_id(r)),
            models: f.eligibility.model.map(str::to_owned).into_iter().collect(),
            model: f.eligibility.model.and_then(|m| nodes.model_id(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Qos;
    use serde_json::{Value, json};

    const INTENTS: [&str; 3] = [
        "urn:iicp:intent:llm:chat:v1",
        "urn:iicp:intent:llm:embedding:v1",
        "urn:iicp:intent:code:review:v1",
    ];
    const MODELS: [&str; 5] = ["m1", "m2", "m3", "m4", "m5"];
    const REGIONS: [&str; 3] = ["eu-central", "us-east", "ap-south"];
    const TTL_MS: u64 = 90_000;

    /// splitmix64, so a failure replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
        fn some<'a>(&mut self, from: &[&'a str]) -> Vec<&'a str> {
            from.iter().copied().filter(|_| self.chance(50)).collect()
        }
    }

    fn registration(rng: &mut Rng, i: usize, models: &[&str]) -> RegisterRequest {
        let mut intents = rng.some(&INTENTS);
        if intents.is_empty() {
            intents.push(INTENTS[rng.below(INTENTS.len())]);
        }
        let capabilities: Vec<Value> = intents
            .iter()
            .map(|intent| json!({"intent": intent, "models": rng.some(models)}))
            .collect();
        let mut body = json!({
            "endpoint": format!("http://10.0.{}.{}:9484", i / 256, i % 256),
            "capabilities": capabilities,
        });
        // Few distinct values, so many scores tie and the id decides.
        if rng.chance(80) {
            body["region"] = json!(REGIONS[rng.below(REGIONS.len())]);
        }
        if rng.chance(70) {
            body["limits"] = json!({"max_concurrent": 1 + rng.below(4)});
        }
        if rng.chance(50) {
            body["pricing"] = json!({"credit_cost_multiplier": rng.below(3) as f64});
        }
        if rng.chance(70) {
            body["sdk_version"] = json!(["0.7.68", "0.7.1", "1.0.0", "dev"][rng.below(4)]);
        }
        if rng.chance(50) {
            body["cx_public_key"] = json!({
                "algorithm": "X25519",
                "encoding": "base64url",
                "key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "key_id": "cx-0000000000000000",
            });
        }
        serde_json::from_value(body).unwrap()
    }

    fn heartbeat(rng: &mut Rng, node_id: &str, models: &[&str]) -> HeartbeatRequest {
        let load = [0.0, 0.5, 0.25, 1.0][rng.below(4)];
        let success = [0, 50, 150, 1200][rng.below(4)];
        let failed = u64::from(rng.chance(20)) * 3;
        let mut hb = json!({
            "node_id": node_id,
            "load": load,
            "active_jobs": rng.below(5),
            "metrics": {"tasks_success": success, "tasks_failed": failed},
        });
        if rng.chance(10) {
            hb["available"] = json!(false);
        }
        if rng.chance(5) {
            hb["status"] = json!("draining");
        }
        if rng.chance(15) {
            hb["health_models"] = json!(rng.some(models));
        }
        serde_json::from_value(hb).unwrap()
    }

    fn bounds() -> Bounds {
        Bounds {
            ttl_ms: TTL_MS,
            evict_after_ms: 4 * TTL_MS,
            max_nodes: 100_000,
            max_node_bytes: 64 * 1024,
        }
    }

    fn ids(list: &[NodeInfo]) -> Vec<(String, u64)> {
        list.iter()
            .map(|n| (n.node_id.clone(), n.score.to_bits()))
            .collect()
    }

    /// The read cache keeps the newest copy of a node whatever the order
    /// its changes arrive in: an older copy does not replace a newer one,
    /// and a deletion removes only copies older than itself.
    #[test]
    fn the_cache_keeps_the_newest_copy_in_any_order() {
        let mut rng = Rng(3);
        let registry = Registry::new(vec![], None, bounds());
        let ack = registry
            .commit_registration(
                registration(&mut rng, 1, &MODELS),
                "10.0.0.1".into(),
                None,
                1,
            )
            .unwrap();
        let copy = |seq: i64, load: f64| {
            let mut r = registry.get(&ack.node_id).unwrap();
            r.change_seq = seq;
            r.load = load;
            r
        };
        let (v5, v3, v7) = (copy(5, 0.5), copy(3, 0.3), copy(7, 0.7));
        registry.cache_put(v5);
        registry.cache_put(v3);
        assert_eq!(registry.get(&ack.node_id).unwrap().load, 0.5);
        assert!(
            !registry.cache_remove(&ack.node_id, 5),
            "a deletion older than the copy"
        );
        assert!(registry.get(&ack.node_id).is_some());
        assert!(registry.cache_remove(&ack.node_id, 6));
        assert!(registry.get(&ack.node_id).is_none());
        registry.cache_put(v7);
        assert_eq!(registry.get(&ack.node_id).unwrap().load, 0.7);
        assert_eq!(registry.cache_versions()[&ack.node_id], 7);
    }

    /// The indexed discover returns exactly the list (ids, order, scores,
    /// whole node objects) of the reference scan, on a registry changed by
    /// registrations, heartbeats, re-registrations, deregistrations and
    /// evictions, for random queries at random times.
    #[test]
    fn indexed_discover_matches_the_full_scan() {
        compare_with_the_full_scan(17, &MODELS, 400);
    }

    /// More distinct models than the mask has exact bits (63): the shared
    /// overflow bit is confirmed against the records.
    #[test]
    fn indexed_discover_matches_the_full_scan_with_many_models() {
        let names: Vec<String> = (0..90).map(|i| format!("model-{i}")).collect();
        let models: Vec<&str> = names.iter().map(String::as_str).collect();
        compare_with_the_full_scan(71, &models, 100);
    }

    fn compare_with_the_full_scan(seed: u64, models: &[&str], min_answers: usize) {
        let mut rng = Rng(seed);
        let registry = Registry::new(vec![], None, bounds());
        let mut live: Vec<(String, Secret)> = vec![];
        let mut now = 1_000_000u64;
        let mut compared = 0;
        for round in 0..40 {
            for _ in 0..60 {
                let i = live.len() + round * 1000;
                let mut req = registration(&mut rng, i, models);
                // Sometimes a proven re-registration (new capabilities, same id).
                if !live.is_empty() && rng.chance(10) {
                    let (id, token) = live.swap_remove(rng.below(live.len()));
                    req.node_id = Some(id);
                    req.current_node_token = Some(token);
                }
                let reachable = if rng.chance(5) { Some(false) } else { None };
                let ack = registry
                    .commit_registration(req, "10.0.0.1".into(), reachable, now)
                    .unwrap();
                let token = ack.node_token.unwrap();
                if rng.chance(85) {
                    let hb = heartbeat(&mut rng, &ack.node_id, models);
                    registry.heartbeat(&token, hb, now, 30_000).unwrap();
                }
                live.push((ack.node_id, token));
                now += rng.below(2_000) as u64;
            }
            for _ in 0..5 {
                if !live.is_empty() {
                    let (id, token) = live.swap_remove(rng.below(live.len()));
                    registry.deregister(&token, &id).unwrap();
                }
            }
            if round % 10 == 9 {
                registry.evict_expired(now);
                live.retain(|(id, _)| registry.get(id).is_some());
            }
            for _ in 0..25 {
                let model = rng.chance(40).then(|| models[rng.below(models.len())]);
                let region = rng.chance(40).then(|| REGIONS[rng.below(REGIONS.len())]);
                let qos = [None, Some(Qos::Interactive), Some(Qos::Realtime)][rng.below(3)];
                let filter = DiscoverFilter {
                    intent: INTENTS[rng.below(INTENTS.len())],
                    region,
                    eligibility: EligibilityQuery {
                        model,
                        min_reputation: [0.0, 0.3, 0.5, 0.55][rng.below(4)],
                        qos,
                        enforce_qos_gates: rng.chance(50),
                    },
                    limit: [1, 3, 10, 50, 10_000][rng.below(5)],
                };
                let at = now + rng.below(TTL_MS as usize * 5 / 4) as u64;
                let indexed = registry.discover(&filter, at);
                let reference = registry.discover_reference(&filter, at);
                assert_eq!(ids(&indexed), ids(&reference), "{filter:?} at {at}");
                assert_eq!(
                    serde_json::to_value(&indexed).unwrap(),
                    serde_json::to_value(&reference).unwrap()
                );
                compared += usize::from(!reference.is_empty());
            }
        }
        assert!(
            compared > min_answers,
            "too few non-empty answers: {compared}"
        );
    }
}
