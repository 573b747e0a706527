//! JSON error bodies (PROTOCOL.md §1.2, §4).
//!
//! Three shapes are in use: the normal `{"error":{"code","message"}}`, the flat
//! `{"error":"IICP-E034","message",…,"retry_after":60}` of rate limits and
//! ownership refusals, and a top-level `{"code","message"}`. We emit the normal
//! form (adding fields such as `retry_after_ms` inside `error`) and parse all
//! three.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The normal error body: `{"error":{"code","message",…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error object.
    pub error: ErrorDetail,
}

/// The object under `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code: a slug (`validation_error`) or `IICP-E0xx`.
    pub code: String,
    /// Human-readable explanation.
    #[serde(default)]
    pub message: String,
    /// Anything else (`retry_after_ms`, `qos_class`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorBody {
    /// An error body with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                extra: Map::new(),
            },
        }
    }

    /// Adds a field inside the `error` object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.error.extra.insert(key.to_owned(), value.into());
        self
    }
}

/// An error read from any of the three body shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedError {
    /// The code, e.g. `unauthorized` or `IICP-E021`.
    pub code: String,
    /// The message, empty when the body had none.
    pub message: String,
    /// A retry hint in milliseconds from `retry_after_ms` or `retry_after` (seconds).
    pub retry_after_ms: Option<u64>,
}

/// Reads an error from a response body in any of the three shapes; `None`
/// when the body is not JSON or carries no recognisable code.
pub fn parse_error_body(body: &[u8]) -> Option<ParsedError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;
    let (code, inner) = match obj.get("error") {
        Some(Value::Object(inner)) => (inner.get("code")?.as_str()?.to_owned(), Some(inner)),
        Some(Value::String(code)) => (code.clone(), None),
        _ => (obj.get("code")?.as_str()?.to_owned(), None),
    };
    let field = |k: &str| inner.and_then(|i| i.get(k)).or_else(|| obj.get(k));
    let message = field("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let retry_after_ms = field("retry_after_ms").and_then(Value::as_u64).or_else(|| {
        field("retry_after")
            .and_then(Value::as_u64)
            .map(|s| s.saturating_mul(1000))
    });
    Some(ParsedError {
        code,
        message,
        retry_after_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_shapes() {
        let nested = parse_error_body(
            br#"{"error":{"code":"IICP-E021","message":"capacity_exceeded","retry_after_ms":2000}}"#,
        )
        .unwrap();
        assert_eq!(nested.code, "IICP-E021");
        assert_eq!(nested.message, "capacity_exceeded");
        assert_eq!(nested.retry_after_ms, Some(2000));

        let flat =
            parse_error_body(br#"{"error":"IICP-E034","message":"slow down","retry_after":60}"#)
                .unwrap();
        assert_eq!(flat.code, "IICP-E034");
        assert_eq!(flat.retry_after_ms, Some(60_000));

        let top = parse_error_body(br#"{"code":"IICP-E005","message":"overloaded"}"#).unwrap();
        assert_eq!(top.code, "IICP-E005");
        assert_eq!(top.message, "overloaded");
        assert_eq!(top.retry_after_ms, None);
    }

    #[test]
    fn non_error_bodies_give_none() {
        assert!(parse_error_body(b"not json").is_none());
        assert!(parse_error_body(br#"{"ok":true}"#).is_none());
        assert!(parse_error_body(br#"{"error":null}"#).is_none());
    }

    #[test]
    fn emits_the_normal_form() {
        let body = ErrorBody::new("IICP-E021", "capacity_exceeded").with("retry_after_ms", 2000);
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error":{"code":"IICP-E021","message":"capacity_exceeded","retry_after_ms":2000}})
        );
    }
}
