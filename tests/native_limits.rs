//! `NodeConfig::native_limits` takes effect: a node configured with lower
//! native session limits than the defaults enforces them (calls in flight
//! per connection, largest frame, idle timeout), and a configuration outside
//! the allowed ranges is refused before the node binds anything.

#![cfg(feature = "iicp-tcp")]

mod common;

use common::CHAT;
use common::node::{local_config, start_node};
use iicp_client::node::{NativeLimits, handler_fn};
use iicp_client::transport::{NativeClient, NativeOptions};
use iicp_client::{IicpError, IicpNode, NodeConfig, RunningNode};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Hang guard only: every wait below ends long before it when the code works.
const SAFETY: Duration = Duration::from_secs(10);

fn limits(change: impl FnOnce(&mut NativeLimits)) -> NodeConfig {
    let mut native_limits = NativeLimits::default();
    change(&mut native_limits);
    NodeConfig {
        native_limits,
        max_concurrent: 8,
        ..local_config()
    }
}

async fn connect(node: &RunningNode) -> NativeClient {
    NativeClient::connect(&node.local_addr().to_string(), NativeOptions::default())
        .await
        .expect("handshake")
}

#[tokio::test]
async fn max_calls_one_refuses_a_second_call_in_flight_with_429() {
    // The handler reports that it started, then waits for the test's go.
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let gates: Arc<Mutex<Vec<oneshot::Receiver<()>>>> = Arc::default();
    let (go, gate) = oneshot::channel();
    gates.lock().unwrap().push(gate);
    let handler_gates = gates.clone();
    let node = start_node(
        limits(|l| l.max_calls = 1),
        handler_fn(move |_req, _ctx| {
            let gate = handler_gates.lock().unwrap().pop();
            let started = started_tx.clone();
            async move {
                let _ = started.send(());
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                Ok(json!({"done": true}))
            }
        }),
    )
    .await;
    let c = connect(&node).await;
    let first = tokio::spawn({
        let c = c.clone();
        async move { c.call(CHAT, json!({"n": 1})).await }
    });
    tokio::time::timeout(SAFETY, started.recv())
        .await
        .expect("the first call reaches the handler");
    let refused = c.call(CHAT, json!({"n": 2})).await.unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(429), "IICP-E021"),
        "{refused:?}"
    );
    go.send(()).unwrap();
    let done = tokio::time::timeout(SAFETY, first).await.unwrap().unwrap();
    assert_eq!(done.unwrap(), json!({"done": true}));
    // The refusal left the connection open: the next call runs.
    assert_eq!(
        c.call(CHAT, json!({"n": 3})).await.unwrap(),
        json!({"done": true})
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_the_configured_maximum_gets_close_frame_too_large() {
    let node = start_node(
        limits(|l| l.max_frame = 2048),
        handler_fn(|_req, _ctx| async { Ok(json!({"ok": true})) }),
    )
    .await;
    let c = connect(&node).await;
    assert_eq!(
        c.call(CHAT, json!({"text": "small"})).await.unwrap(),
        json!({"ok": true})
    );
    let big = "x".repeat(4096);
    let err = c.call(CHAT, json!({"text": big})).await.unwrap_err();
    assert!(
        matches!(&err, IicpError::Transport { reason, .. } if reason.contains("frame_too_large")),
        "{err:?}"
    );
    // The node keeps serving new connections.
    assert_eq!(
        connect(&node).await.call(CHAT, json!({})).await.unwrap(),
        json!({"ok": true})
    );
    node.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_configured_idle_timeout() {
    let node = start_node(
        limits(|l| l.idle_timeout = Duration::from_millis(200)),
        handler_fn(|_req, _ctx| async { Ok(json!({"ok": true})) }),
    )
    .await;
    let c = connect(&node).await;
    let closed = tokio::time::timeout(SAFETY, async {
        while !c.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the node keeps an idle connection past its idle timeout"
    );
    let err = c.call(CHAT, json!({})).await.unwrap_err();
    assert!(err.to_string().contains("idle_timeout"), "{err}");
    node.shutdown().await;
}

#[tokio::test]
async fn limits_outside_their_ranges_are_refused_at_start() {
    for (change, field) in [
        (
            (|l: &mut NativeLimits| l.max_frame = 17 * 1024 * 1024) as fn(&mut NativeLimits),
            "max_frame",
        ),
        (|l| l.max_calls = 0, "max_calls"),
        (|l| l.idle_timeout = Duration::ZERO, "idle_timeout"),
    ] {
        let err = IicpNode::new(limits(change))
            .start(handler_fn(|_req, _ctx| async { Ok(json!({})) }))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, IicpError::InvalidConfig(m) if m.contains(field)),
            "{field}: {err:?}"
        );
    }
}
