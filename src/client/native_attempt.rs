//! One attempt of a task on a node over the native transport (PROTOCOL.md
//! §7.1), on the client's [`NativePool`](crate::transport::NativePool),
//! judged exactly as an HTTP answer is, so `submit()` returns the same
//! [`TaskResponse`](crate::wire::TaskResponse) either way.
//!
//! The task becomes one CALL: intent (key 3), payload (key 5), time budget
//! (key 6), trace id (key 13), QoS (key 18). A plaintext task is a buffered
//! CALL whose idempotency key (16) is the caller's nonce or else the task
//! id, so a node recognises a repeat as it does a repeated task id over HTTP
//! (the buffered layout has no task id). A sealed task is a lifecycle CALL
//! (key 24 = task id): the seal binds the task id, which the node must know
//! to open it; its final step carries the whole sealed envelope, opened and
//! judged as over HTTP. A lifecycle refusal carries a code and no status;
//! the status is inferred from the code ([`status_for_code`]).

use super::judge::Exchanged;
#[cfg(feature = "iicp-tcp")]
use super::judge::{Judged, judge_envelope};
#[cfg(feature = "iicp-tcp")]
use super::retry::Verdict;
use super::seal::Prepared;
#[cfg(feature = "iicp-tcp")]
use crate::error::IicpError;

/// Whether this build has the native transport.
#[cfg(feature = "iicp-tcp")]
pub(super) const AVAILABLE: bool = true;
/// Whether this build has the native transport.
#[cfg(not(feature = "iicp-tcp"))]
pub(super) const AVAILABLE: bool = false;

/// Without the `iicp-tcp` feature nothing goes native: always HTTP.
#[cfg(not(feature = "iicp-tcp"))]
pub(super) async fn exchange(
    _inner: &super::Inner,
    _endpoint: &str,
    _prepared: &Prepared,
    _trace: &str,
    _left: std::time::Duration,
    _target: &str,
) -> Option<Exchanged> {
    None
}

/// Sends `prepared` to the node at `endpoint` (`iicp://host:port`) once,
/// waiting at most `left`. `None` when no connection took the CALL (none
/// could be made, or each ended before the CALL was handed over): the node
/// has not seen it, and the caller falls back to HTTP.
#[cfg(feature = "iicp-tcp")]
pub(super) async fn exchange(
    inner: &super::Inner,
    endpoint: &str,
    prepared: &Prepared,
    trace: &str,
    left: std::time::Duration,
    target: &str,
) -> Option<Exchanged> {
    use crate::transport::Call;

    let task = &prepared.task;
    let sealed = prepared.sealed.is_some();
    let constraints = task.constraints.as_ref();
    let derived_key = !sealed && task.nonce.is_none();
    let call = Call {
        intent: Some(task.intent.to_string()),
        payload: prepared.native_payload(),
        timeout: constraints
            .and_then(|c| c.timeout_ms)
            .map(std::time::Duration::from_millis),
        trace_id: trace_id(trace),
        idempotency_key: match (&task.nonce, sealed) {
            (Some(nonce), _) => Some(nonce.clone()),
            (None, false) => Some(task.task_id.clone()),
            (None, true) => None,
        },
        qos: constraints
            .and_then(|c| c.effective_qos())
            .map(|q| q.as_str().to_owned()),
        task_id: sealed.then(|| task.task_id.clone()),
        ..Default::default()
    };
    let sent = tokio::time::timeout(left, inner.native.exchange(endpoint, call, left)).await;
    let response = match sent {
        Err(_) => {
            return Some(Err(Judged::new(
                Verdict::RetrySameNode,
                IicpError::Timeout {
                    what: target.to_owned(),
                    elapsed_ms: left.as_millis() as u64,
                },
            )));
        }
        Ok(Err(crate::transport::Failure::Unsent(e))) => {
            tracing::debug!(error = %e, "native transport unavailable; using HTTP");
            return None;
        }
        Ok(Err(crate::transport::Failure::Lost(e))) => {
            return Some(Err(Judged::new(Verdict::NextNode, e)));
        }
        Ok(Err(crate::transport::Failure::TimedOut(e))) => {
            return Some(Err(Judged::new(Verdict::RetrySameNode, e)));
        }
        Ok(Ok(response)) => response,
    };
    Some(judge(response, prepared, target, derived_key))
}

