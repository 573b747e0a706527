//! DISCOVER query and answer, the node object, and BOOTSTRAP (PROTOCOL.md
//! §1.6, §1.8).
//!
//! The node object is read leniently: only `node_id`, `endpoint`, `score` and
//! `available` are required, `region` may be null, and a CX key of an
//! unexpected shape reads as absent rather than failing the whole list.

use super::lenient;
use super::qos::Qos;
use super::register::{Capability, CxPublicKey, Pricing};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Default `limit` of a discover query.
pub const DEFAULT_DISCOVER_LIMIT: u32 = 10;
/// Largest `limit` a directory honours.
pub const MAX_DISCOVER_LIMIT: u32 = 50;

/// Clamps a requested limit to 1..=50, defaulting to 10.
pub fn clamp_limit(limit: Option<i64>) -> u32 {
    match limit {
        None => DEFAULT_DISCOVER_LIMIT,
        Some(n) => n.clamp(1, i64::from(MAX_DISCOVER_LIMIT)) as u32,
    }
}

/// `GET /v1/discover` query parameters. Parameters not listed here
/// (profile negotiation, `relay_capable`) are ignored.
///
/// No flattened `extra` map here: serde's flatten buffers values, and URL
/// query values are all strings, so typed fields (`limit`) would stop parsing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoverQuery {
    /// The intent wanted (required by directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// QoS class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<Qos>,
    /// Preferred region (raises the score, never filters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// At most this many nodes (1..=50, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Reputation floor 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reputation: Option<f64>,
    /// Only nodes serving this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `1`/`true`: only CIP providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cip_capable: Option<String>,
    /// `public` for the redacted view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
}

/// A node as a directory describes it in discover answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's identity.
    pub node_id: String,
    /// Base URL for `POST {endpoint}/v1/task`.
    pub endpoint: String,
    /// Directory score in 0..1; never rewritten by clients.
    pub score: f64,
    /// Whether the node takes tasks now.
    pub available: bool,
    /// Declared region (may be empty).
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    pub region: String,
    /// Load 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// Tasks running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_jobs: Option<u32>,
    /// Concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Models served.
    #[serde(default)]
    pub models: Vec<String>,
    /// Capabilities for the queried intent.
    #[serde(
        default,
        deserialize_with = "lenient::list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capabilities: Vec<Capability>,
    /// The node's CX key, or null.
    #[serde(default, deserialize_with = "lenient::optional")]
    pub cx_public_key: Option<CxPublicKey>,
    /// Retired alias of `cx_public_key` that some directories still send.
    #[serde(
        default,
        deserialize_with = "lenient::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key: Option<CxPublicKey>,
    /// Reputation 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation_score: Option<f64>,
    /// Reputation tier (`bronze`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation_tier: Option<String>,
    /// Estimated latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_estimate_ms: Option<u64>,
    /// Transports offered: `http`, `https`, `iicp-native`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transport: Vec<String>,
    /// Native endpoint, `iicp://h:p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_endpoint: Option<String>,
    /// How the node is reached (`direct`, `turn_relay`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_method: Option<String>,
    /// Transport details (`relay_for`, `relay_host`, `relay_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_metadata: Option<Map<String, Value>>,
    /// Whether the node relays for others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_capable: Option<bool>,
    /// `direct`, `relay` or `limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachability_tier: Option<String>,
    /// `healthy`, `degraded`, `impaired`, `critical` or `offline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_label: Option<String>,
    /// Input modalities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_modalities: Option<Vec<String>>,
    /// `current`, `downlevel` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_status: Option<String>,
    /// True when a CX key is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ready: Option<bool>,
    /// True while the node is in probation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation: Option<bool>,
    /// Backend flavour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Pricing.
    #[serde(
        default,
        deserialize_with = "lenient::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub pricing: Option<Pricing>,
    /// Everything else the directory sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NodeInfo {
    /// The CX key, preferring `cx_public_key` over the `public_key` alias.
    pub fn effective_cx_key(&self) -> Option<&CxPublicKey> {
        self.cx_public_key.as_ref().or(self.public_key.as_ref())
    }
}

/// `GET /v1/discover` 200 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    /// Eligible nodes, best first.
    #[serde(default, deserialize_with = "lenient::list")]
    pub nodes: Vec<NodeInfo>,
    /// Number of nodes returned.
    #[serde(default)]
    pub count: usize,
    /// True when a returned node relays.
    #[serde(default)]
    pub relay_available: bool,
    /// Query time at the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_ms: Option<u64>,
    /// `dispatch` or `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// `route_dispatch` or `public_presentation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_class: Option<String>,
    /// Whether nodes carry route fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_fields_present: Option<bool>,
    /// Everything else (`diversity_evidence`, `profile_negotiation`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A peer in a bootstrap answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its identity.
    pub node_id: String,
    /// Its endpoint.
    pub endpoint: String,
    /// Its region.
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    pub region: String,
    /// When it was last seen (RFC 3339), or null.
    #[serde(default)]
    pub last_seen: Option<Value>,
}

/// `GET /v1/bootstrap` 200 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Recently seen nodes, newest first.
    pub peers: Vec<PeerInfo>,
    /// Number of peers.
    pub count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_clamps() {
        assert_eq!(clamp_limit(None), 10);
        assert_eq!(clamp_limit(Some(0)), 1);
        assert_eq!(clamp_limit(Some(-4)), 1);
        assert_eq!(clamp_limit(Some(7)), 7);
        assert_eq!(clamp_limit(Some(500)), 50);
    }

    #[test]
    fn node_reads_leniently_and_prefers_cx_public_key() {
        let n: NodeInfo = serde_json::from_value(serde_json::json!({
            "node_id": "n1", "endpoint": "https://a.example.net", "score": 0.5,
            "available": true, "region": null,
            "cx_public_key": null,
            "public_key": {"algorithm":"X25519","encoding":"base64url","key":"AAAA","key_id":"cx-1"},
            "capabilities": [{"intent":"not a urn"}, {"intent":"urn:iicp:intent:llm:chat:v1"}],
            "mystery": 1
        }))
        .unwrap();
        assert_eq!(n.region, "");
        assert_eq!(n.effective_cx_key().unwrap().key_id, "cx-1");
        assert_eq!(
            n.capabilities.len(),
            1,
            "the malformed capability is dropped"
        );
        assert_eq!(n.extra["mystery"], 1);
    }
}
