//! Interop of OUR relay server with the Python SDK's relay worker
//! (`iicp-client==0.7.109`), everything on 127.0.0.1: the Python node serves
//! with `relay_worker_endpoint` pointing at our relay's accept port, binds
//! (INIT/ACK, RELAY_BIND/RELAY_ACK), re-registers with our directory under
//! `http://127.0.0.1:<relay>/v1/relay-for/<id>`, and our `IicpClient`'s chat
//! reaches the Python node's handler through our relay (sealed with IICP-CX
//! end to end: the relay forwards ciphertext both ways), as does a plain task
//! POSTed to the relay.
//!
//! Needs the venv of `scripts/interop/requirements.txt`; its python in
//! `IICP_INTEROP_PYTHON`. Run: `IICP_INTEROP_PYTHON=/tmp/interop/bin/python
//! cargo test --test interop_python_relay -- --ignored`.
#![cfg(feature = "iicp-tcp")]

mod common;

use common::python::{Python, chat_with_python_echo, discovered};
use common::relay::{chat_task, get_json, start_relay};
use iicp_client::directory::{Directory, DirectoryConfig};
use std::time::Duration;

#[tokio::test]
#[ignore = "needs the Python SDK venv (scripts/interop); set IICP_INTEROP_PYTHON"]
async fn our_relay_serves_the_python_relay_worker() {
    let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("directory starts");
    let base = dir.url();
    let relay = start_relay(|_| {}).await;

    let mut py = Python::from_env().spawn(
        "py_relay_worker.py",
        &[
            "--directory-url",
            &base,
            "--relay",
            &relay.accept.to_string(),
        ],
    );
    let node_id = py.listening(Duration::from_secs(30)).await["node_id"]
        .as_str()
        .expect("a node id")
        .to_owned();

    // Bound at our relay: its health answers under the worker's prefix.
    let health_url = format!("{}/v1/relay-for/{node_id}/iicp/health", relay.base);
    let health = py
        .wait_for(
            "the Python worker's bind",
            Duration::from_secs(30),
            async || {
                let (status, body) = get_json(&health_url, None).await;
                (status == 200).then_some(body)
            },
        )
        .await;
    assert_eq!(health["node_id"], node_id.as_str());
    assert_eq!(health["models"], serde_json::json!(["py-echo"]));

    // Re-registered through the relay: discover lists the relay-for endpoint.
    let relay_endpoint = format!("{}/v1/relay-for/{node_id}", relay.base);
    py.wait_for(
        "the re-registration through the relay",
        Duration::from_secs(30),
        async || {
            discovered(&base).await.into_iter().find(|n| {
                n["node_id"] == node_id.as_str() && n["endpoint"] == relay_endpoint.as_str()
            })
        },
    )
    .await;

    // Our client's chat goes to the relay-for endpoint, sealed for the
    // Python node (IICP-CX), and comes back sealed by it.
    chat_with_python_echo(&base, "hello through the relay", &py).await;
    let sealed = py
        .out
        .json()
        .into_iter()
        .rfind(|e| e["event"] == "task")
        .expect("the Python handler saw the task");
    assert_eq!(sealed["request"]["cx_response_encryption"], "required");

    // A plain task POSTed to the relay: the Python handler's raw value comes
    // back merged into a completed task response.
    let (status, body) = relay.task(&node_id, chat_task("plain", Some(10_000))).await;
    assert_eq!(status, 200, "{body}\n{}", py.logs());
    assert_eq!(body["status"], "completed");
    assert_eq!(
        body["result"]["choices"][0]["message"]["content"], "python echo: plain",
        "{body}"
    );
    relay.node.shutdown().await;
    dir.shutdown().await;
}
