//! HEARTBEAT and its PONG (PROTOCOL.md §1.4), and the challenge HMAC.

use crate::secret::Secret;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Task counts since the last acknowledged batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatMetrics {
    /// Successful tasks.
    #[serde(default)]
    pub tasks_success: u64,
    /// Failed tasks.
    #[serde(default)]
    pub tasks_failed: u64,
    /// Mean latency of those tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_latency_ms: Option<f64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v1/heartbeat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The node beating.
    pub node_id: String,
    /// Load 0..1 (the directory clamps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// Tasks running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_jobs: Option<u32>,
    /// Whether the node takes tasks; true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
    /// Task counts since the last accepted batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<HeartbeatMetrics>,
    /// Batch id for `metrics`, resent until echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_batch_id: Option<String>,
    /// Hex HMAC-SHA256 of the previous PONG's challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_response: Option<String>,
    /// Models loaded now; `[]` hides the node from discover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_models: Option<Vec<String>>,
    /// Pricing update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Value>,
    /// Token echoed in the body by some SDKs; the directory ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_token: Option<Secret>,
    /// `available` or `recovering` (ignored by directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The node's concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Everything else (updater fields, backend stability, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HeartbeatRequest {
    /// A heartbeat carrying only the node id.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            load: None,
            active_jobs: None,
            available: None,
            metrics: None,
            metrics_batch_id: None,
            challenge_response: None,
            health_models: None,
            pricing: None,
            node_token: None,
            status: None,
            max_concurrent: None,
            extra: Map::new(),
        }
    }
}

/// The 200 PONG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// Always true.
    pub ok: bool,
    /// When to send the next heartbeat.
    pub next_heartbeat_ms: u64,
    /// Current reputation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation_score: Option<f64>,
    /// `outcome-v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation_model: Option<String>,
    /// Reputation epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation_epoch: Option<Value>,
    /// Echo of the accepted `metrics_batch_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_batch_accepted: Option<String>,
    /// The challenge to answer in the next heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// Credits granted, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_credits_awarded: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to a heartbeat challenge: lowercase hex HMAC-SHA256 over the
/// challenge, keyed with the **ASCII bytes of the key string** (not the
/// hex-decoded bytes; PROTOCOL.md §1.3 step 6).
pub fn challenge_response(node_hmac_key: &Secret, challenge: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(node_hmac_key.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(challenge.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a challenge response in constant time.
pub fn verify_challenge_response(node_hmac_key: &Secret, challenge: &str, response: &str) -> bool {
    let Ok(tag) = hex::decode(response) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(node_hmac_key.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(challenge.as_bytes());
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_uses_the_key_string_bytes() {
        // Independent value: python3 -c "import hmac,hashlib;
        //   print(hmac.new(b'00112233445566778899aabbccddeeff', b'abc', hashlib.sha256).hexdigest())"
        let key = Secret::new("00112233445566778899aabbccddeeff");
        let r = challenge_response(&key, "abc");
        assert_eq!(
            r,
            "8041222d0afb792dca4d34692dc3bcac3cd3d1d9778f98cf9b81f681cbfe2676"
        );
        assert!(verify_challenge_response(&key, "abc", &r));
        assert!(!verify_challenge_response(&key, "abd", &r));
        assert!(!verify_challenge_response(&key, "abc", "zz"));
    }

    #[test]
    fn minimal_heartbeat_parses_and_unknown_fields_survive() {
        let hb: HeartbeatRequest = serde_json::from_str(
            r#"{"node_id":"n1","sdk_latest_seen":null,"backend_stability":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(hb.node_id, "n1");
        assert_eq!(hb.available, None);
        assert!(hb.extra.contains_key("backend_stability"));
        let out = serde_json::to_value(&hb).unwrap();
        assert_eq!(out["backend_stability"]["x"], 1);
    }
}
