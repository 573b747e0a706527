//! `submit()`: discover → select → submit with failover (PROTOCOL.md §5.1,
//! §5.2; SDK-01). One deadline, `timeout_ms`, bounds the whole call:
//! discovery, every attempt and every pause.

use super::candidates::{self, Candidate};
use super::discovery::{self, DiscoverParams, Screened};
use super::judge::Judged;
use super::retry::{Verdict, backoff};
use super::seal::{Outgoing, Prepared};
use super::{Inner, http_attempt, native_attempt};
use crate::error::{IicpError, Result};
use crate::secret::Secret;
use crate::wire::{NodeInfo, Qos, TaskRequest, TaskResponse, check_intent_policy};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Route hints for the discovery behind a submit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Route {
    pub region: Option<String>,
    pub model: Option<String>,
    pub qos: Option<Qos>,
    /// True when `qos` is the SDK's default, not the caller's choice: only
    /// then may [`discover_with_probation_fallback`] ask again at another class.
    pub qos_is_default: bool,
}

impl Route {
    /// The route of a typed call (`chat()`, `embed()`, `complete()`, the
    /// gateway): the caller's `qos` when given, else `interactive` as the
    /// reference clients ask, with the probation fallback allowed.
    pub fn with_default_qos(
        region: Option<String>,
        model: Option<String>,
        qos: Option<Qos>,
    ) -> Self {
        Self {
            region,
            model,
            qos_is_default: qos.is_none(),
            qos: Some(qos.unwrap_or(Qos::Interactive)),
        }
    }
}

/// The class to ask when the default class finds no node: `batch`, which
/// probation does not gate, for the gated `interactive` and `realtime`;
/// none for the others.
pub(crate) fn probation_fallback(qos: Qos) -> Option<Qos> {
    match qos {
        Qos::Realtime | Qos::Interactive => Some(Qos::Batch),
        Qos::Batch | Qos::BestEffort => None,
    }
}

/// How one node's attempts ended, when they did not produce an answer.
enum NodeOutcome {
    Next(IicpError),
    Fail(IicpError),
}

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

/// The discover answer for `task`'s route, and the class it was found at;
/// when the probation fallback found it at another class, the task asks for
/// that class.
async fn route_task(
    inner: &Inner,
    task: &mut TaskRequest,
    route: &Route,
    trace: &str,
    deadline: Instant,
) -> Result<(Arc<Screened>, Option<Qos>)> {
    let (list, qos) =
        discover_with_probation_fallback(inner, task.intent.as_str(), route, trace, deadline)
            .await?;
    if qos != route.qos {
        task.constraints.get_or_insert_with(Default::default).qos = qos;
    }
    Ok((list, qos))
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
    let mut call = native_attempt::call_for(prepared, consumer_token, trace);
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

/// The consumer token that lets the caller reach `node` with this intent,
/// when a `node_token` is configured and the directory issues one.
///
/// The caller's own `node_token` is a directory credential: it goes only
/// to the directory, never to a node. Without a consumer token the task
/// goes without a credential (nodes in `open` mode take it; nodes in
/// `token` mode answer 401).
async fn credential_for(
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

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn remaining(deadline: Instant, what: &str, total: Duration) -> Result<Duration> {
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

/// The directory's nodes for `route`, and the QoS class they were asked
/// at. This is the probation fallback (issue 16): the public directory
/// hides nodes in probation (fewer than 100 completed tasks) from
/// `interactive`, so a young mesh lists nothing for the class `chat()`
/// asks by default. When the route's class is the SDK's default
/// ([`Route::qos_is_default`]) and the directory lists no node for it, the
/// same query is asked once more at [`probation_fallback`]'s class
/// (`batch`), with a debug line saying so. A class the caller chose is
/// never changed: its empty answer stands.
pub(crate) async fn discover_with_probation_fallback(
    inner: &Inner,
    intent: &str,
    route: &Route,
    trace: &str,
    deadline: Instant,
) -> Result<(Arc<Screened>, Option<Qos>)> {
    let list = discover_cached(inner, intent, route, route.qos, trace, deadline).await?;
    let fallback = route
        .qos
        .filter(|_| route.qos_is_default && list.list.nodes.is_empty())
        .and_then(probation_fallback);
    let Some(fallback) = fallback else {
        return Ok((list, route.qos));
    };
    tracing::debug!(
        intent,
        asked = %route.qos.map(Qos::as_str).unwrap_or_default(),
        fallback = %fallback,
        "no node listed for the default QoS class (nodes in probation are hidden from it); asking again at the fallback class"
    );
    let list = discover_cached(inner, intent, route, Some(fallback), trace, deadline).await?;
    Ok((list, Some(fallback)))
}

/// One discover query for `route` at class `qos`, from the cache when a
/// fresh answer is there; a new answer is screened by the endpoint guard
/// once, before it is cached.
async fn discover_cached(
    inner: &Inner,
    intent: &str,
    route: &Route,
    qos: Option<Qos>,
    trace: &str,
    deadline: Instant,
) -> Result<Arc<Screened>> {
    let params = DiscoverParams {
        intent,
        region: route.region.as_deref().or(inner.config.region.as_deref()),
        model: route.model.as_deref(),
        qos,
        ..Default::default()
    };
    let key = discovery::cache_key(&params);
    let cached = inner
        .options
        .discovery_cache
        .then(|| inner.cache.get(&key))
        .flatten();
    let list: Arc<Screened> = match cached {
        Some(list) => list,
        None => {
            let url = discovery::discover_url(&inner.config.directory_url, &params)?;
            let total = inner.timeout();
            let left = remaining(deadline, "discovery", total)?;
            let (list, ttl) =
                discovery::fetch(&inner.directory_http, url, &params, trace, left).await?;
            let list = Arc::new(Screened::new(list, |endpoint| {
                inner
                    .guard
                    .check_endpoint(endpoint)
                    .err()
                    .map(|why| why.to_string())
            }));
            // An empty answer is never cached: a node that registers a moment
            // later must be found by the next call.
            if let (true, Some(ttl), false) = (
                inner.options.discovery_cache,
                ttl,
                list.list.nodes.is_empty(),
            ) {
                inner.cache.put(key, list.clone(), ttl);
            }
            list
        }
    };
    Ok(list)
}

/// Attempts one node until it answers, fails for good, or should be left.
/// Each attempt goes over the native transport when [`native_endpoint`]
/// names one and it connects, else over HTTP; the verdicts and pauses are
/// the same for both.
async fn attempt_node(
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
