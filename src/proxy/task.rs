//! From a dialect's request to a mesh task: the JSON body, the model it
//! names, the task with its constraints.

use super::dialect::{Dialect, ProxyError};
use crate::server::request::{BodyError, RawBody};
use crate::wire::{IntentUrn, TaskConstraints, TaskRequest};
use serde_json::{Map, Value};

/// Model names that mean "any model the mesh has".
const ANY_MODEL: [&str; 3] = ["", "auto", "iicp"];

/// The request body as a JSON object, or the dialect's 400/408/413.
pub(crate) fn json_object(
    dialect: Dialect,
    body: Result<RawBody, BodyError>,
) -> Result<Map<String, Value>, ProxyError> {
    let RawBody(bytes) = body.map_err(|e| dialect.body_error(e))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(dialect.invalid("the request body must be a JSON object")),
        // serde's message names a line and column, never the bytes.
        Err(e) => Err(dialect.invalid(format!("the request body is not valid JSON: {e}"))),
    }
}

/// Takes the model the request names out of `body` when it means "any"
/// (`""`, `auto`, `iicp`, or none), so the node's backend uses its own;
/// otherwise leaves it and returns it, to route by.
pub(crate) fn take_model(
    dialect: Dialect,
    body: &mut Map<String, Value>,
) -> Result<Option<String>, ProxyError> {
    match body.get("model") {
        None | Some(Value::Null) => {
            body.remove("model");
            Ok(None)
        }
        Some(Value::String(m)) if ANY_MODEL.contains(&m.trim()) => {
            body.remove("model");
            Ok(None)
        }
        Some(Value::String(m)) => Ok(Some(m.clone())),
        Some(_) => Err(dialect.invalid("`model` must be a string")),
    }
}

/// A `bool` field that may be absent (then `default`).
pub(crate) fn flag(
    dialect: Dialect,
    body: &Map<String, Value>,
    field: &str,
    default: bool,
) -> Result<bool, ProxyError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(dialect.invalid(format!("`{field}` must be a boolean"))),
    }
}

/// A positive integer field that may be absent.
pub(crate) fn count(
    dialect: Dialect,
    body: &Map<String, Value>,
    field: &str,
) -> Result<Option<u64>, ProxyError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| dialect.invalid(format!("`{field}` must be a positive integer"))),
    }
}

/// The task: `payload` for `intent`, routed by `model`, with `max_tokens`
/// as a constraint (the node caps the backend call with it).
pub(crate) fn task(
    intent: IntentUrn,
    payload: Map<String, Value>,
    model: Option<String>,
    max_tokens: Option<u64>,
) -> TaskRequest {
    let mut task = TaskRequest::new(intent, Value::Object(payload));
    task.constraints = Some(TaskConstraints {
        model,
        max_tokens,
        ..Default::default()
    });
    task
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn any_model_is_taken_out_a_named_one_stays() {
        for m in ["", "auto", "iicp", " auto "] {
            let mut b = obj(json!({"model": m, "messages": []}));
            assert_eq!(take_model(Dialect::OpenAi, &mut b).unwrap(), None);
            assert!(!b.contains_key("model"));
        }
        let mut b = obj(json!({"model": "qwen2.5:0.5b"}));
        assert_eq!(
            take_model(Dialect::OpenAi, &mut b).unwrap().as_deref(),
            Some("qwen2.5:0.5b")
        );
        assert_eq!(b["model"], "qwen2.5:0.5b");
        let mut b = obj(json!({"model": 7}));
        assert_eq!(
            take_model(Dialect::Ollama, &mut b).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn fields_are_checked() {
        let b = obj(json!({"stream": "yes", "max_tokens": -1, "n": 3}));
        assert!(flag(Dialect::OpenAi, &b, "stream", false).is_err());
        assert!(flag(Dialect::OpenAi, &b, "absent", true).unwrap());
        assert!(count(Dialect::OpenAi, &b, "max_tokens").is_err());
        assert_eq!(count(Dialect::OpenAi, &b, "n").unwrap(), Some(3));
        assert_eq!(count(Dialect::OpenAi, &b, "absent").unwrap(), None);
    }

    #[test]
    fn bodies_that_are_not_objects_are_400() {
        for body in [&b"[1,2]"[..], b"not json", b"\"s\"", b""] {
            let e = json_object(Dialect::OpenAi, Ok(RawBody(body.to_vec().into()))).unwrap_err();
            assert_eq!(e.status(), 400);
        }
    }
}
