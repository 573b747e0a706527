//! One node's attempts (PROTOCOL.md §5.2): the consumer token it is
//! reached with, then the task over the native transport when the node
//! names an `iicp://` endpoint, else over HTTP, retried on the same node
//! with backoff while the verdict says so and the deadline allows.

use super::candidates::Candidate;
use super::judge::Judged;
use super::retry::{Verdict, backoff};
use super::seal::{Outgoing, Prepared};
use super::{Inner, http_attempt, native_attempt};
use crate::error::{IicpError, Result};
use crate::secret::Secret;
use crate::wire::{NodeInfo, TaskResponse};
use std::time::Duration;
use tokio::time::Instant;

/// How one node's attempts ended, when they did not produce an answer.
pub(super) enum NodeOutcome {
    Next(IicpError),
    Fail(IicpError),
}

/// Attempts one node until it answers, fails for good, or should be left.
/// Each attempt goes over the native transport when [`native_endpoint`]
/// names one and it connects, else over HTTP; the verdicts and pauses are
/// the same for both.
pub(super) async fn attempt_node(
    inner: &Inner,
    candidate: &Candidate<'_>,
    prepared: &Prepared<'_>,
    consumer_token: Option<&Secret>,
    trace: &str,
    deadline: Instant,
) -> std::result::Result<TaskResponse, NodeOutcome> {
    let node = candidate.node;
    let target = format!("node {}", short_id(&node.node_id));
    let total = inner.timeout();
    let native = native_endpoint(inner, node);
    let mut retry = 0u32;
    loop {
        let left = remaining(deadline, &target, total).map_err(NodeOutcome::Fail)?;
        let mut exchanged = None;
        if let Some(endpoint) = native {
            exchanged = native_attempt::exchange(
                inner,
                endpoint,
                prepared,
                consumer_token,
                trace,
                left,
                &target,
            )
            .await;
        }
        let exchanged = match exchanged {
            Some(exchanged) => exchanged,
            None => {
                http_attempt::exchange(
                    inner,
                    candidate.task_url,
                    prepared,
                    consumer_token,
                    trace,
                    left,
                    &target,
                )
                .await
            }
        };
        let Judged {
            verdict,
            error,
            retry_after,
        } = match exchanged {
            Ok(response) => return Ok(response),
            Err(judged) => judged,
        };
        match verdict {
            Verdict::Fail => return Err(NodeOutcome::Fail(error)),
            Verdict::NextNode => return Err(NodeOutcome::Next(error)),
            Verdict::RetrySameNode => {
                retry += 1;
                if retry >= inner.options.attempts_per_node {
                    return Err(NodeOutcome::Next(error));
                }
                let base = Duration::from_millis(inner.options.retry_base_ms);
                let pause = backoff(base, retry - 1, rand::random::<f64>(), retry_after);
                if Instant::now() + pause >= deadline {
                    // Waiting would spend the whole budget on this node.
                    return Err(NodeOutcome::Next(error));
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// The native endpoint to try `node` on, if any: only with
/// [`ClientOptions::prefer_native`](super::ClientOptions::prefer_native) and
/// only `iicp://` (an `iicpsec://` endpoint needs TLS, which the native
/// client does not speak: such nodes are reached over HTTPS). A consumer
/// token goes along in CALL key 11 (docs/INTEROP.md item 15).
fn native_endpoint<'n>(inner: &Inner, node: &'n NodeInfo) -> Option<&'n str> {
    if !inner.options.prefer_native || !native_attempt::AVAILABLE {
        return None;
    }
    let endpoint = node.transport_endpoint.as_deref()?;
    if endpoint.starts_with("iicp://") {
        Some(endpoint)
    } else {
        tracing::debug!(node_id = %node.node_id, "native endpoint skipped (only iicp:// is used; iicpsec:// needs TLS)");
        None
    }
}
/// The consumer token that lets the caller reach `node` with this intent,
/// when a `node_token` is configured and the directory issues one.
///
/// The caller's own `node_token` is a directory credential: it goes only
/// to the directory, never to a node. Without a consumer token the task
/// goes without a credential (nodes in `open` mode take it; nodes in
/// `token` mode answer 401).
pub(super) async fn credential_for(
    inner: &Inner,
    node: &NodeInfo,
    outgoing: &Outgoing,
    deadline: Instant,
) -> Option<Secret> {
    let own = inner.config.node_token.as_ref()?;
    let left = deadline.saturating_duration_since(Instant::now());
    inner
        .consumer_tokens
        .get(
            &inner.directory_http,
            &inner.config.directory_url,
            own,
            &node.node_id,
            outgoing.intent(),
            left,
        )
        .await
}

/// The first eight characters of a node id, as errors and logs name it.
pub(super) fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The time left before `deadline`, or a timeout naming `what` once it
/// has passed (`total` is the whole budget, as the error reports it).
pub(super) fn remaining(deadline: Instant, what: &str, total: Duration) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(IicpError::Timeout {
            what: what.to_owned(),
            elapsed_ms: total.as_millis() as u64,
        })
    } else {
        Ok(left)
    }
}
