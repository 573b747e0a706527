//! Cost limits: a task's payload comes from a consumer, but the model
//! server bills the operator, so the parameters that multiply cost are
//! lowered to the operator's limits before a request leaves the node.
//!
//! Token fields: `max_tokens`, `max_completion_tokens`. Choice fields: `n`,
//! `best_of`. A value above its limit becomes the limit; `null` is dropped
//! (as if absent); anything but a non-negative integer is refused, so a
//! lenient server cannot read `"1000000"` as a number.

use super::error::BackendError;
use serde_json::Value;

/// Default token limit of one answer.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Default number of answers (`n`) one task may ask for.
pub const DEFAULT_MAX_CHOICES: u64 = 1;

/// Payload fields that bound the tokens of one answer.
const TOKEN_FIELDS: &[&str] = &["max_tokens", "max_completion_tokens"];
/// Payload fields that ask for several answers.
const CHOICE_FIELDS: &[&str] = &["n", "best_of"];

/// The operator's limits on what one request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostLimits {
    /// Most tokens one answer may ask for.
    pub max_tokens: u64,
    /// Most answers one request may ask for.
    pub max_choices: u64,
}

impl Default for CostLimits {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            max_choices: DEFAULT_MAX_CHOICES,
        }
    }
}

/// `value` as a count no larger than `cap`; `None` for `null`.
pub(crate) fn clamped(field: &str, value: &Value, cap: u64) -> Result<Option<u64>, BackendError> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f.min(u64::MAX as f64) as u64)
        }),
        _ => None,
    };
    n.map(|n| Some(n.min(cap))).ok_or_else(|| {
        BackendError::InvalidRequest(format!("`{field}` must be a non-negative integer"))
    })
}

/// Lowers the cost fields of a JSON object payload to `limits` in place.
pub fn clamp_cost(payload: &mut Value, limits: CostLimits) -> Result<(), BackendError> {
    let Value::Object(obj) = payload else {
        return Ok(());
    };
    // Most payloads name none of them: one pass over their few keys costs
    // less than looking each field up.
    let is_cost_field =
        |k: &String| TOKEN_FIELDS.contains(&k.as_str()) || CHOICE_FIELDS.contains(&k.as_str());
    if !obj.keys().any(is_cost_field) {
        return Ok(());
    }
    let fields = TOKEN_FIELDS
        .iter()
        .map(|f| (*f, limits.max_tokens))
        .chain(CHOICE_FIELDS.iter().map(|f| (*f, limits.max_choices)));
    for (field, cap) in fields {
        let Some(value) = obj.get(field) else {
            continue;
        };
        match clamped(field, value, cap)? {
            Some(n) => obj.insert(field.to_owned(), n.into()),
            None => obj.remove(field),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lowers_cost_fields_and_refuses_non_integers() {
        let limits = CostLimits {
            max_tokens: 100,
            max_choices: 2,
        };
        let mut p = json!({"max_tokens": 1_000_000, "max_completion_tokens": 50.0,
            "n": 8, "best_of": null, "temperature": 9, "messages": []});
        clamp_cost(&mut p, limits).unwrap();
        assert_eq!(
            p,
            json!({"max_tokens": 100, "max_completion_tokens": 50, "n": 2,
                "temperature": 9, "messages": []})
        );
        for bad in [
            json!("1000000"),
            json!(-1),
            json!(1.5),
            json!([1]),
            json!({}),
        ] {
            let mut p = json!({ "max_tokens": bad });
            assert!(
                matches!(
                    clamp_cost(&mut p, limits),
                    Err(BackendError::InvalidRequest(_))
                ),
                "{p}"
            );
        }
        let mut text = json!("not an object");
        clamp_cost(&mut text, limits).unwrap();
        assert_eq!(CostLimits::default().max_tokens, DEFAULT_MAX_TOKENS);
    }
}
