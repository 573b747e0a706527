//! What the directory keeps per node, and how it shows a node to clients.

use super::ranking::{self, RankInput};
use crate::secret::Secret;
use crate::wire::{Capability, NodeInfo, RegisterRequest, TransportMethod};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Reputation of a new node.
pub const INITIAL_REPUTATION: f64 = 0.5;

/// One registered node. Serialised as JSON into the database; holds the
/// token only as a SHA-256 digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub node_id: String,
    pub token_sha256: String,
    pub proxy_token_sha256: String,
    pub hmac_key: Secret,
    pub challenge: Option<String>,
    pub previous_challenge: Option<String>,
    /// The registration as received, without `current_node_token`.
    pub registration: RegisterRequest,
    /// Size of `registration` in its JSON form, counted against the
    /// per-node budget (recomputed when records are loaded).
    #[serde(skip)]
    pub registration_bytes: usize,
    pub observed_ip: String,
    pub registered_at_ms: u64,
    pub last_seen_ms: u64,
    pub load: f64,
    pub active_jobs: u32,
    pub available: bool,
    pub health_models: Option<Vec<String>>,
    pub backend_state: Option<String>,
    pub reputation: f64,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    pub last_metrics_batch: Option<String>,
    /// Start of the current hour of reputation gains, and the gain so far.
    pub rep_window_start_ms: u64,
    pub rep_window_gain: f64,
    /// Accepted without a liveness answer (local mode, private endpoint):
    /// hidden from discover until its first heartbeat proves it alive.
    #[serde(default)]
    pub awaiting_first_heartbeat: bool,
    /// The row's version in a PostgreSQL store (its `change_seq`): which
    /// of two copies of a node is newer, and the value an update must still
    /// find (compare-and-set). 0 in memory and SQLite. Not in the JSON.
    #[serde(skip)]
    pub change_seq: i64,
    /// Read from `registration` when the record is stored (not persisted).
    #[serde(skip)]
    pub derived: Derived,
}

/// What discover reads from a registration on every query, worked out once
/// when the record is stored ([`NodeRecord::refresh_derived`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Derived {
    /// [`NodeRecord::capability_models`].
    pub models: Vec<String>,
    /// Whether the SDK is at or above the baseline (unknown counts as not).
    pub sdk_current: bool,
}

/// SHA-256 of a token, hex; tokens are stored and compared in this form.
pub(crate) fn token_digest(token: &Secret) -> String {
    hex::encode(Sha256::digest(token.expose().as_bytes()))
}

impl NodeRecord {
    /// Whether `token` is this node's current token. Comparing digests of
    /// equal length keeps the comparison independent of the token's bytes.
    pub fn token_matches(&self, token: &Secret) -> bool {
        token_digest(token) == self.token_sha256
    }

    /// Whether `token` is this node's node token or proxy token.
    pub fn any_token_matches(&self, token: &Secret) -> bool {
        let d = token_digest(token);
        d == self.token_sha256 || d == self.proxy_token_sha256
    }

