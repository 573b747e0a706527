//! Reading a [`TaskResponse`] in one pass (issue 17).
//!
//! serde's derived `Deserialize` for a struct with a `#[serde(flatten)]`
//! map first buffers every field of the object in its own intermediate form
//! and then builds the fields from that copy: the answer's whole `result`
//! tree is built twice. This visitor reads each key once and sends known
//! keys straight to their field's type and the rest into `extra`, and
//! accepts exactly what the derived form accepted: a JSON object, `status`
//! required, a known key at most once ("duplicate field"), `null` for an
//! absent optional field, `error` as an object, a string or null. The unit
//! tests compare it with the derived form over the test vectors and edge
//! cases.

use super::task::{TaskError, TaskMetrics, TaskResponse, TaskStatus, task_error};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The keys [`TaskResponse`] names; anything else goes to `extra`.
enum Key {
    TaskId,
    Status,
    Result,
    Error,
    Metrics,
    ModelUsed,
    GeneratedByAi,
    IicpConfResp,
    Other(String),
}

impl Key {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "task_id" => Self::TaskId,
            "status" => Self::Status,
            "result" => Self::Result,
            "error" => Self::Error,
            "metrics" => Self::Metrics,
            "model_used" => Self::ModelUsed,
            "generated_by_ai" => Self::GeneratedByAi,
            "iicp_conf_resp" => Self::IicpConfResp,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key::of(v).unwrap_or_else(|| Key::Other(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
                Ok(Key::of(&v).unwrap_or(Key::Other(v)))
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// `error` as [`task_error`] reads it.
struct ErrorField(Option<TaskError>);

impl<'de> Deserialize<'de> for ErrorField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        task_error(d).map(ErrorField)
    }
}

/// Stores a known field, refusing it the second time.
fn once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), &'static str> {
    if slot.is_some() {
        return Err(name);
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Deserialize<'de> for TaskResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ResponseVisitor)
    }
}

struct ResponseVisitor;

impl<'de> Visitor<'de> for ResponseVisitor {
    type Value = TaskResponse;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a task answer object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TaskResponse, A::Error> {
        let mut task_id: Option<String> = None;
        let mut status: Option<TaskStatus> = None;
        let mut result: Option<Option<Value>> = None;
        let mut error: Option<Option<TaskError>> = None;
        let mut metrics: Option<Option<TaskMetrics>> = None;
        let mut model_used: Option<Option<String>> = None;
        let mut generated_by_ai: Option<Option<bool>> = None;
        let mut iicp_conf_resp: Option<Option<Value>> = None;
        let mut extra = Map::new();
        while let Some(key) = map.next_key::<Key>()? {
            let stored = match key {
                Key::TaskId => once(&mut task_id, map.next_value()?, "task_id"),
                Key::Status => once(&mut status, map.next_value()?, "status"),
                Key::Result => once(&mut result, map.next_value()?, "result"),
                Key::Error => once(&mut error, map.next_value::<ErrorField>()?.0, "error"),
                Key::Metrics => once(&mut metrics, map.next_value()?, "metrics"),
                Key::ModelUsed => once(&mut model_used, map.next_value()?, "model_used"),
                Key::GeneratedByAi => {
                    once(&mut generated_by_ai, map.next_value()?, "generated_by_ai")
                }
                Key::IicpConfResp => once(&mut iicp_conf_resp, map.next_value()?, "iicp_conf_resp"),
                Key::Other(name) => {
                    extra.insert(name, map.next_value()?);
                    Ok(())
                }
            };
            stored.map_err(de::Error::duplicate_field)?;
        }
        Ok(TaskResponse {
            task_id: task_id.unwrap_or_default(),
            status: status.ok_or_else(|| de::Error::missing_field("status"))?,
            result: result.flatten(),
            error: error.flatten(),
            metrics: metrics.flatten(),
            model_used: model_used.flatten(),
            generated_by_ai: generated_by_ai.flatten(),
            iicp_conf_resp: iicp_conf_resp.flatten(),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// The derived form this visitor replaces, kept as the reference.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Derived {
        #[serde(default)]
        task_id: String,
        status: TaskStatus,
        #[serde(default)]
        result: Option<Value>,
        #[serde(default, deserialize_with = "task_error")]
        error: Option<TaskError>,
        #[serde(default)]
        metrics: Option<TaskMetrics>,
        #[serde(default)]
        model_used: Option<String>,
        #[serde(default)]
        generated_by_ai: Option<bool>,
        #[serde(default)]
        iicp_conf_resp: Option<Value>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    }

    fn both(text: &str) -> (Result<TaskResponse, String>, Result<Derived, String>) {
        (
            serde_json::from_str::<TaskResponse>(text).map_err(|e| e.to_string()),
            serde_json::from_str::<Derived>(text).map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn reads_what_the_derived_form_reads_and_refuses_what_it_refuses() {
        let cases = [
            r#"{"task_id":"t","status":"success","result":{"choices":[{"message":{"content":"hi"}}]},"metrics":{"latency_ms":3,"node_id":"n","x":1},"model_used":"m","generated_by_ai":true,"extra_key":[1,2]}"#,
            r#"{"status":"completed"}"#,
            r#"{"status":"error","error":"a plain message"}"#,
            r#"{"status":"error","error":{"code":"backend_error","message":"down","detail":7}}"#,
            r#"{"status":"error","error":null,"result":null,"metrics":null,"model_used":null}"#,
            r#"{"status":"encrypted","iicp_conf_resp":{"ct":"abc"}}"#,
            r#"{"status":"timeout","task_id":"a\u00e9\"b"}"#,
            r#"{"status":"success","a":1,"a":2}"#,
            r#"{"status":"success","status":"error"}"#,
            r#"{"status":"success","result":1,"result":2}"#,
            r#"{"task_id":"t"}"#,
            r#"{"status":"done"}"#,
            r#"{"status":"success","task_id":null}"#,
            r#"{"status":"success","generated_by_ai":"yes"}"#,
            r#"{"status":"success","error":5}"#,
            r#"["success"]"#,
            r#""success""#,
            r#"null"#,
            r#"{"status":"success","metrics":{"latency_ms":-1}}"#,
        ];
        for text in cases {
            let (ours, derived) = both(text);
            match (&ours, &derived) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.task_id, b.task_id, "{text}");
                    assert_eq!(a.status, b.status, "{text}");
                    assert_eq!(a.result, b.result, "{text}");
                    assert_eq!(a.error, b.error, "{text}");
                    assert_eq!(a.metrics, b.metrics, "{text}");
                    assert_eq!(a.model_used, b.model_used, "{text}");
                    assert_eq!(a.generated_by_ai, b.generated_by_ai, "{text}");
                    assert_eq!(a.iicp_conf_resp, b.iicp_conf_resp, "{text}");
                    assert_eq!(a.extra, b.extra, "{text}");
                }
                (Err(_), Err(_)) => {}
                _ => panic!("{text}: ours {ours:?}, derived {derived:?}"),
            }
        }
    }

    #[test]
    fn a_second_known_field_is_named_in_the_error() {
        let e = serde_json::from_str::<TaskResponse>(r#"{"status":"success","status":"error"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate field `status`"), "{e}");
        let e = serde_json::from_str::<TaskResponse>(r#"{"task_id":"t"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `status`"), "{e}");
    }
}
