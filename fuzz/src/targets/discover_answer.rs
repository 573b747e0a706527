//! `discover_answer`: a directory's answer to `GET /v1/discover`, as the
//! client reads it.
//!
//! The client's path (`client/discovery.rs` `fetch`, `client/submit.rs`
//! `candidates`): a non-2xx answer is read as an error body
//! (`parse_error_body`, all three shapes); a 2xx one as a `NodeList`
//! (lenient: odd nodes and capabilities are dropped), cut to the `limit`
//! asked; then the available nodes that pass the endpoint guard (public
//! only, and with the private opt-in), their CX keys (`node_key`), the
//! `weighted_v1` order, and the task sealed for each keyed node
//! (`Outgoing::for_node`) as it would be sent.
//!
//! Oracles: the list re-encodes to JSON that reads back the same; the
//! order is a permutation of the candidates; every node the public guard
//! admits the private opt-in admits too; a node with a usable key gets a
//! sealed task, a node without one the plaintext task.

use super::{CHAT, Picks, assert_round_trip};
use crate::client::guard::EndpointGuard;
use crate::client::seal::{Outgoing, node_key};
use crate::client::selection::{self, SelectionStrategy};
use crate::wire::discover::clamp_limit;
use crate::wire::{IntentUrn, NodeInfo, NodeList, TaskRequest, parse_error_body};

pub fn run(data: &[u8]) {
    // The same bytes as a refusal (the status is judged before the body).
    if let Some(parsed) = parse_error_body(data) {
        let _ = (
            parsed.code.len(),
            parsed.message.len(),
            parsed.retry_after_ms,
        );
    }
    // `Reply::json`, then `fetch`'s cut to the limit asked (the default).
    let Ok(mut list) = serde_json::from_slice::<NodeList>(data) else {
        return;
    };
    assert_round_trip(&list, "a discover answer");
    let asked = clamp_limit(None) as usize;
    if list.nodes.len() > asked {
        list.nodes.truncate(asked);
        list.count = asked;
    }
    let public = EndpointGuard::new(false);
    let private = EndpointGuard::new(true);
    let mut usable: Vec<NodeInfo> = Vec::new();
    for node in list.nodes.iter().filter(|n| n.available) {
        let admitted = public.check_endpoint(&node.endpoint).is_ok();
        let admitted_private = private.check_endpoint(&node.endpoint).is_ok();
        assert!(
            admitted_private || !admitted,
            "the private opt-in refuses an endpoint the public guard admits: {:?}",
            node.endpoint
        );
        if admitted_private {
            usable.push(node.clone());
        }
    }
    let mut picks = Picks::new(data);
    let ordered = selection::order(
        SelectionStrategy::WeightedV1 {
            top_k: 1 + (picks.next() % 4) as usize,
        },
        usable.clone(),
        picks.unit(),
    );
    let mut before: Vec<&str> = usable.iter().map(|n| n.node_id.as_str()).collect();
    let mut after: Vec<&str> = ordered.iter().map(|n| n.node_id.as_str()).collect();
    before.sort_unstable();
    after.sort_unstable();
    assert_eq!(before, after, "the order is not a permutation");

    let mut task = TaskRequest::new(
        IntentUrn::parse(CHAT).expect("intent"),
        serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    task.task_id = "7f1c2d9e-4b3a-4c5d-8e6f-0a1b2c3d4e5f".into();
    let outgoing = Outgoing::new(task).expect("a task serialises");
    for node in ordered.iter().take(3) {
        let keyed = node_key(node).is_some();
        let prepared = outgoing.for_node(node).expect("a task for a node");
        assert_eq!(prepared.sealed.is_some(), keyed);
        assert_eq!(prepared.task.iicp_conf.is_some(), keyed);
        let body = prepared.body().expect("a body");
        let sent: TaskRequest = serde_json::from_slice(&body).expect("the node reads the task");
        assert_eq!(sent, *prepared.task);
        let _ = prepared.native_payload();
    }
}
