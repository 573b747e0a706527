//! `submit()` and `chat_stream()`: discover → select → submit with failover
//! (PROTOCOL.md §5.1, §5.2; SDK-01). One deadline, `timeout_ms`, bounds the
//! whole call: discovery, every attempt and every pause. Where the task goes
//! is [`super::route`]'s; how one node is tried is [`super::attempt`]'s.

use super::Inner;
use super::attempt::{NodeOutcome, attempt_node, credential_for, short_id};
use super::candidates;
use super::route::{Route, route_task};
use super::seal::{Outgoing, Prepared};
use crate::error::{IicpError, Result};
use crate::secret::Secret;
use crate::wire::{NodeInfo, TaskRequest, TaskResponse, check_intent_policy};
use std::time::Duration;
use tokio::time::Instant;

/// Runs a task; `traceparent` is the caller's, or a fresh one is made.
pub(crate) async fn submit(
    inner: &Inner,
    mut task: TaskRequest,
    route: Route,
    traceparent: Option<&str>,
    timeout: Duration,
) -> Result<TaskResponse> {
    let deadline = Instant::now() + timeout;
    let trace = prepare(&mut task, &route, traceparent, timeout)?;
    let (list, qos) = route_task(inner, &mut task, &route, &trace, deadline).await?;
    let candidates = candidates::choose(inner, &list, task.intent.as_str(), &route, qos)?;
    // Sealed per keyed node, sent as it is to a keyless one (PROTOCOL.md §2.5).
    let outgoing = Outgoing::new(task)?;
    let mut failures: Vec<(String, IicpError)> = Vec::new();
    for candidate in &candidates {
        let node = candidate.node;
        let credential = credential_for(inner, node, &outgoing, deadline).await;
        let prepared = outgoing.for_node(node)?;
        match attempt_node(
            inner,
            candidate,
            &prepared,
            credential.as_ref(),
            &trace,
            deadline,
        )
        .await
        {
            Ok(mut response) => {
                let metrics = response.metrics.get_or_insert_with(Default::default);
                metrics.node_id.get_or_insert_with(|| node.node_id.clone());
                return Ok(response);
            }
            Err(NodeOutcome::Fail(e)) => return Err(e),
            Err(NodeOutcome::Next(e)) => {
                tracing::debug!(node_id = %node.node_id, error = %e, "node failed; trying the next");
                next_node(inner, node, e, deadline, &mut failures)?;
            }
        }
    }
    Err(all_failed(outgoing.intent(), failures))
}

/// A node failed in a way the next node may not: it leaves the discovery
/// cache and its failure is kept for the final error, unless it was the
/// call's own deadline running out, which ends the call with it.
fn next_node(
    inner: &Inner,
    node: &NodeInfo,
    e: IicpError,
    deadline: Instant,
    failures: &mut Vec<(String, IicpError)>,
) -> Result<()> {
    inner.cache.forget_node(&node.node_id);
    if matches!(e, IicpError::Timeout { .. }) && Instant::now() >= deadline {
        return Err(e);
    }
    failures.push((short_id(&node.node_id).to_owned(), e));
    Ok(())
}

/// What every task gets before discovery, streamed or not: the policy guard
/// (SDK-03: the intent is already a validated URN; IICP-POLICY-001 is
/// terminal, checked before any request), a UUID v4 `task_id` when it has
/// none (SDK-02), the budget as `timeout_ms`, and the route's model and
/// QoS class where the task names none. Returns the `traceparent` shared by
/// discovery and every attempt (SDK-06).
fn prepare(
    task: &mut TaskRequest,
    route: &Route,
    traceparent: Option<&str>,
    timeout: Duration,
) -> Result<String> {
    check_intent_policy(task.intent.as_str())?;
    if task.task_id.is_empty() {
        task.task_id = crate::ids::uuid_v4_string();
    }
    let trace = super::trace::resolve(traceparent)?;
    let constraints = task.constraints.get_or_insert_with(Default::default);
    if constraints.timeout_ms.is_none() {
        constraints.timeout_ms = Some(timeout.as_millis() as u64);
    }
    if let (None, Some(m)) = (&constraints.model, &route.model) {
        constraints.model = Some(m.clone());
    }
    if constraints.qos.is_none() {
        constraints.qos = route.qos;
    }
    Ok(trace)
}

