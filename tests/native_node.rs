//! The node's native transport on its one port (issue 13): a session
//! through the real node (INIT/ACK, PING, DISCOVER, CALL in both layouts,
//! task auth, refusals with the pipeline's codes), and hostile input: each
//! bad session ends with a CLOSE naming its reason, and the node keeps
//! serving HTTP and native afterwards.

#![cfg(feature = "iicp-tcp")]

mod common;

use bytes::Bytes;
use common::node::{local_config, post_task, start_node};
use futures_util::{SinkExt, StreamExt};
use iicp_client::node::{TaskAuthMode, handler_fn};
use iicp_client::transport::{
    Call, Close, CloseReason, Discover, Echo, Frame, FrameCodec, Init, Message, Response, kind,
};
use iicp_client::{NodeConfig, RunningNode, Secret};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";
/// Bound on every wait of this file, so a broken node fails a test instead of hanging it.
const SAFETY: Duration = Duration::from_secs(10);

async fn node_with(config: NodeConfig) -> RunningNode {
    start_node(
        config,
        handler_fn(|req, _ctx| async move {
            if req.payload["fail"] == json!(true) {
                return Err(iicp_client::HandlerError::new(
                    500,
                    "handler_error",
                    "asked to",
                ));
            }
            Ok(json!({"echo": req.payload["text"]}))
        }),
    )
    .await
}

async fn node() -> RunningNode {
    node_with(local_config()).await
}

/// A native connection to a node.
struct Native(Framed<TcpStream, FrameCodec>);

impl Native {
    async fn connect(addr: SocketAddr) -> Self {
        Self(Framed::new(
            TcpStream::connect(addr).await.unwrap(),
            FrameCodec::new(),
        ))
    }

    /// Connects and completes INIT/ACK; returns the ACK's version.
    async fn ready(addr: SocketAddr, token: Option<&str>) -> Self {
        let mut n = Self::connect(addr).await;
        let init = Init {
            node_token: token.map(Secret::new),
            ..Init::with_version(1)
        };
        n.send(init.to_frame()).await;
        match n.next().await {
            Some(Message::Ack(ack)) => assert_eq!(ack.version, Some(1)),
            other => panic!("expected ACK, got {other:?}"),
        }
        n
    }

    async fn send(&mut self, frame: Frame) {
        self.0.send(frame).await.unwrap();
    }

    /// The next message, or `None` when the node closed the socket.
    async fn next(&mut self) -> Option<Message> {
        let frame = tokio::time::timeout(SAFETY, self.0.next())
            .await
            .expect("the node answers in time")?
            .expect("a well-formed frame");
        Some(Message::from_frame(&frame).expect("a well-formed message"))
    }

    /// Expects a CLOSE with `reason`, then the end of the connection.
    async fn expect_close(&mut self, reason: CloseReason) {
        match self.next().await {
            Some(Message::Close(Close {
                reason: Some(r), ..
            })) => assert_eq!(r, reason),
            other => panic!("expected CLOSE {reason:?}, got {other:?}"),
        }
        assert!(
            self.next().await.is_none(),
            "the connection ends after CLOSE"
        );
    }

    async fn call(&mut self, call: Call) -> Response {
        self.send(call.to_frame()).await;
        match self.next().await {
            Some(Message::Response(r)) => r,
            other => panic!("expected RESPONSE, got {other:?}"),
        }
    }
}

fn call(payload: Value) -> Call {
    Call {
        session_id: Some("s-1".into()),
        intent: Some(CHAT.into()),
        payload,
        call_id: Some(uuid::Uuid::new_v4().to_string()),
        ..Default::default()
    }
}

