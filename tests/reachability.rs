//! How the node uses the reachability ladder, on loopback (no root, no lab;
//! the lab cases are `nat_lab.rs`, `nat_lab_v6.rs` and `nat_hostile.rs`):
//! with detection off it advertises `http://127.0.0.1:PORT` as before; a
//! node bound to loopback is tier 4 and still registers with a directory on
//! this machine (a local mesh).

mod common;

use common::node::start_node;
use iicp_client::nat::{ReachabilityConfig, Tier};
use iicp_client::node::handler_fn;
use iicp_client::{IicpNode, NodeConfig};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn with_detection_off_the_node_advertises_loopback_and_reports_no_tier() {
    let node = IicpNode::new(NodeConfig {
        host: "0.0.0.0".into(),
        port: 0,
        skip_registration: true,
        reachability: ReachabilityConfig {
            auto_detect: false,
            ..Default::default()
        },
        ..NodeConfig::default()
    })
    .start(handler_fn(|_req, _ctx| async { Ok(json!({})) }))
    .await
    .unwrap();
    assert_eq!(
        node.endpoint(),
        format!("http://127.0.0.1:{}", node.local_addr().port())
    );
    assert_eq!(node.reachability_tier(), None);
    node.shutdown().await;
}

#[tokio::test]
async fn a_loopback_node_is_tier_4_and_still_joins_a_local_directory() {
    let dir = common::Harness::without_probe().await;
    let node = start_node(
        NodeConfig {
            directory_url: dir.base.clone(),
            ..NodeConfig::local(&dir.base)
        },
        handler_fn(|_req, _ctx| async { Ok(json!({})) }),
    )
    .await;
    assert_eq!(node.reachability_tier(), Some(Tier::Local));
    let id = node
        .registered_within(Duration::from_secs(10))
        .await
        .expect("a local mesh takes the loopback endpoint");
    let (_, info) = dir.get(&format!("/v1/node/{id}")).await;
    assert_eq!(info["endpoint"], node.endpoint());
    node.shutdown().await;
}
