//! Judging a node's native RESPONSE to a task's buffered CALL as the HTTP
//! path judges its status and body (PROTOCOL.md §7.1; docs/INTEROP.md items
//! 14 and 16), so `submit()` returns the same
//! [`TaskResponse`](crate::wire::TaskResponse) and errors either way.
//!
//! - A buffered result (`{5}`) is the task's result, or for a sealed task
//!   the node's whole sealed envelope, opened and judged as over HTTP.
//! - A buffered refusal (`{100 status, 101, 6 {1 code, 2 message}}`)
//!   carries the status HTTP gives, and gets HTTP's verdict.
//! - An answer in the spec layout (`{4 status, 5 result, 6 error}`, as
//!   iicp-framing.md defines RESPONSE) carries no HTTP status: neither our
//!   node nor the Python SDK's answers a buffered CALL so, but a peer that
//!   follows that text would. Its refusal is judged as the HTTP path judges
//!   a 200 envelope whose status is `error` or `timeout`: the code is kept,
//!   no status is made up.

use super::judge::{Exchanged, Judged, judge_envelope};
use super::retry::Verdict;
use super::seal::Prepared;
use crate::error::IicpError;
use crate::transport::{LifecycleEvent, Response, SpecResponse};
use crate::wire::{TaskError, TaskResponse, TaskStatus};
use serde_json::Value;

/// Judges `response`, the answer to `prepared` from `target`. `derived_key`:
/// the CALL's idempotency key was the task id (the caller gave no nonce).
pub(super) fn judge(
    response: Response,
    prepared: &Prepared<'_>,
    target: &str,
    derived_key: bool,
) -> Exchanged {
    let result = match response {
        Response::Spec(spec) => return judge_spec(spec, prepared, target),
        other => crate::transport::answer_value(target, other),
    };
    match result {
        Ok(result) => judge_result(result, prepared, target),
        Err(IicpError::Protocol {
            code,
            message,
            status,
        }) => {
            let verdict = match (status, code.as_str()) {
                // Our own key (the task id) seen before: this node already
                // has the task, as 409 IICP-E010 says over HTTP.
                (409, "IICP-E011") if derived_key => Verdict::NextNode,
                _ => super::retry::verdict_for(status, Some(&code)),
            };
            let error = IicpError::Protocol {
                code,
                message,
                status,
            };
            Err(Judged::new(verdict, error))
        }
        Err(other) => Err(Judged::new(Verdict::NextNode, other)),
    }
}

/// A spec-layout answer: a refusal becomes the `error`/`timeout` envelope
/// it stands for; a result is judged as a buffered one.
fn judge_spec(spec: SpecResponse, prepared: &Prepared<'_>, target: &str) -> Exchanged {
    let timed_out = spec.status.as_deref() == Some("timeout")
        || spec
            .lifecycle
            .as_ref()
            .is_some_and(|l| l.event == LifecycleEvent::TimedOut);
    let failed = spec.error.is_some() || spec.status.as_deref() == Some("error");
    if timed_out || failed {
        let error = spec.error.unwrap_or_default();
        let envelope = TaskResponse {
            error: Some(TaskError {
                code: error.code,
                message: error
                    .message
                    .unwrap_or_else(|| format!("{target} refused the task")),
                extra: Default::default(),
            }),
            ..envelope(
                &prepared.task.task_id,
                if timed_out {
                    TaskStatus::Timeout
                } else {
                    TaskStatus::Error
                },
            )
        };
        return judge_envelope(envelope, target, None);
    }
    match spec.result {
        Some(result) => judge_result(result, prepared, target),
        None => Err(Judged::new(
            Verdict::NextNode,
            IicpError::NoResult {
                node_id: target.to_owned(),
            },
        )),
    }
}

/// A native result: for a sealed task the node's whole sealed envelope,
/// else the task's result, which gets the HTTP envelope's shape.
fn judge_result(result: Value, prepared: &Prepared<'_>, target: &str) -> Exchanged {
    match &prepared.sealed {
        // Anything but a sealed envelope is a plaintext answer to an
        // encrypted task (a node whose native path does not apply IICP-CX,
        // as the Python SDK's 0.7.109).
        Some(sealed) => {
            let envelope: TaskResponse = serde_json::from_value(result).map_err(|_| {
                Judged::new(
                    Verdict::NextNode,
                    IicpError::Protocol {
                        code: "IICP-CX-RESP-REQUIRED".into(),
                        message: format!(
                            "{target} answered an encrypted request in plaintext over the \
                             native transport; the answer is refused"
                        ),
                        status: 200,
                    },
                )
            })?;
            judge_envelope(envelope, target, Some(sealed))
        }
        None => {
            let envelope = TaskResponse {
                result: Some(result),
                ..envelope(&prepared.task.task_id, TaskStatus::Success)
            };
            judge_envelope(envelope, target, None)
        }
    }
}