/// Judges a native answer as the HTTP path judges its status and body.
#[cfg(feature = "iicp-tcp")]
fn judge(
    response: crate::transport::Response,
    prepared: &Prepared,
    target: &str,
    derived_key: bool,
) -> Exchanged {
    use crate::wire::{TaskResponse, TaskStatus};
    let result = match crate::transport::answer_value(target, response) {
        Ok(result) => result,
        Err(IicpError::Protocol {
            code,
            message,
            status,
        }) => {
            // Status 200 marks a lifecycle (or spec-layout) refusal, which
            // carries only a code.
            let status = if status == 200 {
                status_for_code(&code)
            } else {
                status
            };
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
            return Err(Judged::new(verdict, error));
        }
        Err(other) => return Err(Judged::new(Verdict::NextNode, other)),
    };
    match &prepared.sealed {
        // The whole sealed envelope comes back as the result. Anything else
        // is a plaintext answer to an encrypted task (a node whose native
        // path does not apply IICP-CX, as the Python SDK's 0.7.109).
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
                task_id: prepared.task.task_id.clone(),
                status: TaskStatus::Success,
                result: Some(result),
                error: None,
                metrics: None,
                model_used: None,
                generated_by_ai: None,
                iicp_conf_resp: None,
                extra: Default::default(),
            };
            judge_envelope(envelope, target, None)
        }
    }
}

/// The HTTP status a node gives with a refusal `code`, for native answers
/// that carry only the code (the lifecycle layout). Unknown codes count as
/// a failure of this node (502: another node may do better).
#[cfg(feature = "iicp-tcp")]
fn status_for_code(code: &str) -> u16 {
    match code {
        "IICP-E021" => 429,
        "IICP-E005" | "IICP-E024" => 503,
        "task_timeout" => 504,
        "IICP-E010" | "IICP-E011" => 409,
        "unauthorized" => 401,
        "validation_error" | "unknown_intent" | "payload_too_large" => 422,
        c if c.starts_with("IICP-CX-") => 400,
        _ => 502,
    }
}

/// CALL key 13: the trace id of a W3C `traceparent` (`00-<32 hex>-…`).
#[cfg(feature = "iicp-tcp")]
fn trace_id(traceparent: &str) -> Option<[u8; 16]> {
    let hex_id = traceparent.split('-').nth(1)?;
    hex::decode(hex_id).ok()?.try_into().ok()
}

#[cfg(all(test, feature = "iicp-tcp"))]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_the_traceparent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(tp).map(hex::encode).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("garbage"), None);
        assert_eq!(trace_id("00-abc-00f067aa0ba902b7-01"), None);
    }

    #[test]
    fn lifecycle_codes_map_to_the_statuses_http_gives() {
        use super::super::retry::verdict_for_status;
        assert_eq!(
            verdict_for_status(status_for_code("IICP-E021")),
            Verdict::NextNode
        );
        assert_eq!(
            verdict_for_status(status_for_code("IICP-E024")),
            Verdict::RetrySameNode
        );
        assert_eq!(
            verdict_for_status(status_for_code("task_timeout")),
            Verdict::RetrySameNode
        );
        assert_eq!(
            verdict_for_status(status_for_code("IICP-CX-02")),
            Verdict::Fail
        );
        assert_eq!(
            verdict_for_status(status_for_code("unauthorized")),
            Verdict::Fail
        );
        assert_eq!(
            verdict_for_status(status_for_code("handler_error")),
            Verdict::NextNode
        );
    }
}
