//! The SDK's native client (`iicp_client::transport::NativeClient`) against
//! our node on loopback: handshake, ping, discover, buffered and streaming
//! calls, many calls in flight on one connection, refusals as `Protocol`
//! errors with the node's status and code, and pending calls failing when
//! the node goes away.

#![cfg(feature = "iicp-tcp")]

mod common;

use common::node::{local_config, start_node};
use iicp_client::node::handler_fn;
use iicp_client::transport::{NativeClient, NativeOptions};
use iicp_client::{HandlerError, IicpError, NodeConfig, RunningNode};
use serde_json::json;
use std::time::Duration;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

async fn node(config: NodeConfig) -> RunningNode {
    start_node(
        config,
        handler_fn(|req, _ctx| async move {
            if let Some(ms) = req.payload["sleep_ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if req.payload["fail"] == json!(true) {
                return Err(HandlerError::new(503, "IICP-E005", "try later"));
            }
            Ok(json!({"n": req.payload["n"]}))
        }),
    )
    .await
}

#[tokio::test]
async fn calls_are_multiplexed_and_matched_by_call_id() {
    let node = node(NodeConfig {
        max_concurrent: 32,
        ..local_config()
    })
    .await;
    let c = common::native::connect(&node).await;
    assert_eq!(&c.ping(b"hello").await.unwrap()[..], b"hello");
    let nodes = c.discover(CHAT).await.unwrap();
    assert_eq!(
        nodes[0]["transport_endpoint"],
        json!(format!("iicp://{}", node.local_addr()))
    );

    // 24 calls at once on one connection, finishing in reverse order: each
    // gets its own answer.
    let calls = (0..24u64).map(|n| {
        let c = c.clone();
        async move {
            let payload = json!({"n": n, "sleep_ms": (24 - n) * 5});
            (n, c.call(CHAT, payload).await)
        }
    });
    for (n, result) in futures_util::future::join_all(calls).await {
        assert_eq!(result.unwrap(), json!({"n": n}));
    }

    let mut steps = c
        .stream(CHAT, json!({"n": 7}), "task-stream-7")
        .await
        .unwrap();
    let last = steps.recv().await.expect("a step").expect("no error");
    assert!(last.is_final);
    assert_eq!(last.event.as_str(), "completed");
    assert_eq!(last.result, Some(json!({"n": 7})));
    node.shutdown().await;
}

#[tokio::test]
async fn refusals_come_back_with_the_nodes_status_and_code() {
    let node = node(local_config()).await;
    let c = common::native::connect(&node).await;
    for (payload, intent, status, code) in [
        (json!({"fail": true}), CHAT, 503, "IICP-E005"),
        (
            json!({}),
            "urn:iicp:intent:x.none:nothing:v1",
            422,
            "unknown_intent",
        ),
    ] {
        match c.call(intent, payload).await {
            Err(IicpError::Protocol {
                status: s, code: k, ..
            }) => {
                assert_eq!((s, k.as_str()), (status, code));
            }
            other => panic!("expected Protocol {status} {code}, got {other:?}"),
        }
    }
    // A malformed intent never leaves the process.
    assert!(matches!(
        c.call("not a urn", json!({})).await,
        Err(IicpError::InvalidIntent(_))
    ));
    node.shutdown().await;
}

#[tokio::test]
async fn pending_calls_fail_when_the_node_closes() {
    let node = node(NodeConfig {
        shutdown_grace: Duration::from_millis(200),
        ..local_config()
    })
    .await;
    let c = common::native::connect(&node).await;
    let slow = tokio::spawn({
        let c = c.clone();
        async move { c.call(CHAT, json!({"sleep_ms": 5_000})).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.shutdown().await;
    let err = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("the pending call ends")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            IicpError::Transport { .. } | IicpError::Protocol { .. }
        ),
        "{err:?}"
    );
    assert!(
        c.call(CHAT, json!({})).await.is_err(),
        "the connection is gone"
    );
}

#[tokio::test]
async fn token_mode_takes_the_init_token() {
    let node = node(NodeConfig {
        task_auth: iicp_client::node::TaskAuthMode::Token,
        node_token: Some("op-token".into()),
        ..local_config()
    })
    .await;
    let addr = format!("{}", node.local_addr());
    let anonymous = NativeClient::connect(&addr, NativeOptions::default())
        .await
        .unwrap();
    let err = anonymous.call(CHAT, json!({"n": 1})).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(401), "unauthorized"));
    let mut options = NativeOptions::default();
    options.node_token = Some("op-token".into());
    let trusted = NativeClient::connect(&addr, options).await.unwrap();
    assert_eq!(
        trusted.call(CHAT, json!({"n": 1})).await.unwrap(),
        json!({"n": 1})
    );
    node.shutdown().await;
}