/// An envelope for `task_id` with `status` and nothing else.
fn envelope(task_id: &str, status: TaskStatus) -> TaskResponse {
    TaskResponse {
        task_id: task_id.to_owned(),
        status,
        result: None,
        error: None,
        metrics: None,
        model_used: None,
        generated_by_ai: None,
        iicp_conf_resp: None,
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::seal::Outgoing;
    use super::*;
    use crate::transport::{BufferedError, BufferedResponse, SpecError};
    use crate::wire::{NodeInfo, TaskRequest};
    use serde_json::json;

    const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

    /// The task `t-1` as it goes, in plaintext, to a node without a CX key.
    /// (The task is leaked so the borrowed plaintext can outlive this call.)
    fn plaintext() -> Prepared<'static> {
        let mut task = TaskRequest::new(CHAT.parse().unwrap(), json!({"q": 1}));
        task.task_id = "t-1".into();
        let node: NodeInfo = serde_json::from_value(json!({
            "node_id": "n-1", "endpoint": "http://127.0.0.1:1", "score": 0.5, "available": true,
        }))
        .unwrap();
        let outgoing: &'static Outgoing = Box::leak(Box::new(Outgoing::new(task).unwrap()));
        outgoing.for_node(&node).unwrap()
    }

    fn refusal(status: i64, code: &str) -> Response {
        Response::Error(BufferedError {
            code: status,
            message: Some(format!("[{code}] no")),
            error: Some(SpecError {
                code: Some(code.into()),
                message: Some("no".into()),
            }),
            ..Default::default()
        })
    }

    fn judged(response: Response, derived_key: bool) -> (Verdict, Option<u16>, String) {
        let judged = judge(response, &plaintext(), "node n-1", derived_key).unwrap_err();
        (
            judged.verdict,
            judged.error.status(),
            judged.error.code().to_owned(),
        )
    }

    #[test]
    fn a_buffered_result_gets_the_http_envelope_shape() {
        let response = Response::Buffered(BufferedResponse {
            result: Some(json!({"a": 1})),
            ..Default::default()
        });
        let answer = judge(response, &plaintext(), "node n-1", true).unwrap();
        assert_eq!(answer.task_id, "t-1");
        assert_eq!(answer.status, TaskStatus::Success);
        assert_eq!(answer.result, Some(json!({"a": 1})));
    }

    #[test]
    fn buffered_refusals_carry_the_node_status_and_get_its_verdict() {
        assert_eq!(
            judged(refusal(400, "bad_input"), true),
            (Verdict::Fail, Some(400), "bad_input".into())
        );
        assert_eq!(judged(refusal(401, "unauthorized"), true).0, Verdict::Fail);
        assert_eq!(judged(refusal(429, "IICP-E021"), true).0, Verdict::NextNode);
        assert_eq!(
            judged(refusal(503, "IICP-E024"), true).0,
            Verdict::RetrySameNode
        );
        assert_eq!(judged(refusal(502, "x"), true).0, Verdict::NextNode);
    }

    #[test]
    fn a_replayed_task_id_moves_on_only_when_it_was_our_key() {
        assert_eq!(judged(refusal(409, "IICP-E011"), true).0, Verdict::NextNode);
        // The caller's own nonce seen before: no node will take it.
        assert_eq!(judged(refusal(409, "IICP-E011"), false).0, Verdict::Fail);
        assert_eq!(
            judged(refusal(409, "IICP-E010"), false).0,
            Verdict::NextNode
        );
    }

    #[test]
    fn spec_layout_refusals_are_judged_as_error_envelopes_without_a_made_up_status() {
        let spec = |status: &str, code: &str| {
            Response::Spec(SpecResponse {
                status: Some(status.into()),
                error: Some(SpecError {
                    code: Some(code.into()),
                    message: Some("no".into()),
                }),
                ..Default::default()
            })
        };
        // As a 200 envelope with status `error`: the code kept, next node.
        assert_eq!(
            judged(spec("error", "bad_input"), true),
            (Verdict::NextNode, Some(200), "bad_input".into())
        );
        assert_eq!(
            judged(spec("timeout", "task_timeout"), true),
            (Verdict::RetrySameNode, Some(504), "task_timeout".into())
        );
        let empty = Response::Spec(SpecResponse::default());
        let judged = judge(empty, &plaintext(), "node n-1", true).unwrap_err();
        assert!(matches!(judged.error, IicpError::NoResult { .. }));
    }
}
