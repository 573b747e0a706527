//! The task response envelope a node sends (PROTOCOL.md §2.3), in the
//! spec-complete form: `status`, `result`, `metrics{latency_ms, tokens_used,
//! node_id}`, `model_used`, `generated_by_ai`.

use crate::wire::{TaskError, TaskMetrics, TaskResponse, TaskStatus};
use serde_json::{Map, Value};

/// Keys of a task response; a handler value made only of these and holding
/// `result` is already an envelope.
pub(crate) const ENVELOPE_KEYS: &[&str] = &[
    "task_id",
    "status",
    "result",
    "metrics",
    "model_used",
    "generated_by_ai",
    "error",
];

/// Unwraps a handler value that is already an envelope (`{"result": …}` or a
/// whole task response), so the answer is wrapped exactly once.
fn inner_result(value: Value) -> Value {
    match value {
        Value::Object(mut obj)
            if obj.contains_key("result")
                && obj.keys().all(|k| ENVELOPE_KEYS.contains(&k.as_str())) =>
        {
            obj.remove("result").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// A success envelope around the handler's value.
pub(crate) fn success(
    task_id: &str,
    value: Value,
    latency_ms: u64,
    node_id: Option<String>,
) -> TaskResponse {
    let result = inner_result(value);
    let model_used = result
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tokens_used = result
        .get("usage")
        .and_then(|u| u.get("total_tokens"))
        .and_then(Value::as_u64);
    TaskResponse {
        task_id: task_id.to_owned(),
        status: TaskStatus::Success,
        result: Some(result),
        error: None,
        metrics: Some(TaskMetrics {
            latency_ms: Some(latency_ms),
            tokens_used,
            node_id,
            extra: Map::new(),
        }),
        model_used,
        generated_by_ai: Some(true),
        iicp_conf_resp: None,
        extra: Map::new(),
    }
}

/// A success answer whose result is an engine's JSON text, relayed as it
/// came ([`AnswerBody::Relayed`](super::answer::AnswerBody)): the envelope
/// [`success`] builds, with `model_used` and `tokens_used` read from `glance`.
pub(crate) fn relayed(
    task_id: &str,
    text: bytes::Bytes,
    glance: super::relayed::Glance,
    latency_ms: u64,
    node_id: Option<String>,
) -> super::answer::Answer {
    let mut envelope = success(task_id, Value::Null, latency_ms, node_id);
    envelope.result = None;
    envelope.model_used = glance.model;
    if let Some(metrics) = envelope.metrics.as_mut() {
        metrics.tokens_used = glance.tokens;
    }
    super::answer::Answer {
        status: 200,
        retry_after_s: None,
        body: super::answer::AnswerBody::Relayed {
            envelope: Box::new(envelope),
            result: text,
        },
    }
}

/// The encrypted form of a success envelope (PROTOCOL.md §2.3): the whole
/// plaintext envelope is sealed, as the reference node does, and the client
/// reads the decrypted object as the response.
pub(crate) fn sealed(
    task_id: &str,
    response: &TaskResponse,
    ss: &crate::cx::SharedSecret,
) -> TaskResponse {
    let plain = serde_json::to_vec(response).unwrap_or_default();
    let sealed = crate::cx::seal_response(ss, task_id, &plain);
    TaskResponse {
        task_id: task_id.to_owned(),
        status: TaskStatus::Encrypted,
        result: None,
        error: None,
        metrics: None,
        model_used: None,
        generated_by_ai: Some(true),
        iicp_conf_resp: serde_json::to_value(sealed).ok(),
        extra: Map::new(),
    }
}

/// An error or timeout envelope.
pub(crate) fn failure(
    task_id: &str,
    status: TaskStatus,
    code: &str,
    message: &str,
    latency_ms: Option<u64>,
    node_id: Option<String>,
) -> TaskResponse {
    TaskResponse {
        task_id: task_id.to_owned(),
        status,
        result: None,
        error: Some(TaskError {
            code: Some(code.to_owned()),
            message: message.to_owned(),
            extra: Map::new(),
        }),
        metrics: latency_ms.map(|ms| TaskMetrics {
            latency_ms: Some(ms),
            tokens_used: None,
            node_id,
            extra: Map::new(),
        }),
        model_used: None,
        generated_by_ai: Some(false),
        iicp_conf_resp: None,
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wraps_once_and_reads_model_and_usage() {
        let completion = json!({"model": "m", "choices": [], "usage": {"total_tokens": 7}});
        for value in [
            completion.clone(),
            json!({"result": completion.clone()}),
            json!({"status": "success", "result": completion.clone(), "task_id": "x"}),
        ] {
            let r = success("t", value, 5, Some("n".into()));
            assert_eq!(r.result.as_ref().unwrap(), &completion);
            assert_eq!(r.model_used.as_deref(), Some("m"));
            let m = r.metrics.unwrap();
            assert_eq!(
                (m.latency_ms, m.tokens_used, m.node_id.as_deref()),
                (Some(5), Some(7), Some("n"))
            );
        }
        // A result that merely has a `result` field among others is left alone.
        let own = json!({"result": 1, "detail": 2});
        assert_eq!(success("t", own.clone(), 0, None).result.unwrap(), own);
    }

    #[test]
    fn failures_carry_a_code() {
        let r = failure("t", TaskStatus::Error, "backend_error", "down", None, None);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["error"]["code"], "backend_error");
        assert_eq!(v["generated_by_ai"], false);
        assert!(v.get("result").is_none());
    }
}
