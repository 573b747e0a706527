//! The harness of each fuzz target: `fuzz_targets/<name>.rs` calls
//! `targets::<name>::run(data)`. The harnesses live in this library because
//! most of what they drive is `pub(crate)` in the main crate.
//!
//! Each harness feeds its input to the function the program calls on bytes
//! from the network, runs the checks the program runs after decoding, and
//! asserts what must hold (oracles): decode → encode → decode gives the same
//! value, two implementations of one rule agree, a value the program sends
//! is one it reads back. A panic, a hang (`-timeout`) or an allocation over
//! `-malloc_limit_mb` is a finding.

pub mod consumer_token;
pub mod cx_envelope;
pub mod directory_lifecycle;
pub mod discover_answer;
pub mod engine_answer;
pub mod gossip;
pub mod relay_bind;
pub mod task_answer;
pub mod task_envelope;

use crate::cx::CxKeyPair;
use crate::token::DirectorySigningKey;
use serde_json::Value;
use std::sync::LazyLock;

/// The intent most seeds use.
pub(crate) const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

/// The node's CX key in every target (fixed, so a crash replays).
pub(crate) static NODE_CX: LazyLock<CxKeyPair> =
    LazyLock::new(|| CxKeyPair::from_secret_bytes([0x11; 32]));

/// The directory's signing key in every target.
pub(crate) static DIRECTORY_KEY: LazyLock<DirectorySigningKey> =
    LazyLock::new(|| DirectorySigningKey::from_seed([0x22; 32]));

/// Two JSON values are the same, numbers compared as `f64` within a few
/// ULPs (serde_json's default float parser, without `float_roundtrip` as in
/// the main crate, may read the shortest text of a float back one ULP off),
/// and a member that is `null` on one side may be absent on the other.
pub(crate) fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => close(x, y),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        // A field sent as null and a field left out read the same
        // (`Option` fields), so they compare equal. Each member is compared
        // once (comparing the keys of both sides in turn compared a member
        // both have twice, and twice again at each level below: 2^depth).
        (Value::Object(x), Value::Object(y)) => {
            x.iter()
                .all(|(k, v)| same_json(v, y.get(k).unwrap_or(&Value::Null)))
                && y.iter()
                    .filter(|(k, _)| !x.contains_key(*k))
                    .all(|(_, v)| v.is_null())
        }
        _ => a == b,
    }
}

/// `x` and `y` within 4 ULPs (or both equal, infinities included).
pub(crate) fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
}

/// Asserts that `value` serialises, reads back as `T`, and serialises to
/// the same JSON (the same text, else the same within [`same_json`]): what
/// a peer of ours decodes from our output is what we meant.
pub(crate) fn assert_round_trip<T>(value: &T, what: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let text = serde_json::to_vec(value).unwrap_or_else(|e| panic!("{what} serialises: {e}"));
    let again: T = serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("{what} reads back what it wrote: {e}"));
    let text_again = serde_json::to_vec(&again).expect("serialises");
    if text_again == text {
        return;
    }
    let first: Value = serde_json::from_slice(&text).expect("JSON");
    let second: Value = serde_json::from_slice(&text_again).expect("JSON");
    assert!(
        same_json(&first, &second),
        "{what} changed in a JSON round trip:\n{first}\n{second}"
    );
}

/// The taxonomy rules' definition, as `policy.rs`'s own test states it: the
/// first rule (in file order) one of whose fragments occurs in the
/// lower-cased intent. Read from the same embedded file.
pub(crate) fn policy_reference(intent: &str, refused_only: bool) -> Option<String> {
    static RULES: LazyLock<Vec<(bool, String, Vec<String>)>> = LazyLock::new(|| {
        let taxonomy: Value =
            serde_json::from_str(include_str!("../../../src/wire/intent-risk-taxonomy.json"))
                .expect("taxonomy");
        taxonomy["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| {
                let refused = matches!(r["category"].as_str(), Some("prohibited" | "high_risk"));
                let id = r["rule_id"].as_str().expect("rule_id").to_owned();
                let fragments = r["fragments"]
                    .as_array()
                    .expect("fragments")
                    .iter()
                    .map(|f| f.as_str().expect("fragment").to_owned())
                    .collect();
                (refused, id, fragments)
            })
            .collect()
    });
    let lower = intent.to_ascii_lowercase();
    RULES
        .iter()
        .filter(|(refused, _, _)| !refused_only || *refused)
        .find(|(_, _, fragments)| fragments.iter().any(|f| lower.contains(f.as_str())))
        .map(|(_, id, _)| id.clone())
}

/// Asserts that the policy guard (one Aho-Corasick pass) agrees with
/// [`policy_reference`] on `intent`, for both entry points.
pub(crate) fn check_policy(intent: &str) {
    let classified = crate::wire::policy::classify_intent(intent).map(|r| r.rule_id.clone());
    assert_eq!(
        classified,
        policy_reference(intent, false),
        "classify_intent disagrees with the rules on {intent:?}"
    );
    let refused = crate::wire::check_intent_policy(intent)
        .err()
        .map(|v| v.rule_id);
    assert_eq!(
        refused,
        policy_reference(intent, true),
        "check_intent_policy disagrees with the rules on {intent:?}"
    );
}

/// A small deterministic generator for choices a harness makes from its
/// input (no global randomness, so a crash replays).
pub(crate) struct Picks(u64);

impl Picks {
    pub fn new(data: &[u8]) -> Self {
        // FNV-1a of the input.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in data {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(h)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
