//! A worker's RESPONSE as the consumer's HTTP answer (the relay contract):
//!
//! - key 5 holds the complete task-response body the worker would have
//!   answered over HTTP (success, error envelope or CX-sealed answer), read
//!   as CBOR first, then JSON;
//! - the status is key 100 when present, else the spec layout's error
//!   (key 6 `{1 code, 2 message}`) mapped to a status, else 200;
//! - a 2xx body that is not a complete task response (no `status` string:
//!   the Python worker sends its handler's raw value) becomes one: an
//!   object is merged into `{"task_id", "status":"completed", "node_id"}`
//!   as the reference relays merge it (PROTOCOL.md §7.2; a Python handler
//!   returns `{"result": …}`, which must not end up as `result.result`),
//!   any other value becomes its `result`; a complete one passes through
//!   untouched, so a sealed answer reaches the consumer as the worker
//!   sealed it.
//!
//! Nothing here looks inside the body beyond its top-level `status`.

use crate::transport::{CborLimits, Fields, MessageError, Response};
use ciborium::Value as Cbor;
use serde_json::{Value, json};

/// What a worker answered to one call, before it is rendered for HTTP.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkerAnswer {
    /// Key 100 (or the spec layout's error mapped to a status).
    pub status: Option<u16>,
    /// Key 5.
    pub body: Option<Value>,
    /// Key 6 `{1 code, 2 message}`, else key 101 as the message.
    pub error: Option<(Option<String>, Option<String>)>,
}

/// A decoded RESPONSE frame.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A final answer to call `call_id`.
    Answer(String, WorkerAnswer),
    /// A non-final lifecycle step (partials are not relayed; the final
    /// step carries the whole answer).
    Partial,
    /// Key 15 was readable, the rest was not.
    Unreadable(String, MessageError),
}

/// Reads a RESPONSE payload. `Err` when not even the call id can be read.
pub(crate) fn decode(payload: &[u8]) -> Result<Decoded, MessageError> {
    let limits = CborLimits::default();
    let mut f = Fields::decode(payload, &limits)?;
    // Key 15 is the buffered layout's call id, key 3 the spec layout's.
    let call_id = match f.id(15, "call_id")? {
        Some(id) => id,
        None => f.id(3, "call_id")?.ok_or(MessageError::Missing {
            key: 15,
            name: "call_id",
        })?,
    };
    // A lifecycle step that is not the last one carries a partial.
    if f.has(13) {
        if let Ok(Response::Spec(spec)) = Response::decode(payload) {
            if !spec.is_final() {
                return Ok(Decoded::Partial);
            }
        }
    }
    match read_answer(&mut f) {
        Ok(answer) => Ok(Decoded::Answer(call_id, answer)),
        Err(e) => Ok(Decoded::Unreadable(call_id, e)),
    }
}

fn read_answer(f: &mut Fields) -> Result<WorkerAnswer, MessageError> {
    let status = f
        .int(100, "status")?
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (200..=599).contains(s));
    let message = f.text(101, "error_message").ok().flatten();
    let spec_error = match f.map(6, "error") {
        Ok(Some(mut e)) => Some((
            e.text(1, "code").ok().flatten(),
            e.text(2, "message").ok().flatten(),
        )),
        _ => None,
    };
    let error = spec_error.or(message.map(|m| (None, Some(m))));
    let body = read_body(f)?;
    Ok(WorkerAnswer {
        status,
        body,
        error,
    })
}

