//! `NativePool` against our node on loopback: connections are reused,
//! bounded per endpoint, replaced when the node ends them, and a CALL is
//! re-sent on a new connection only when that is safe (never handed to the
//! old one, or carrying an idempotency key).

#![cfg(feature = "iicp-tcp")]

mod common;

use common::CHAT;
use common::node::{local_config, start_node};
use futures_util::{SinkExt, StreamExt};
use iicp_client::node::{NativeLimits, handler_fn};
use iicp_client::transport::{
    Ack, BufferedResponse, Call, FrameCodec, Message, NativePool, PoolOptions, Response,
    ResultEncoding,
};
use iicp_client::{IicpError, NodeConfig, RunningNode};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::codec::Framed;

/// Hang guard only.
const SAFETY: Duration = Duration::from_secs(10);

async fn counting_node(config: NodeConfig) -> (RunningNode, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = runs.clone();
    let node = start_node(
        config,
        handler_fn(move |req, _ctx| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if let Some(ms) = req.payload["sleep_ms"].as_u64() {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Ok(json!({"n": req.payload["n"]}))
            }
        }),
    )
    .await;
    (node, runs)
}

fn endpoint(node: &RunningNode) -> String {
    format!("iicp://{}", node.local_addr())
}

fn call(n: u64) -> Call {
    Call {
        intent: Some(CHAT.into()),
        payload: json!({"n": n}),
        ..Default::default()
    }
}

async fn wait_closed(pool: &NativePool, at: &str) {
    let client = pool.client(at).await.unwrap();
    tokio::time::timeout(SAFETY, async {
        while !client.is_closed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the node closes the connection");
}

#[tokio::test]
async fn calls_share_one_connection_until_it_is_full_and_the_bound_holds() {
    let (node, _) = counting_node(NodeConfig {
        max_concurrent: 64,
        ..local_config()
    })
    .await;
    let at = endpoint(&node);
    let mut options = PoolOptions::default();
    options.calls_per_connection = 4;
    options.max_connections = 2;
    let pool = NativePool::new(options);
    for n in 0..5 {
        assert_eq!(pool.call(&at, call(n)).await.unwrap(), json!({"n": n}));
    }
    assert_eq!(pool.connections(&at), 1, "sequential calls reuse one");

    // 16 calls at once: a second connection opens, never a third.
    let calls = (0..16u64).map(|n| {
        let pool = pool.clone();
        let at = at.clone();
        async move {
            let mut c = call(n);
            c.payload = json!({"n": n, "sleep_ms": 100});
            (n, pool.call(&at, c).await)
        }
    });
    for (n, result) in futures_util::future::join_all(calls).await {
        assert_eq!(result.unwrap(), json!({"n": n}));
    }
    assert_eq!(pool.connections(&at), 2);
    node.shutdown().await;
}

#[tokio::test]
async fn a_connection_the_node_closed_is_replaced() {
    let mut native_limits = NativeLimits::default();
    native_limits.idle_timeout = Duration::from_millis(100);
    let (node, runs) = counting_node(NodeConfig {
        native_limits,
        ..local_config()
    })
    .await;
    let at = endpoint(&node);
    let pool = NativePool::new(PoolOptions::default());
    let first = pool.client(&at).await.unwrap();
    assert_eq!(pool.call(&at, call(1)).await.unwrap(), json!({"n": 1}));
    wait_closed(&pool, &at).await;
    assert!(first.is_closed());
    assert_eq!(pool.call(&at, call(2)).await.unwrap(), json!({"n": 2}));
    assert_eq!(pool.connections(&at), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "each call ran once");
    node.shutdown().await;
}

/// A scripted native node: it completes the handshake on every
/// connection, counts the CALLs it reads, drops the first connection right
/// after its first CALL (the call is lost with it), and answers every CALL
/// on later connections.
async fn node_that_drops_its_first_connection() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    tokio::spawn(async move {
        for connection in 0.. {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, FrameCodec::new());
                while let Some(Ok(frame)) = framed.next().await {
                    let answer = match Message::from_frame(&frame) {
                        Ok(Message::Init(_)) => Message::Ack(Ack {
                            version: Some(1),
                            node_id: Some("scripted".into()),
                        }),
                        Ok(Message::Call(call)) => {
                            seen.fetch_add(1, Ordering::SeqCst);
                            if connection == 0 {
                                return; // drops the connection, call unanswered
                            }
                            Message::Response(Response::Buffered(BufferedResponse {
                                session_id: call.session_id,
                                call_id: call.call_id,
                                result: Some(json!({"ran_on": connection})),
                                encoding: ResultEncoding::CborBytes,
                            }))
                        }
                        _ => return,
                    };
                    if framed.send(answer.to_frame()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("iicp://{addr}"), calls)
}

#[tokio::test]
async fn a_call_lost_with_its_connection_is_not_resent_without_an_idempotency_key() {
    let (at, calls) = node_that_drops_its_first_connection().await;
    let pool = NativePool::new(PoolOptions::default());
    let err = pool.call(&at, call(1)).await.unwrap_err();
    assert!(matches!(err, IicpError::Transport { .. }), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "sent once, never again");
    // The pool dropped the dead connection: the next call gets a new one.
    assert_eq!(pool.call(&at, call(2)).await.unwrap(), json!({"ran_on": 1}));
}

#[tokio::test]
async fn an_idempotent_call_lost_with_its_connection_is_resent_once_on_a_new_one() {
    let (at, calls) = node_that_drops_its_first_connection().await;
    let pool = NativePool::new(PoolOptions::default());
    let mut keyed = call(1);
    keyed.idempotency_key = Some("key-1".into());
    assert_eq!(pool.call(&at, keyed).await.unwrap(), json!({"ran_on": 1}));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(pool.connections(&at), 1);
}

#[tokio::test]
async fn endpoints_it_cannot_use_are_refused_before_any_connection() {
    let pool = NativePool::new(PoolOptions::default());
    for (endpoint, says) in [
        ("iicpsec://127.0.0.1:9484", "TLS"),
        ("http://127.0.0.1:9484", "iicp://"),
        ("iicp://127.0.0.1", "port"),
        ("iicp://127.0.0.1:0", "port"),
        ("iicp://:9484", "host"),
    ] {
        let err = pool.call(endpoint, call(1)).await.unwrap_err();
        assert!(err.to_string().contains(says), "{endpoint}: {err}");
    }
    let dead = common::dead_endpoint().await.replace("http://", "iicp://");
    let err = pool.call(&dead, call(1)).await.unwrap_err();
    assert!(matches!(err, IicpError::Transport { .. }), "{err:?}");
    assert_eq!(pool.connections(&dead), 0);
}