/// Starts a streamed chat (`chat_stream()`): the same discovery,
/// selection, credentials, deadline and failover as [`submit`], up to the
/// first chunk. A plaintext task to a node with an `iicp://` endpoint
/// streams natively on a connection of its own; a sealed task, a node
/// without one, or a native connection that cannot be made gets the
/// buffered answer (over native or HTTP, as `submit` would send it) as one
/// chunk. Once a chunk is out there is no failover: errors come in the
/// stream.
pub(crate) async fn stream(
    inner: &Inner,
    mut task: TaskRequest,
    route: Route,
    timeout: Duration,
) -> Result<super::stream::ChatStream> {
    let deadline = Instant::now() + timeout;
    let trace = prepare(&mut task, &route, None, timeout)?;
    let (list, qos) = route_task(inner, &mut task, &route, &trace, deadline).await?;
    let candidates = candidates::choose(inner, &list, task.intent.as_str(), &route, qos)?;
    let outgoing = Outgoing::new(task)?;
    let mut failures: Vec<(String, IicpError)> = Vec::new();
    for candidate in &candidates {
        let node = candidate.node;
        let credential = credential_for(inner, node, &outgoing, deadline).await;
        let prepared = outgoing.for_node(node)?;
        let outcome = match stream_native(
            inner,
            node,
            &prepared,
            credential.as_ref(),
            &trace,
            deadline,
        )
        .await
        {
            Some(outcome) => outcome,
            None => attempt_node(
                inner,
                candidate,
                &prepared,
                credential.as_ref(),
                &trace,
                deadline,
            )
            .await
            .and_then(|mut response| {
                let metrics = response.metrics.get_or_insert_with(Default::default);
                metrics.node_id.get_or_insert_with(|| node.node_id.clone());
                super::chat::into_chat_response(response)
                    .map(super::stream::ChatStream::buffered)
                    .map_err(NodeOutcome::Fail)
            }),
        };
        match outcome {
            Ok(stream) => return Ok(stream),
            Err(NodeOutcome::Fail(e)) => return Err(e),
            Err(NodeOutcome::Next(e)) => {
                tracing::debug!(node_id = %node.node_id, error = %e, "node failed before the first chunk; trying the next");
                next_node(inner, node, e, deadline, &mut failures)?;
            }
        }
    }
    Err(all_failed(outgoing.intent(), failures))
}

/// A native stream on `node`, when the task is plaintext and the node has
/// an `iicp://` endpoint; `None` to answer it buffered instead (no such
/// endpoint, a sealed task, or a CALL that never reached the node).
#[cfg(feature = "iicp-tcp")]
async fn stream_native(
    inner: &Inner,
    node: &NodeInfo,
    prepared: &Prepared<'_>,
    consumer_token: Option<&Secret>,
    trace: &str,
    deadline: Instant,
) -> Option<std::result::Result<super::stream::ChatStream, NodeOutcome>> {
    use super::stream::Opened;
    // Partials travel in plaintext: a sealed task is never streamed.
    if prepared.sealed.is_some() {
        return None;
    }
    let endpoint = node.transport_endpoint.as_deref()?;
    if !endpoint.starts_with("iicp://") {
        return None;
    }
    let target = format!("node {}", short_id(&node.node_id));
    let mut call = super::native_attempt::call_for(prepared, consumer_token, trace);
    call.task_id = Some(prepared.task.task_id.clone());
    let total_ms = inner.timeout().as_millis() as u64;
    match super::stream::open(
        &inner.native,
        endpoint,
        call,
        &node.node_id,
        &target,
        deadline,
        total_ms,
    )
    .await
    {
        Opened::Started(stream) => Some(Ok(*stream)),
        Opened::Unsent(e) => {
            tracing::debug!(node_id = %node.node_id, error = %e, "native stream not opened; answering buffered");
            None
        }
        Opened::Failed(e @ IicpError::Timeout { .. }) if Instant::now() >= deadline => {
            Some(Err(NodeOutcome::Fail(e)))
        }
        Opened::Failed(e) => Some(Err(NodeOutcome::Next(e))),
    }
}

/// Without the native transport every stream is answered buffered.
#[cfg(not(feature = "iicp-tcp"))]
async fn stream_native(
    _inner: &Inner,
    _node: &NodeInfo,
    _prepared: &Prepared<'_>,
    _consumer_token: Option<&Secret>,
    _trace: &str,
    _deadline: Instant,
) -> Option<std::result::Result<super::stream::ChatStream, NodeOutcome>> {
    None
}

/// The error of a submit whose every candidate failed: the nodes' own
/// [`IicpError::Protocol`] when they all answered with the same code and
/// status (one node, or a mesh that agrees), else `NoAvailableNode` listing
/// each failure, with the last one kept whole in `last`.
fn all_failed(intent: &str, mut failures: Vec<(String, IicpError)>) -> IicpError {
    let same_protocol_error = failures
        .windows(2)
        .all(|pair| match (&pair[0].1, &pair[1].1) {
            (
                IicpError::Protocol {
                    code: a, status: s, ..
                },
                IicpError::Protocol {
                    code: b, status: t, ..
                },
            ) => a == b && s == t,
            _ => false,
        });
    let reason = format!(
        "every candidate failed ({})",
        failures
            .iter()
            .map(|(node, e)| format!("{node}: {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let last = failures.pop().map(|(_, e)| e);
    match last {
        Some(e @ IicpError::Protocol { .. }) if same_protocol_error => e,
        last => IicpError::NoAvailableNode {
            intent: intent.to_owned(),
            reason,
            last: last.map(Box::new),
        },
    }
}