/// Key 5: a byte string of CBOR or of JSON (CBOR first; a scalar that
/// happens to read as CBOR loses to a JSON document), text of JSON, or a
/// value inline.
fn read_body(f: &mut Fields) -> Result<Option<Value>, MessageError> {
    const KEY: u64 = 5;
    const NAME: &str = "result";
    let not_json = || MessageError::InvalidValue {
        key: KEY,
        name: NAME,
        problem: "neither CBOR nor JSON".into(),
    };
    match f.take(KEY) {
        None => Ok(None),
        Some(Cbor::Bytes(bytes)) if bytes.is_empty() => Ok(None),
        Some(Cbor::Bytes(bytes)) => {
            let json = serde_json::from_slice::<Value>(&bytes).ok();
            match (f.nested_cbor(&bytes), json) {
                // A CBOR container: the worker's CBOR body. (A JSON document
                // never reads as one: `{` and `[` open CBOR strings.)
                (Ok(value @ (Cbor::Map(_) | Cbor::Array(_))), _) => {
                    f.to_json(KEY, NAME, value).map(Some)
                }
                // JSON, even when its bytes also happen to read as a CBOR scalar.
                (_, Some(json)) => Ok(Some(json)),
                (Ok(value), None) => f.to_json(KEY, NAME, value).map(Some),
                // A limit hit inside well-formed CBOR stays that error.
                (
                    Err(e @ (MessageError::TooDeep { .. } | MessageError::TooManyItems { .. })),
                    None,
                ) => Err(e),
                (Err(_), None) => Err(not_json()),
            }
        }
        Some(Cbor::Text(text)) => Ok(Some(
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )),
        Some(value) => f.to_json(KEY, NAME, value).map(Some),
    }
}

/// The HTTP status for an error code of the spec layout.
fn status_for(code: Option<&str>) -> u16 {
    match code {
        Some("task_timeout" | "timeout" | "timed_out") => 504,
        Some("validation_error") => 422,
        Some("unauthorized" | "IICP-E002") => 401,
        Some("forbidden") => 403,
        Some("rate_limited" | "capacity_exceeded" | "IICP-E021") => 429,
        Some("payload_too_large") => 413,
        _ => 502,
    }
}

/// True for a complete task-response body: an object with a `status` string.
fn is_complete(body: &Value) -> bool {
    body.get("status").is_some_and(Value::is_string)
}

