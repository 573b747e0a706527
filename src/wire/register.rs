//! REGISTER and DEREGISTER messages (PROTOCOL.md §1.3, §1.5).
//!
//! Unknown fields are kept in `extra` so a directory or node that relays a
//! body loses nothing; closed vocabularies are enums, so an unknown value is a
//! deserialisation error (the directory answers it with 422).

use super::intent::IntentUrn;
use crate::secret::Secret;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::LazyLock;

static NODE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,35}$").expect("static regex"));

/// Whether `id` is a valid node id (PROTOCOL.md §1.3): at most 36
/// characters of `[A-Za-z0-9._:-]`, a letter or digit first.
pub fn is_valid_node_id(id: &str) -> bool {
    NODE_ID.is_match(id)
}

/// An input or output modality of a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Text.
    Text,
    /// Images.
    Image,
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// How a node is reached (`transport_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportMethod {
    /// Reachable directly.
    Direct,
    /// Through a UPnP port mapping.
    UpnpMapped,
    /// Through STUN hole punching.
    StunHolePunch,
    /// Through a relay.
    TurnRelay,
    /// Through an external tunnel.
    ExternalTunnel,
    /// Through a WebRTC data channel.
    WebrtcDatachannel,
}

/// NAT classification (`nat_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatType {
    /// Full cone.
    FullCone,
    /// Restricted cone.
    RestrictedCone,
    /// Port restricted.
    PortRestricted,
    /// Symmetric.
    Symmetric,
    /// Not known.
    Unknown,
}

/// How a node is exposed (`exposure_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExposureMode {
    /// Makes outbound connections only.
    OutboundOnly,
    /// Public IPv4.
    Ipv4PublicDirect,
    /// Behind CGNAT.
    Ipv4CgnatBlocked,
    /// IPv6, firewall rule required.
    Ipv6DirectFirewallRequired,
    /// IPv6 with a pinhole.
    Ipv6DirectPinholeAvailable,
    /// Needs a relay.
    RelayRequired,
    /// Needs a tunnel.
    TunnelRequired,
    /// IPv4 and IPv6.
    DualStackAvailable,
}

/// The directory's backend vocabulary (`backend`), distinct from the CLI's
/// `--backend-type` (PROTOCOL.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendFlavour {
    /// Ollama.
    Ollama,
    /// LM Studio.
    Lmstudio,
    /// vLLM.
    Vllm,
    /// llama.cpp.
    Llamacpp,
    /// mesh-llm.
    Meshllm,
    /// Anthropic.
    Anthropic,
    /// Anything else.
    Custom,
}

/// One advertised capability: an intent with its models and modalities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    /// The intent served.
    pub intent: IntentUrn,
    /// Models that serve it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Largest `max_tokens` accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Input modalities; `["text"]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_modalities: Option<Vec<Modality>>,
    /// Output modalities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// Capability version, 1–32 chars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Phase, ≥ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<u64>,
    /// Variant id, ≤ 64 chars of `[A-Za-z0-9._:-]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    /// Feature flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Execution capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_capabilities: Option<Vec<String>>,
    /// Named limits, `{name: {value, unit}}`, at most 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Map<String, Value>>,
    /// Profiles, each beginning `urn:iicp:profile:`, at most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_profiles: Option<Vec<String>>,
    /// Other fields (`quantization`, `inference_engine`, `extensions`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Capability {
    /// A capability for `intent` served by `models`, text only.
    pub fn new(intent: IntentUrn, models: Vec<String>) -> Self {
        Self {
            intent,
            models,
            max_tokens: None,
            input_modalities: None,
            output_modalities: None,
            version: None,
            phase: None,
            variant_id: None,
            features: None,
            execution_capabilities: None,
            limits: None,
            supported_profiles: None,
            extra: Map::new(),
        }
    }
}

/// Node-wide limits (`limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLimits {
    /// Concurrent tasks, 1–256.
    pub max_concurrent: u32,
    /// Token budget per minute, > 0.
    #[serde(default = "default_tokens_per_min")]
    pub tokens_per_min: u64,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_tokens_per_min() -> u64 {
    100_000
}