/// `(status, code)` of a buffered error; its message reads `[code] text`.
fn refusal(response: &Response) -> (i64, String) {
    match response {
        Response::Error(e) => {
            let message = e.message.clone().unwrap_or_default();
            let code = message
                .strip_prefix('[')
                .and_then(|m| m.split(']').next())
                .unwrap_or_default()
                .to_owned();
            (e.code, code)
        }
        other => panic!("expected a buffered error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_handshakes_pings_discovers_and_calls_through_the_pipeline() {
    let node = node().await;
    let addr = node.local_addr();
    let mut n = Native::ready(addr, None).await;

    n.send(
        Echo {
            echo: Some(Bytes::from_static(b"abc")),
        }
        .ping(),
    )
    .await;
    match n.next().await {
        Some(Message::Pong(e)) => assert_eq!(e.echo.as_deref(), Some(&b"abc"[..])),
        other => panic!("expected PONG, got {other:?}"),
    }

    let discover = Discover::Session {
        session_id: Some("d-1".into()),
        intent: Some(CHAT.into()),
    };
    n.send(discover.to_frame()).await;
    match n.next().await {
        Some(Message::Response(Response::Discover(d))) => {
            assert_eq!(d.nodes.len(), 1);
            assert_eq!(
                d.nodes[0]["transport_endpoint"],
                json!(format!("iicp://{addr}"))
            );
        }
        other => panic!("expected a DISCOVER reply, got {other:?}"),
    }

    // Buffered: the result, matched by call id.
    let c = call(json!({"text": "hi"}));
    match n.call(c.clone()).await {
        Response::Buffered(b) => {
            assert_eq!(b.call_id, c.call_id);
            assert_eq!(b.result, Some(json!({"echo": "hi"})));
        }
        other => panic!("expected a buffered result, got {other:?}"),
    }
    // Streaming (key 24): the lifecycle layout, final step completed.
    let streamed = Call {
        task_id: Some("task-native-1".into()),
        ..call(json!({"text": "streamed"}))
    };
    match n.call(streamed).await {
        Response::Spec(s) => {
            let l = s.lifecycle.expect("lifecycle");
            assert_eq!(
                (l.task_id.as_deref(), l.is_final),
                (Some("task-native-1"), true)
            );
            assert_eq!(l.event.as_str(), "completed");
            assert_eq!(s.result, Some(json!({"echo": "streamed"})));
        }
        other => panic!("expected a lifecycle response, got {other:?}"),
    }

    // The pipeline's refusals and failures, with HTTP's status and code.
    let cases: [(Call, i64, &str); 4] = [
        (
            Call {
                intent: Some("urn:iicp:intent:x.none:nothing:v1".into()),
                ..call(json!({}))
            },
            422,
            "unknown_intent",
        ),
        (
            Call {
                intent: Some("not a urn".into()),
                ..call(json!({}))
            },
            422,
            "validation_error",
        ),
        (
            Call {
                task_id: None,
                idempotency_key: Some("bad id\n".into()),
                ..call(json!({}))
            },
            422,
            "validation_error",
        ),
        (call(json!({"fail": true})), 500, "handler_error"),
    ];
    for (c, status, code) in cases {
        let (s, k) = refusal(&n.call(c).await);
        assert_eq!((s, k.as_str()), (status, code));
    }
    // A replayed idempotency key is refused as a replayed nonce is.
    let once = Call {
        idempotency_key: Some("idem-1".into()),
        ..call(json!({"text": "a"}))
    };
    assert!(matches!(n.call(once.clone()).await, Response::Buffered(_)));
    assert_eq!(refusal(&n.call(once).await), (409, "IICP-E011".into()));

    // HTTP on the same port is untouched.
    let posted = post_task(
        &format!("http://{addr}"),
        &json!({"task_id": uuid::Uuid::new_v4().to_string(), "intent": CHAT, "payload": {"text": "http"}}),
        &[],
    )
    .await;
    assert_eq!(posted.body["result"], json!({"echo": "http"}));
    node.shutdown().await;
}

#[tokio::test]
async fn token_mode_takes_the_token_from_init_or_call_and_refuses_without() {
    let node = node_with(NodeConfig {
        task_auth: TaskAuthMode::Token,
        node_token: Some("operator-token".into()),
        ..local_config()
    })
    .await;
    let addr = node.local_addr();
    let mut anonymous = Native::ready(addr, None).await;
    assert_eq!(
        refusal(&anonymous.call(call(json!({}))).await),
        (401, "unauthorized".into())
    );
    let with_call_token = Call {
        auth_token: Some(Secret::new("operator-token")),
        ..call(json!({"text": "k11"}))
    };
    assert!(matches!(
        anonymous.call(with_call_token).await,
        Response::Buffered(_)
    ));
    let mut wrong = Native::ready(addr, Some("guessed")).await;
    assert_eq!(
        refusal(&wrong.call(call(json!({}))).await),
        (401, "unauthorized".into())
    );
    let mut session = Native::ready(addr, Some("operator-token")).await;
    assert!(matches!(
        session.call(call(json!({"text": "init"}))).await,
        Response::Buffered(_)
    ));
    node.shutdown().await;
}

/// A frame as bytes on the wire.
fn frame_bytes(frame: Frame) -> Vec<u8> {
    use tokio_util::codec::Encoder;
    let mut buf = bytes::BytesMut::new();
    FrameCodec::new().encode(frame, &mut buf).unwrap();
    buf.to_vec()
}

/// Raw bytes after a valid opening, for the cases the codec must refuse.
fn header(kind: u8, len: u32) -> Vec<u8> {
    let mut h = b"IICP".to_vec();
    h.extend_from_slice(&[1, kind, 0, 0]);
    h.extend_from_slice(&len.to_be_bytes());
    h
}

#[tokio::test]
async fn hostile_sessions_end_with_a_close_naming_the_reason() {
    let node = node().await;
    let addr = node.local_addr();

    // CALL before INIT.
    let mut n = Native::connect(addr).await;
    n.send(call(json!({})).to_frame()).await;
    n.expect_close(CloseReason::ProtocolError).await;

    // No common version.
    let mut n = Native::connect(addr).await;
    n.send(
        Init {
            version: Some(9),
            min_version: Some(9),
            ..Default::default()
        }
        .to_frame(),
    )
    .await;
    n.expect_close(CloseReason::VersionMismatch).await;

    type Case = (&'static str, Vec<u8>, CloseReason);
    let cases: Vec<Case> = vec![
        (
            "a length over the maximum",
            header(kind::CALL, u32::MAX),
            CloseReason::FrameTooLarge,
        ),
        (
            "bad magic on a later frame",
            b"XICP\x01\x09\x00\x00\x00\x00\x00\x00".to_vec(),
            CloseReason::InvalidMagic,
        ),
        (
            "garbage CBOR",
            [header(kind::CALL, 3), vec![0xff, 0x00, 0x13]].concat(),
            CloseReason::ProtocolError,
        ),
        (
            "a CBOR array where a map belongs",
            [header(kind::CALL, 2), vec![0x81, 0x01]].concat(),
            CloseReason::ProtocolError,
        ),
        (
            "a wrong type in a known key",
            [header(kind::CALL, 3), vec![0xa1, 0x03, 0x01]].concat(),
            CloseReason::ProtocolError,
        ),
        (
            "an unknown frame type",
            header(0x42, 0),
            CloseReason::UnknownType,
        ),
    ];
    for (what, bytes, reason) in cases {
        let mut n = Native::ready(addr, None).await;
        n.0.get_mut().write_all(&bytes).await.unwrap();
        match n.next().await {
            Some(Message::Close(Close {
                reason: Some(r), ..
            })) => assert_eq!(r, reason, "{what}"),
            other => panic!("{what}: expected CLOSE {reason:?}, got {other:?}"),
        }
    }

    // A peer that stops mid-frame and goes away: the node carries on.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(&frame_bytes(Init::with_version(1).to_frame()))
        .await
        .unwrap();
    raw.write_all(&header(kind::CALL, 1000)[..]).await.unwrap();
    raw.write_all(&[0xa1; 10]).await.unwrap();
    drop(raw);

    // After all of that the node still serves both transports.
    let mut n = Native::ready(addr, None).await;
    assert!(matches!(
        n.call(call(json!({"text": "still"}))).await,
        Response::Buffered(_)
    ));
    let posted = post_task(
        &format!("http://{addr}"),
        &json!({"task_id": uuid::Uuid::new_v4().to_string(), "intent": CHAT, "payload": {"text": "x"}}),
        &[],
    )
    .await;
    assert_eq!(posted.status, 200);
    node.shutdown().await;
}

#[tokio::test]
async fn with_native_off_the_magic_is_answered_as_http() {
    let node = node_with(NodeConfig {
        native_transport: false,
        ..local_config()
    })
    .await;
    // Native off: the magic reaches HTTP, which refuses it and closes.
    let mut raw = TcpStream::connect(node.local_addr()).await.unwrap();
    raw.write_all(&frame_bytes(Init::with_version(1).to_frame()))
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(SAFETY, raw.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .unwrap();
    assert!(!answer.starts_with(b"IICP"), "no native answer: {answer:?}");
    node.shutdown().await;
}
