//! Where a task is sent: the route hints of a call and the discovery behind
//! it (PROTOCOL.md §5.1 steps 1–3): the cached discover answer, screened by
//! the endpoint guard once, and the probation fallback for the SDK's
//! default QoS class (issue 16).

use super::Inner;
use super::attempt::remaining;
use super::discovery::{self, DiscoverParams, Screened};
use crate::error::Result;
use crate::wire::{Qos, TaskRequest};
use std::sync::Arc;
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

/// The discover answer for `task`'s route, and the class it was found at;
/// when the probation fallback found it at another class, the task asks for
/// that class.
pub(super) async fn route_task(
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
