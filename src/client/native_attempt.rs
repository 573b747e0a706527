//! One attempt of a task on a node over the native transport (PROTOCOL.md
//! §7.1), on the client's [`NativePool`](crate::transport::NativePool),
//! judged exactly as an HTTP answer is (`native_answer.rs`), so `submit()`
//! returns the same [`TaskResponse`](crate::wire::TaskResponse) either way.
//!
//! Every task is one buffered CALL: intent (key 3), payload (key 5), time
//! budget (key 6), consumer token (key 11), trace id (key 13), idempotency
//! key (16), QoS (key 18). Its refusals carry the HTTP status (key 100), so
//! they get the verdicts HTTP gives. A sealed task's key 5 holds `iicp_conf`
//! and `cx_response_encryption` with the task id beside them (the seal binds
//! it; docs/INTEROP.md item 16); a plaintext task's idempotency key is the
//! caller's nonce or else the task id, so a node recognises a repeat as it
//! does a repeated task id over HTTP (its key 5 is the bare payload, with
//! no task id).

use super::judge::Exchanged;
#[cfg(feature = "iicp-tcp")]
use super::judge::Judged;
#[cfg(feature = "iicp-tcp")]
use super::retry::Verdict;
use super::seal::Prepared;
#[cfg(feature = "iicp-tcp")]
use crate::error::IicpError;
use crate::secret::Secret;

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
    _prepared: &Prepared<'_>,
    _consumer_token: Option<&Secret>,
    _trace: &str,
    _left: std::time::Duration,
    _target: &str,
) -> Option<Exchanged> {
    None
}

/// Sends `prepared` to the node at `endpoint` (`iicp://host:port`) once,
/// with `consumer_token` in CALL key 11, waiting at most `left`. `None` when
/// no connection took the CALL (none could be made, or each ended before
/// the CALL was handed over): the node has not seen it, and the caller
/// falls back to HTTP. A refusal (a 401 for the token included) is an
/// answer, judged as over HTTP, never a reason to fall back.
#[cfg(feature = "iicp-tcp")]
pub(super) async fn exchange(
    inner: &super::Inner,
    endpoint: &str,
    prepared: &Prepared<'_>,
    consumer_token: Option<&Secret>,
    trace: &str,
    left: std::time::Duration,
    target: &str,
) -> Option<Exchanged> {
    let derived_key = prepared.sealed.is_none() && prepared.task.nonce.is_none();
    let call = call_for(prepared, consumer_token, trace);
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
    Some(super::native_answer::judge(
        response,
        prepared,
        target,
        derived_key,
    ))
}

/// The CALL for `prepared` (buffered: no key 24).
#[cfg(feature = "iicp-tcp")]
pub(super) fn call_for(
    prepared: &Prepared<'_>,
    consumer_token: Option<&Secret>,
    trace: &str,
) -> crate::transport::Call {
    use crate::transport::Call;

    let task = &prepared.task;
    let sealed = prepared.sealed.is_some();
    let constraints = task.constraints.as_ref();
    // A sealed task's id reaches the node beside `iicp_conf`, which makes a
    // repeat known as over HTTP; a plaintext one's only as the key.
    Call {
        intent: Some(task.intent.to_string()),
        payload: prepared.native_payload(),
        timeout: constraints
            .and_then(|c| c.timeout_ms)
            .map(std::time::Duration::from_millis),
        auth_token: consumer_token.cloned(),
        trace_id: trace_id(trace),
        idempotency_key: match (&task.nonce, sealed) {
            (Some(nonce), _) => Some(nonce.clone()),
            (None, false) => Some(task.task_id.clone()),
            (None, true) => None,
        },
        qos: constraints
            .and_then(|c| c.effective_qos())
            .map(|q| q.as_str().to_owned()),
        ..Default::default()
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
}
