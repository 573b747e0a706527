//! `engine_answer`: a model server's answer to a buffered call, as the node
//! relays it into an HTTP answer (`node/relayed.rs`, `envelope::relayed`,
//! `Answer::to_json`).
//!
//! Oracles, against serde_json reading the same bytes as a value (the path
//! every other answer takes, and the one relayed text must agree with):
//! - text the glance takes is JSON serde_json reads, one object, not an
//!   envelope already; `model` and `usage.total_tokens` are what the parsed
//!   value holds there;
//! - the HTTP answer built from it is JSON, and reads as the answer built
//!   from the parsed value (`envelope::success`) reads (floats within a few
//!   ULPs, `same_json`);
//! - the glance refuses no object serde_json reads unless it is an
//!   envelope already or names serde_json's raw value token (nothing goes
//!   down the slow path for no reason).

use super::same_json;
use crate::node::answer::Answer;
use crate::node::envelope::{ENVELOPE_KEYS, relayed, success};
use crate::node::relayed::glance;
use serde_json::Value;

pub fn run(data: &[u8]) {
    let parsed = serde_json::from_slice::<Value>(data);
    let Some(seen) = glance(data) else {
        if let Ok(Value::Object(obj)) = &parsed {
            let wrapped = obj.contains_key("result")
                && obj.keys().all(|k| ENVELOPE_KEYS.contains(&k.as_str()));
            // serde_json's raw value token is sent down the parsing path.
            let token = String::from_utf8_lossy(data).contains("$serde_json::private::RawValue");
            assert!(wrapped || token, "an object refused for no reason");
        }
        return;
    };
    let value = parsed.expect("relayed text is JSON serde_json reads");
    assert!(value.is_object(), "relayed text is one object");
    assert_eq!(
        seen.model.as_deref(),
        value.get("model").and_then(Value::as_str),
        "model"
    );
    assert_eq!(
        seen.tokens,
        value
            .get("usage")
            .and_then(|u| u.get("total_tokens"))
            .and_then(Value::as_u64),
        "usage.total_tokens"
    );
    let answer = relayed(
        "t",
        bytes::Bytes::copy_from_slice(data),
        seen,
        7,
        Some("n".into()),
    );
    let sent: Value = serde_json::from_slice(&answer.to_json()).expect("the answer is JSON");
    let reference = Answer::envelope(200, success("t", value, 7, Some("n".into())));
    let expected: Value = serde_json::from_slice(&reference.to_json()).unwrap();
    // Within a few ULPs: the parsed path writes a float's shortest text and
    // reads it back, which serde_json may do one ULP off; relayed text is
    // read from the engine's own digits.
    assert!(
        same_json(&sent, &expected),
        "the relayed answer reads as the parsed one: {sent} against {expected}"
    );
}