/// The consumer's answer: status and JSON body.
pub(crate) fn render(answer: WorkerAnswer, task_id: &str, worker_id: &str) -> (u16, Value) {
    let code = answer.error.as_ref().and_then(|(c, _)| c.clone());
    let status = answer.status.unwrap_or_else(|| {
        if answer.error.is_some() && answer.body.is_none() {
            status_for(code.as_deref())
        } else {
            200
        }
    });
    let wrap =
        |result: Value| {
            let mut answer = json!({
                "task_id": task_id,
                "status": "completed",
                "node_id": worker_id,
            });
            match result {
                Value::Object(fields) => {
                    if let Some(answer) = answer.as_object_mut() {
                        // `status` is absent or not a string here; the task id
                        // and the node the relay forwarded to are the relay's
                        // to say: a worker cannot rename itself or the task.
                        answer.extend(fields.into_iter().filter(|(k, _)| {
                            !matches!(k.as_str(), "status" | "task_id" | "node_id")
                        }));
                    }
                }
                other => answer["result"] = other,
            }
            answer
        };
    match answer.body {
        Some(body) if is_complete(&body) => (status, body),
        Some(body) if (200..300).contains(&status) => (status, wrap(body)),
        Some(body) => (status, body),
        None => match answer.error {
            Some((code, message)) => (
                status,
                json!({"error": {
                    "code": code.unwrap_or_else(|| "IICP-E031".into()),
                    "message": message.unwrap_or_else(|| "the worker reported an error".into()),
                }}),
            ),
            None => (status, wrap(Value::Null)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(entries: Vec<(Cbor, Cbor)>) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&Cbor::Map(entries), &mut out).unwrap();
        out
    }

    fn answer(payload: &[u8]) -> (String, WorkerAnswer) {
        match decode(payload).unwrap() {
            Decoded::Answer(id, a) => (id, a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_python_workers_raw_value_is_merged() {
        let raw = serde_json::to_vec(&json!({"result": {"text": "hi"}})).unwrap();
        let (id, a) = answer(&cbor(vec![
            (15.into(), "c1".into()),
            (5.into(), raw.into()),
        ]));
        assert_eq!(id, "c1");
        let (status, body) = render(a, "t-1", "w-1");
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"task_id": "t-1", "status": "completed", "result": {"text": "hi"}, "node_id": "w-1"})
        );
        // A raw value cannot rename the task or the worker, nor pick a 1xx.
        let raw =
            serde_json::to_vec(&json!({"task_id": "x", "node_id": "other", "text": "t"})).unwrap();
        let (_, a) = answer(&cbor(vec![
            (15.into(), "c".into()),
            (5.into(), raw.into()),
            (100.into(), 101.into()),
        ]));
        assert_eq!(a.status, None);
        let (status, body) = render(a, "t-1", "w-1");
        assert_eq!(status, 200);
        assert_eq!(
            (&body["task_id"], &body["node_id"], &body["text"]),
            (&json!("t-1"), &json!("w-1"), &json!("t"))
        );
        let raw = serde_json::to_vec(&json!("just text")).unwrap();
        let (_, a) = answer(&cbor(vec![(15.into(), "c".into()), (5.into(), raw.into())]));
        assert_eq!(render(a, "t-1", "w-1").1["result"], "just text");
    }

    #[test]
    fn a_complete_answer_and_its_status_pass_through() {
        let sealed = json!({"task_id": "t", "status": "encrypted", "iicp_conf_resp": {"ct": "x"}});
        let bytes = serde_json::to_vec(&sealed).unwrap();
        let (_, a) = answer(&cbor(vec![
            (15.into(), "c".into()),
            (5.into(), bytes.into()),
        ]));
        assert_eq!(render(a, "t", "w"), (200, sealed));
        let refusal = json!({"error": {"code": "unauthorized", "message": "no"}});
        let bytes = serde_json::to_vec(&refusal).unwrap();
        let (_, a) = answer(&cbor(vec![
            (15.into(), "c".into()),
            (5.into(), bytes.into()),
            (100.into(), 401.into()),
        ]));
        assert_eq!(render(a, "t", "w"), (401, refusal));
    }

    #[test]
    fn cbor_bodies_and_error_layouts_read() {
        let mut body = Vec::new();
        ciborium::into_writer(&json!({"status": "success", "result": 1}), &mut body).unwrap();
        let (_, a) = answer(&cbor(vec![
            (15.into(), "c".into()),
            (5.into(), body.into()),
        ]));
        assert_eq!(render(a, "t", "w").1["status"], "success");
        // Our node's buffered error: {100, 101, 6 {1 code, 2 message}}.
        let (_, a) = answer(&cbor(vec![
            (15.into(), "c".into()),
            (100.into(), 429.into()),
            (101.into(), "[IICP-E021] busy".into()),
            (
                6.into(),
                Cbor::Map(vec![
                    (1.into(), "IICP-E021".into()),
                    (2.into(), "busy".into()),
                ]),
            ),
        ]));
        let (status, body) = render(a, "t", "w");
        assert_eq!(status, 429);
        assert_eq!(body["error"]["code"], "IICP-E021");
        // A spec-layout timeout without key 100.
        let (_, a) = answer(&cbor(vec![
            (15.into(), "c".into()),
            (6.into(), Cbor::Map(vec![(1.into(), "task_timeout".into())])),
        ]));
        assert_eq!(render(a, "t", "w").0, 504);
    }

    #[test]
    fn unreadable_answers_keep_their_call_id() {
        match decode(&cbor(vec![
            (15.into(), "c".into()),
            (5.into(), vec![0xffu8, 0x00].into()),
        ]))
        .unwrap()
        {
            Decoded::Unreadable(id, _) => assert_eq!(id, "c"),
            other => panic!("{other:?}"),
        }
        assert!(decode(b"not cbor").is_err());
        assert!(decode(&cbor(vec![(5.into(), "x".into())])).is_err());
    }
}
