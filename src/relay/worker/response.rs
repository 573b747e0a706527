//! The worker's RESPONSE to a relay's CALL (the relay contract):
//! `{5 bytes: UTF-8 JSON of the complete task-response body the node would
//! have answered over HTTP, 15 call_id, 100 HTTP status when it is not
//! 200}`.
//!
//! "Complete" means the body carries a `status` string, so the relay passes
//! it through untouched instead of wrapping it as a `completed` result: a
//! success, error or timeout envelope and a CX-sealed answer already do; a
//! refusal (`{"error":{…}}`, the task never ran) gets `"status":"error"` and
//! the task's id beside its `error` object.

use crate::node::answer::{Answer, AnswerBody};
use crate::transport::{Frame, kind};
use ciborium::Value as Cbor;
use serde_json::{Value, json};

/// The RESPONSE frame answering call `call_id` with `answer`; `task_id` is
/// the id of the task the CALL carried, when it had a valid one (a refusal
/// echoes it).
pub(crate) fn response_frame(call_id: &str, answer: &Answer, task_id: Option<&str>) -> Frame {
    let body = complete_body(answer, task_id);
    // Serialising a Value to a Vec cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let mut entries = vec![
        (Cbor::Integer(5.into()), Cbor::Bytes(json)),
        (Cbor::Integer(15.into()), Cbor::Text(call_id.to_owned())),
    ];
    if answer.status != 200 {
        entries.push((
            Cbor::Integer(100.into()),
            Cbor::Integer(u64::from(answer.status).into()),
        ));
    }
    let mut payload = Vec::new();
    // Writing CBOR to a Vec cannot fail.
    let _ = ciborium::into_writer(&Cbor::Map(entries), &mut payload);
    Frame::new(kind::RESPONSE, payload)
}

/// The task-response body for an answer (see the module doc).
pub(crate) fn complete_body(answer: &Answer, task_id: Option<&str>) -> Value {
    match &answer.body {
        AnswerBody::Envelope(envelope) => {
            serde_json::to_value(envelope).unwrap_or_else(|_| json!({}))
        }
        // Not given to this transport (`Inbound::relay_text`); read whole if it were.
        AnswerBody::Relayed { .. } => {
            serde_json::from_slice(&answer.to_json()).unwrap_or_else(|_| json!({}))
        }
        AnswerBody::Refusal(refusal) => {
            let mut body = serde_json::to_value(refusal).unwrap_or_else(|_| json!({}));
            if let Some(obj) = body.as_object_mut() {
                obj.insert("status".into(), json!("error"));
                if let Some(id) = task_id.filter(|id| crate::wire::task::is_valid_task_id(id)) {
                    obj.insert("task_id".into(), json!(id));
                }
            }
            body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorBody;

    fn decode(frame: &Frame) -> Vec<(i128, Cbor)> {
        let Cbor::Map(entries) = ciborium::from_reader::<Cbor, _>(&frame.payload[..]).unwrap()
        else {
            panic!("not a map")
        };
        entries
            .into_iter()
            .map(|(k, v)| (i128::from(k.as_integer().unwrap()), v))
            .collect()
    }

    fn json_of(entries: &[(i128, Cbor)]) -> Value {
        let (_, Cbor::Bytes(bytes)) = entries.iter().find(|(k, _)| *k == 5).unwrap() else {
            panic!("key 5 is not bytes")
        };
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_success_is_the_whole_envelope_with_no_status_key() {
        let env = crate::node::envelope::success("t-1", json!({"text": "hi"}), 3, Some("w".into()));
        let frame = response_frame("c-1", &Answer::envelope(200, env), Some("t-1"));
        assert_eq!(frame.kind, kind::RESPONSE);
        let entries = decode(&frame);
        assert_eq!(entries.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [5, 15]);
        assert_eq!(entries[1].1, Cbor::Text("c-1".into()));
        let body = json_of(&entries);
        assert_eq!(body["status"], "success");
        assert_eq!(body["task_id"], "t-1");
        assert_eq!(body["result"], json!({"text": "hi"}));
    }

    #[test]
    fn a_refusal_becomes_a_complete_error_body_with_its_status() {
        let refusal = Answer::refusal(401, ErrorBody::new("unauthorized", "no token"));
        let entries = decode(&response_frame("c-2", &refusal, Some("t-2")));
        assert_eq!(
            entries.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [5, 15, 100]
        );
        assert_eq!(entries[2].1, Cbor::Integer(401.into()));
        let body = json_of(&entries);
        assert_eq!(body["status"], "error");
        assert_eq!(body["task_id"], "t-2");
        assert_eq!(body["error"]["code"], "unauthorized");
        // An id the pipeline would refuse is not echoed.
        let body = complete_body(&refusal, Some("bad id with spaces"));
        assert!(body.get("task_id").is_none());
        // A failed envelope keeps its own shape and status.
        let failed = crate::node::envelope::failure(
            "t-3",
            crate::wire::TaskStatus::Timeout,
            "task_timeout",
            "late",
            None,
            None,
        );
        let entries = decode(&response_frame("c-3", &Answer::envelope(504, failed), None));
        assert_eq!(entries[2].1, Cbor::Integer(504.into()));
        assert_eq!(json_of(&entries)["status"], "timeout");
    }
}