    /// Seen within `ttl_ms` of `now_ms`.
    pub fn is_fresh(&self, now_ms: u64, ttl_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_seen_ms) <= ttl_ms
    }

    /// Fills [`Derived`] from the registration.
    pub fn refresh_derived(&mut self) {
        self.derived = Derived {
            models: self.capability_models(),
            sdk_current: ranking::sdk_is_current(self.registration.effective_sdk_version())
                .unwrap_or(false),
        };
    }

    /// Models from every capability, deduplicated in order.
    pub fn capability_models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in self
            .registration
            .capabilities
            .iter()
            .flat_map(|c| &c.models)
        {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// Whether any capability serves `intent` (discover reads the intent
    /// index instead; the reference scan in the tests reads this).
    #[cfg(any(test, fuzzing))]
    pub fn serves(&self, intent: &str) -> bool {
        self.registration
            .capabilities
            .iter()
            .any(|c| c.intent.as_str() == intent)
    }

    fn max_concurrent(&self) -> u32 {
        self.registration
            .limits
            .as_ref()
            .map_or(0, |l| l.max_concurrent)
    }

    fn price(&self) -> Option<f64> {
        self.registration
            .pricing
            .as_ref()
            .and_then(|p| p.credit_cost_multiplier)
    }

    /// Eligibility inputs, given whether the node is live now (discover
    /// reads the registry's `Hot` copy instead; the reference scan in the
    /// tests reads this).
    #[cfg(any(test, fuzzing))]
    pub fn eligibility<'a>(
        &'a self,
        live: bool,
        models: &'a [String],
    ) -> ranking::EligibilityInput<'a> {
        ranking::EligibilityInput {
            live,
            reputation: self.reputation,
            completed_tasks: self.completed_tasks,
            health_models: self.health_models.as_deref(),
            models,
            backend_state: self.backend_state.as_deref(),
        }
    }

    /// Ranking inputs (the SDK check comes from [`Derived`], filled when the
    /// record was stored).
    pub fn rank_input<'a>(&'a self, live: bool, models: &'a [String]) -> RankInput<'a> {
        RankInput {
            available: live,
            load: self.load,
            active_jobs: self.active_jobs,
            max_concurrent: self.max_concurrent(),
            region: self.registration.region.as_deref().unwrap_or(""),
            models,
            reputation: Some(self.reputation),
            price: self.price(),
            has_cx_key: self.registration.cx_public_key.is_some(),
            sdk_current: self.derived.sdk_current,
        }
    }

    /// The node object of discover and node lookups. `intent` narrows the
    /// capabilities to one intent (discover); `None` lists them all.
    pub fn to_node_info(&self, score: f64, live: bool, intent: Option<&str>) -> NodeInfo {
        let reg = &self.registration;
        let capabilities: Vec<Capability> = reg
            .capabilities
            .iter()
            .filter(|c| intent.is_none_or(|i| c.intent.as_str() == i))
            .cloned()
            .collect();
        let mut modalities: Vec<String> = vec![];
        for c in &capabilities {
            for m in c.input_modalities.iter().flatten() {
                let m = wire_name(m).unwrap_or_default();
                if !modalities.contains(&m) {
                    modalities.push(m);
                }
            }
        }
        if modalities.is_empty() {
            modalities.push("text".into());
        }
        let relayed = reg.transport_method == Some(TransportMethod::TurnRelay);
        let scheme = if reg.endpoint.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        let mut transport = vec![scheme.to_owned()];
        if reg.transport_endpoint.is_some() {
            transport.push("iicp-native".into());
        }
        let sdk_status = match ranking::sdk_is_current(reg.effective_sdk_version()) {
            Some(true) => "current",
            Some(false) => "downlevel",
            None => "unknown",
        };
        let mut extra = Map::new();
        extra.insert(
            "node_id_prefix".into(),
            self.node_id.chars().take(8).collect::<String>().into(),
        );
        extra.insert("reputation_model".into(), "outcome-v2".into());
        extra.insert("completed_tasks".into(), self.completed_tasks.into());
        extra.insert("upgrade_required".into(), (sdk_status != "current").into());
        extra.insert(
            "privacy_routing_status".into(),
            if reg.cx_public_key.is_some() {
                "key_ready"
            } else {
                "transitional"
            }
            .into(),
        );
        extra.insert(
            "routing_hint".into(),
            if relayed {
                "relay_service"
            } else if scheme == "https" {
                "https_direct"
            } else {
                "http_direct"
            }
            .into(),
        );
        for (k, v) in [
            (
                "exposure_mode",
                reg.exposure_mode
                    .as_ref()
                    .and_then(wire_name)
                    .map(Value::from),
            ),
            (
                "nat_type",
                reg.nat_type.as_ref().and_then(wire_name).map(Value::from),
            ),
            ("relay_accept_port", reg.relay_accept_port.map(Value::from)),
            (
                "implementation_name",
                reg.implementation_name.clone().map(Value::from),
            ),
            (
                "implementation_version",
                reg.implementation_version.clone().map(Value::from),
            ),
            (
                "sdk_compatibility_version",
                reg.effective_sdk_version().map(Value::from),
            ),
        ] {
            if let Some(v) = v {
                extra.insert(k.into(), v);
            }
        }
        NodeInfo {
            node_id: self.node_id.clone(),
            endpoint: reg.endpoint.clone(),
            score,
            available: live,
            region: reg.region.clone().unwrap_or_default(),
            load: Some(self.load),
            active_jobs: Some(self.active_jobs),
            max_concurrent: Some(self.max_concurrent()),
            models: self
                .health_models
                .clone()
                .unwrap_or_else(|| self.capability_models()),
            capabilities,
            cx_public_key: reg.cx_public_key.clone(),
            // The retired alias, still read by older clients (§1.6, §9 item 13).
            public_key: reg.cx_public_key.clone(),
            reputation_score: Some(self.reputation),
            reputation_tier: Some(reputation_tier(self.reputation).into()),
            latency_estimate_ms: None,
            transport,
            transport_endpoint: reg.transport_endpoint.clone(),
            transport_method: reg.transport_method.as_ref().and_then(wire_name),
            transport_metadata: reg.transport_metadata.clone(),
            relay_capable: Some(reg.relay_capable.unwrap_or(false)),
            reachability_tier: Some(if relayed { "relay" } else { "direct" }.into()),
            health_label: Some(if live { "healthy" } else { "offline" }.into()),
            input_modalities: Some(modalities),
            sdk_status: Some(sdk_status.into()),
            key_ready: Some(reg.cx_public_key.is_some()),
            probation: Some(self.completed_tasks < ranking::PROBATION_TASKS),
            backend: reg.backend.as_ref().and_then(wire_name),
            pricing: reg.pricing.clone(),
            extra,
        }
    }
}

/// The wire spelling of a closed-vocabulary value (`turn_relay`, `vllm`,
/// `image`, …), as its serde representation gives it.
fn wire_name<T: Serialize>(value: &T) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Display tier of a reputation score (new nodes start at `bronze`).
fn reputation_tier(reputation: f64) -> &'static str {
    if reputation >= 0.9 {
        "gold"
    } else if reputation >= 0.75 {
        "silver"
    } else {
        "bronze"
    }
}
