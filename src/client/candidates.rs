//! Which of the discovered nodes a task is tried on, and in what order
//! (PROTOCOL.md §5.1 steps 4–5): available, passed by the endpoint guard,
//! keyed unless plaintext is allowed, ordered by the selection strategy,
//! one per node, at most `max_candidates`.
//!
//! A candidate borrows its node from the (cached, shared) discover answer:
//! choosing copies nothing but references.

use super::Inner;
use super::discovery::Screened;
use super::route::Route;
use super::seal::node_key;
use super::selection;
use crate::error::{IicpError, Result};
use crate::wire::{NodeInfo, Qos};

/// A node to try, with the URL its tasks are posted to (parsed once, when
/// its discover answer arrived).
pub(crate) struct Candidate<'l> {
    pub node: &'l NodeInfo,
    pub task_url: &'l reqwest::Url,
}

impl std::borrow::Borrow<NodeInfo> for Candidate<'_> {
    fn borrow(&self) -> &NodeInfo {
        self.node
    }
}

/// The nodes of `list` to try for a task of `intent`, in order; `list` was
/// discovered for `route` and found at class `qos` (for the error when no
/// node can be tried).
pub(crate) fn choose<'l>(
    inner: &Inner,
    list: &'l Screened,
    intent: &str,
    route: &Route,
    qos: Option<Qos>,
) -> Result<Vec<Candidate<'l>>> {
    let found = list.list.nodes.len();
    let mut refused = Vec::new();
    let usable: Vec<Candidate<'l>> = list
        .list
        .nodes
        .iter()
        .zip(&list.verdicts)
        .filter(|(n, _)| n.available)
        .filter_map(|(node, verdict)| match verdict {
            Ok(task_url) => Some(Candidate { node, task_url }),
            Err(why) => {
                refused.push(why.as_str());
                None
            }
        })
        .collect();
    if usable.is_empty() {
        return Err(IicpError::NoAvailableNode {
            intent: intent.to_owned(),
            reason: none_usable(found, &refused, route, qos),
            last: None,
        });
    }
    let usable = if inner.options.allow_plaintext {
        usable
    } else {
        // PROTOCOL.md §2.5: a node without a key would see the payload in
        // plaintext, and so would everything between us and it.
        let (keyed, keyless): (Vec<Candidate>, Vec<Candidate>) =
            usable.into_iter().partition(|c| node_key(c.node).is_some());
        if keyed.is_empty() {
            return Err(IicpError::PlaintextRefused {
                intent: intent.to_owned(),
                nodes: keyless.len(),
            });
        }
        if !keyless.is_empty() {
            tracing::debug!(
                skipped = keyless.len(),
                "nodes without a CX key skipped (plaintext not allowed)"
            );
        }
        keyed
    };
    let ordered = selection::order(inner.options.selection, usable, rand::random::<f64>());
    let mut chosen: Vec<Candidate> = Vec::with_capacity(inner.options.max_candidates);
    for candidate in ordered {
        if chosen.len() == inner.options.max_candidates {
            break;
        }
        if !chosen.iter().any(|c| same_node(c, &candidate)) {
            chosen.push(candidate);
        }
    }
    Ok(chosen)
}

/// Why no listed node can be tried: none listed (at which classes), all
/// refused by the endpoint guard (the first reason), or none available.
fn none_usable(found: usize, refused: &[&str], route: &Route, qos: Option<Qos>) -> String {
    if found == 0 {
        return match (route.qos_is_default, qos) {
            (true, Some(q)) if q != route.qos.unwrap_or(q) => format!(
                "the directory returned no node for this intent (asked at qos={}, then {q})",
                route.qos.map(Qos::as_str).unwrap_or_default()
            ),
            (_, Some(q)) => format!("the directory returned no node for this intent at qos={q}"),
            _ => "the directory returned no node for this intent".to_owned(),
        };
    }
    match refused.first() {
        Some(first) => format!(
            "{found} node(s) found, {} refused by the endpoint guard: {first}",
            refused.len()
        ),
        None => format!("{found} node(s) found, none available"),
    }
}

/// Whether two listed nodes are one: the same task URL and the same CX key
/// (or none). A node restarted without its directory token registers under
/// a new id while its former record stays listed until it expires (90 s on
/// our directory), at the same endpoint with the same key. Trying it again
/// under the other id gains nothing (it refuses a task id it has seen with
/// 409 `IICP-E010`; down is down for both) and spends the call's
/// candidates on one node. Records at one endpoint with different keys stay
/// apart: a record naming someone else's endpoint must not hide the real one.
fn same_node(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    a.task_url == b.task_url
        && a.node.effective_cx_key().map(|k| &k.key) == b.node.effective_cx_key().map(|k| &k.key)
}
