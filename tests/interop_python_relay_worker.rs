//! Interop: the Python SDK's relay (`iicp-client==0.7.109`, the node its CLI
//! starts with `--relay-capable`) serves OUR relay worker, everything on
//! 127.0.0.1. Our worker dials the Python relay's accept port
//! (`relay_worker_endpoint`), binds, registers the relay-for endpoint with
//! our directory, and a consumer's POST to that endpoint gets our node's
//! answer, not the relay's own.
//!
//! Needs the venv of `scripts/interop/requirements.txt`, whose python is
//! given in `IICP_INTEROP_PYTHON` (docs/INTEROP.md).
#![cfg(feature = "iicp-tcp")]

mod common;

use common::python::{Python, Spawned, discovered};
use common::relay::{get_json, post_json};
use iicp_client::directory::{Directory, DirectoryConfig};
use iicp_client::node::handler_fn;
use iicp_client::{IicpNode, NodeConfig};
use serde_json::json;
use std::time::Duration;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

/// Starts scripts/interop/py_relay.py and returns it (killed when dropped)
/// with its (HTTP, relay accept) ports.
async fn python_relay() -> (Spawned, u16, u16) {
    let mut relay = Python::from_env().spawn("py_relay.py", &[]);
    let listening = relay.listening(Duration::from_secs(60)).await;
    assert_eq!(
        relay.out.json().first(),
        Some(&listening),
        "the relay's first line"
    );
    let port = |k: &str| u16::try_from(listening[k].as_u64().unwrap()).unwrap();
    (relay, port("http_port"), port("relay_port"))
}

#[tokio::test]
#[ignore = "needs the Python SDK venv (IICP_INTEROP_PYTHON)"]
async fn the_python_relay_serves_our_worker() {
    let (relay, http_port, relay_port) = python_relay().await;
    let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut config = NodeConfig {
        models: vec!["rust-model".into()],
        relay_worker_endpoint: Some(format!("127.0.0.1:{relay_port}")),
        ..NodeConfig::local(dir.url())
    };
    config.reachability.auto_detect = false;
    let node = IicpNode::new(config)
        .start(handler_fn(|req, ctx| async move {
            Ok(json!({"answer": "our rust worker", "echo": req.payload, "node": ctx.node_id}))
        }))
        .await
        .unwrap();
    let id = node.node_id().unwrap();
    assert_eq!(
        node.relay_within(Duration::from_secs(30)).await,
        Some(format!("127.0.0.1:{relay_port}")),
        "bound at the Python relay"
    );
    node.registered_within(Duration::from_secs(30))
        .await
        .unwrap();

    // The directory lists the relay-for endpoint the Python relay's
    // RELAY_ACK named (its HTTP port).
    let endpoint = format!("http://127.0.0.1:{http_port}/v1/relay-for/{id}");
    relay
        .wait_for(
            "the relay-for endpoint in discover",
            Duration::from_secs(30),
            async || {
                discovered(&dir.url())
                    .await
                    .iter()
                    .any(|n| {
                        n["node_id"] == id.as_str()
                            && n["endpoint"] == endpoint.as_str()
                            && n["transport_method"] == "turn_relay"
                    })
                    .then_some(())
            },
        )
        .await;

    // A consumer POSTs to the relay-for URL and gets our node's answer.
    let (status, answer) = post_json(
        &format!("{endpoint}/v1/task"),
        &json!({"task_id": "interop-1", "intent": CHAT, "payload": {"q": "hello"}}),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task_id"], "interop-1", "{answer}");
    assert_eq!(answer["result"]["answer"], "our rust worker", "{answer}");
    assert_eq!(answer["result"]["echo"], json!({"q": "hello"}));
    assert_eq!(answer["result"]["node"], id.as_str());
    // Its health, through the relay.
    let (status, _) = get_json(&format!("{endpoint}/iicp/health"), None).await;
    assert_eq!(status, 200);
    node.shutdown().await;
}
