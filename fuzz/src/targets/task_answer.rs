//! `task_answer`: a node's answer to `POST /v1/task`, as the client reads it.
//!
//! The client's path (`client/judge.rs` `judge_success_body` for an HTTP
//! 2xx body, then `client/{chat,complete,embed}.rs`): the body is read as a
//! [`TaskResponse`] by the one-pass visitor of `wire/task_response_de.rs`,
//! judged in plaintext (`judge_envelope`: success, timeout, error, a backend
//! error inside a success), and a success becomes the chat, text
//! completion and embedding replies the SDK returns.
//!
//! Oracles: the visitor reads exactly what serde's derived form of the same
//! struct reads (the form it replaced; [`Derived`] here) and refuses what
//! it refuses; a read answer re-encodes to JSON that reads back the same;
//! the judge passes only a success whose result carries no numeric
//! `error_code`, and judges the same envelope the same way twice; a reply
//! built from an answer carries the answer's task id and node.

use super::assert_round_trip;
use crate::client::chat::into_chat_response;
use crate::client::complete::into_completion_response;
use crate::client::embed::into_embed_response;
use crate::client::judge::{judge_envelope, judge_success_body};
use crate::wire::{TaskError, TaskMetrics, TaskResponse, TaskStatus};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// serde's derived reading of [`TaskResponse`] (its field attributes as
/// declared in `wire/task.rs`), the reference the visitor must agree with.
#[derive(Debug, Deserialize)]
struct Derived {
    #[serde(default)]
    task_id: String,
    status: TaskStatus,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default, deserialize_with = "error_field")]
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

/// PROTOCOL.md §2.3's `error`: an object, a bare message, or null.
fn error_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TaskError>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(message)) => Ok(Some(TaskError {
            code: None,
            message,
            extra: Map::new(),
        })),
        Some(other) => TaskError::deserialize(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

pub fn run(data: &[u8]) {
    let ours = serde_json::from_slice::<TaskResponse>(data);
    let reference = serde_json::from_slice::<Derived>(data);
    let response = match (ours, reference) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.task_id, b.task_id);
            assert_eq!(a.status, b.status);
            assert_eq!(a.result, b.result);
            assert_eq!(a.error, b.error);
            assert_eq!(a.metrics, b.metrics);
            assert_eq!(a.model_used, b.model_used);
            assert_eq!(a.generated_by_ai, b.generated_by_ai);
            assert_eq!(a.iicp_conf_resp, b.iicp_conf_resp);
            assert_eq!(a.extra, b.extra);
            a
        }
        (Err(_), Err(_)) => {
            // Refused by both; the client's path answers a decode error.
            assert!(judge_success_body(data, "node", None).is_err());
            return;
        }
        (ours, reference) => panic!(
            "the one-pass reader and the derived form disagree: ours {:?}, derived {:?}",
            ours.map(|r| r.status),
            reference.map(|r| r.status)
        ),
    };
    assert_round_trip(&response, "a task answer");

    let judged = judge_envelope(response.clone(), "node", None);
    let again = judge_success_body(data, "node", None);
    assert_eq!(judged.is_ok(), again.is_ok(), "judged differently twice");
    let Ok(passed) = judged else {
        return;
    };
    assert!(
        passed.status.is_success(),
        "a {:?} answer passed the judge",
        passed.status
    );
    assert!(
        passed
            .result
            .as_ref()
            .and_then(|r| r.get("error_code"))
            .is_none_or(|c| !c.is_number()),
        "a backend error inside a success passed the judge"
    );
    let node = passed.metrics.as_ref().and_then(|m| m.node_id.clone());
    if let Ok(chat) = into_chat_response(passed.clone()) {
        assert!(!chat.choices.is_empty(), "a chat reply without choices");
        assert_eq!(chat.task_id, passed.task_id);
        assert_eq!(chat.node_id, node);
        let _ = chat.text();
    }
    if let Ok(text) = into_completion_response(passed.clone()) {
        assert!(!text.choices.is_empty(), "a completion without choices");
        assert_eq!(text.task_id, passed.task_id);
        let _ = text.text();
    }
    let inputs = passed
        .result
        .as_ref()
        .and_then(|r| r.get("data"))
        .and_then(Value::as_array)
        .map_or(1, Vec::len);
    if let Ok(embedded) = into_embed_response(passed, inputs) {
        assert_eq!(embedded.vectors().len(), inputs, "vectors for each input");
    }
}
