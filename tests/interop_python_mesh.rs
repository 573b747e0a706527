//! Mesh gossip interop with the Python SDK (`iicp-client==0.7.109`), on
//! 127.0.0.1: a Python node with its gossip on (`NodeConfig.enable_mesh`)
//! and our node, both registered with our directory and sharing a gossip
//! key, exchange peers in both directions with signed `POST /v1/peers`.
//!
//! Needs the interop venv (`IICP_INTEROP_PYTHON`, see docs/INTEROP.md);
//! the Python side is `scripts/interop/py_mesh_node.py`.

mod common;

use common::python::Python;
use hmac::{Hmac, KeyInit, Mac};
use iicp_client::node::handler_fn;
use iicp_client::{NodeConfig, Secret};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

const KEY: &str = "interop-gossip-key";

/// The Python node's peer cache, read with a signed exchange of our own.
async fn python_peers(endpoint: &str) -> Vec<Value> {
    let body = serde_json::to_vec(&json!({"known_peers": []})).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(&body);
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/v1/peers"))
        .header("content-type", "application/json")
        .header("X-IICP-Signature", hex::encode(mac.finalize().into_bytes()))
        .body(body)
        .send()
        .await
        .expect("the Python node answers");
    assert_eq!(resp.status(), 200, "the Python node takes our signature");
    let v: Value = resp.json().await.unwrap();
    v["peers"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the Python SDK venv (IICP_INTEROP_PYTHON)"]
async fn python_and_rust_nodes_gossip_both_ways() {
    let (logs, _guard) = common::logs::capture();
    let dir = common::Harness::start(Default::default()).await;
    let relay_port = common::node_bin::free_port();
    let ours = iicp_client::IicpNode::new(NodeConfig {
        node_id: Some("rust-mesh-node".into()),
        enable_mesh: true,
        node_hmac_key: Some(Secret::new(KEY)),
        mesh_interval: Duration::from_secs(1),
        relay_capable: true,
        relay_accept_port: relay_port,
        region: Some("eu".into()),
        models: vec!["m".into()],
        ..NodeConfig::local(&dir.base)
    })
    .start(handler_fn(|_req, _ctx| async { Ok(json!({})) }))
    .await
    .unwrap();
    ours.registered_within(Duration::from_secs(10))
        .await
        .unwrap();

    let py_id = uuid::Uuid::new_v4().to_string();
    let mut py = Python::from_env().spawn(
        "py_mesh_node.py",
        &[
            "--directory-url",
            &dir.base,
            "--node-id",
            &py_id,
            "--gossip-key",
            KEY,
            "--gossip-secs",
            "1",
            "--heartbeat-secs",
            "1",
        ],
    );
    let py_endpoint = py.listening(Duration::from_secs(30)).await["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();

    // Python → us: its exchange carries itself with relay_accept_port and
    // relay_load (the directory's bootstrap list has neither), signed with
    // the shared key, and our node took it.
    let learned = py
        .wait_for(
            "our node to hear the Python node's exchange",
            Duration::from_secs(40),
            async || {
                ours.peers()
                    .into_iter()
                    .find(|p| p.node_id == py_id && p.relay_load.is_some())
            },
        )
        .await;
    assert_eq!(learned.endpoint, py_endpoint);
    assert_eq!(
        learned.relay_accept_port,
        Some(9485),
        "the Python SDK's default"
    );
    assert!(!learned.relay_capable);
    assert!(logs.text().contains("mesh exchange received"));

    // Us → Python: our exchange went through (logged as answered), and the
    // Python node holds us with our relay fields.
    let needle = format!("mesh exchange peer={py_id}");
    py.wait_for(
        "our node to exchange with the Python node",
        Duration::from_secs(40),
        async || logs.text().contains(&needle).then_some(()),
    )
    .await;
    let peers = python_peers(&py_endpoint).await;
    let us = peers
        .iter()
        .find(|p| p["node_id"] == "rust-mesh-node")
        .unwrap_or_else(|| panic!("the Python node knows us: {peers:?}"));
    assert_eq!(us["relay_capable"], true);
    assert_eq!(us["relay_accept_port"], relay_port);
    assert_eq!(us["endpoint"], ours.endpoint());
    assert!(!logs.text().contains(KEY), "the key is never logged");
    drop(py);
    ours.shutdown().await;
}