/// The IICP-CX public key a node advertises (PROTOCOL.md §2.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CxPublicKey {
    /// `X25519`.
    pub algorithm: String,
    /// `base64url`.
    #[serde(default)]
    pub encoding: String,
    /// The key, 32 bytes base64url without padding.
    pub key: String,
    /// Opaque key id, e.g. `cx-<16 hex>`.
    #[serde(default)]
    pub key_id: String,
    /// Features such as `response_encryption_v1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Other fields (`not_after`, `hybrid_pq`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Pricing declared by a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    /// Multiplier 0..1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_cost_multiplier: Option<f64>,
    /// `per_token`, `per_request` or `flat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v1/register` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Base URL of the node's HTTP plane.
    pub endpoint: String,
    /// At least one capability.
    pub capabilities: Vec<Capability>,
    /// Region, e.g. `eu-central`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Node-wide limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<NodeLimits>,
    /// Requested identity (recovery when it exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Proof of ownership on re-registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_node_token: Option<Secret>,
    /// `iicp://h:p` or `iicpsec://h:p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_endpoint: Option<String>,
    /// How the node is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_method: Option<TransportMethod>,
    /// NAT classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_type: Option<NatType>,
    /// Transport details; `relay_endpoint` is routing-critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_metadata: Option<Map<String, Value>>,
    /// Exposure mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_mode: Option<ExposureMode>,
    /// Whether the node relays for others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_capable: Option<bool>,
    /// Native relay port (default 9485).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_accept_port: Option<u16>,
    /// Backend flavour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendFlavour>,
    /// SDK language, e.g. `rust`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_language: Option<String>,
    /// Legacy alias of `sdk_compatibility_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    /// SDK compatibility version; must equal `sdk_version` when both are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_compatibility_version: Option<String>,
    /// Our own implementation identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation_name: Option<String>,
    /// Our own implementation version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation_version: Option<String>,
    /// The node's CX key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cx_public_key: Option<CxPublicKey>,
    /// Availability windows `{start:"HH:MM", end, share}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Vec<Value>>,
    /// Pricing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Receipt profiles (only `consumer_cosignature_v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_receipt_profiles: Option<Vec<String>>,
    /// Everything else (operator, policy and updater fields).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RegisterRequest {
    /// A minimal request: endpoint plus capabilities.
    pub fn new(endpoint: impl Into<String>, capabilities: Vec<Capability>) -> Self {
        Self {
            endpoint: endpoint.into(),
            capabilities,
            region: None,
            limits: None,
            node_id: None,
            current_node_token: None,
            transport_endpoint: None,
            transport_method: None,
            nat_type: None,
            transport_metadata: None,
            exposure_mode: None,
            relay_capable: None,
            relay_accept_port: None,
            backend: None,
            sdk_language: None,
            sdk_version: None,
            sdk_compatibility_version: None,
            implementation_name: None,
            implementation_version: None,
            cx_public_key: None,
            availability: None,
            pricing: None,
            supported_receipt_profiles: None,
            extra: Map::new(),
        }
    }

    /// `sdk_compatibility_version`, falling back to the legacy `sdk_version`.
    pub fn effective_sdk_version(&self) -> Option<&str> {
        self.sdk_compatibility_version
            .as_deref()
            .or(self.sdk_version.as_deref())
    }

    /// `transport_metadata.relay_endpoint`, when present.
    pub fn relay_endpoint(&self) -> Option<&str> {
        self.transport_metadata
            .as_ref()?
            .get("relay_endpoint")?
            .as_str()
    }
}

/// The 201 ACK to a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterAck {
    /// The node's identity.
    pub node_id: String,
    /// The node's bearer token (some directories call it `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_token: Option<Secret>,
    /// Legacy spelling of `node_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Token for telemetry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_token: Option<Secret>,
    /// HMAC key for heartbeat challenges, used as its ASCII string bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_hmac_key: Option<Secret>,
    /// Token expiry; `null` today.
    #[serde(default)]
    pub expires_at: Option<Value>,
    /// Optional HS256 JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_token: Option<Secret>,
    /// Its expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_expires_at: Option<Value>,
    /// Which directory answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// The source address the directory saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_source_ip: Option<String>,
    /// True when an existing identity was recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// Tasks completed over the node's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_jobs: Option<u64>,
    /// Whether the directory could reach the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_reachable: Option<bool>,
    /// `ACK` in the spec's form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RegisterAck {
    /// `node_token`, falling back to `token` (PROTOCOL.md §1.3 step 6).
    pub fn effective_token(&self) -> Option<&Secret> {
        self.node_token.as_ref().or(self.token.as_ref())
    }
}

/// `DELETE /v1/register` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeregisterRequest {
    /// The node leaving.
    pub node_id: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `DELETE /v1/register` 200 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeregisterAck {
    /// Always true.
    pub deregistered: bool,
}
