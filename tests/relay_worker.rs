//! The relay worker against a scripted relay (FrameCodec over a loopback
//! TcpListener, written here from the relay contract) and our directory
//! in-process: it binds, registers the turn_relay endpoint, answers CALLs
//! with its real handler's output per the contract, survives bad input,
//! reconnects, re-elects, fetches and sends bind tickets, never sends its
//! token to the relay, and closes gracefully after deregistering.
#![cfg(feature = "iicp-tcp")]

mod common;

use ciborium::Value as Cbor;
use common::{CHAT, Harness};
use futures_util::{SinkExt, StreamExt};
use iicp_client::node::handler_fn;
use iicp_client::transport::{
    Ack, Call, Close, CloseReason, Echo, Frame, FrameCodec, Message, RelayAck, RelayBind, kind,
};
use iicp_client::{IicpNode, NodeConfig, RunningNode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(30);

/// A relay's accept port, scripted by the test.
struct ScriptedRelay {
    listener: TcpListener,
    port: u16,
}

impl ScriptedRelay {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Self { listener, port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn accept(&self) -> Conn {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the worker dials the relay in time")
            .unwrap();
        Conn {
            framed: Framed::new(stream, FrameCodec::new()),
            received: Vec::new(),
        }
    }
}

/// One worker connection at the scripted relay; keeps every payload it
/// received (to check no token went by).
struct Conn {
    framed: Framed<TcpStream, FrameCodec>,
    received: Vec<Vec<u8>>,
}

impl Conn {
    async fn recv(&mut self) -> Frame {
        let frame = tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("a frame from the worker in time")
            .expect("the worker keeps the connection")
            .expect("a well-formed frame");
        self.received.push(frame.payload.to_vec());
        frame
    }

    /// The next frame that is not a PING (answered) or PONG.
    async fn recv_skipping_pings(&mut self) -> Frame {
        loop {
            let frame = self.recv().await;
            match frame.kind {
                kind::PING => {
                    let echo = Echo::decode(&frame.payload).unwrap_or_default();
                    self.send(echo.pong()).await;
                }
                kind::PONG => {}
                _ => return frame,
            }
        }
    }

    async fn send(&mut self, frame: Frame) {
        self.framed.send(frame).await.expect("frame sent");
    }

    /// INIT → ACK, RELAY_BIND → `answer(bind)`; returns the bind.
    async fn handshake_with(&mut self, answer: impl FnOnce(&RelayBind) -> RelayAck) -> RelayBind {
        let init = self.recv().await;
        assert_eq!(init.kind, kind::INIT, "the worker opens with INIT");
        let Message::Init(init) = Message::from_frame(&init).unwrap() else {
            unreachable!()
        };
        assert_eq!(init.version, Some(1));
        assert!(
            init.node_token.is_none(),
            "INIT never carries the node token"
        );
        self.send(
            Ack {
                version: Some(1),
                node_id: Some("relay-node".into()),
            }
            .to_frame(),
        )
        .await;
        let bind = self.recv().await;
        assert_eq!(bind.kind, kind::RELAY_BIND);
        let bind = RelayBind::decode(&bind.payload).unwrap();
        let ack = answer(&bind);
        self.send(ack.to_frame()).await;
        bind
    }

    async fn handshake(&mut self, http_port: u16) -> RelayBind {
        self.handshake_with(|b| RelayAck::ok(b.worker_id.as_deref().unwrap(), http_port))
            .await
    }

    /// Sends CALL `{15 call_id, 5 key5, 6 30 s, 11 bearer?}` and returns the
    /// RESPONSE as (key 100, key 5 as JSON).
    async fn call_raw(
        &mut self,
        call_id: &str,
        key5: Vec<u8>,
        bearer: Option<&str>,
    ) -> (Option<u64>, Value) {
        let mut entries = vec![
            (Cbor::from(5), Cbor::Bytes(key5)),
            (Cbor::from(6), Cbor::from(30)),
        ];
        if let Some(b) = bearer {
            entries.push((Cbor::from(11), Cbor::Text(b.into())));
        }
        entries.push((Cbor::from(15), Cbor::Text(call_id.into())));
        let mut payload = Vec::new();
        ciborium::into_writer(&Cbor::Map(entries), &mut payload).unwrap();
        self.send(Frame::new(kind::CALL, payload)).await;
        let frame = self.recv_skipping_pings().await;
        assert_eq!(frame.kind, kind::RESPONSE);
        read_response(&frame, call_id)
    }

    async fn call(&mut self, call_id: &str, envelope: &Value) -> (Option<u64>, Value) {
        self.call_raw(call_id, serde_json::to_vec(envelope).unwrap(), None)
            .await
    }

    fn saw(&self, needle: &str) -> bool {
        self.received
            .iter()
            .any(|p| p.windows(needle.len()).any(|w| w == needle.as_bytes()))
    }
}

/// A RESPONSE per the contract: key 15 the call id, key 5 JSON bytes, key
/// 100 the status when not 200.
fn read_response(frame: &Frame, call_id: &str) -> (Option<u64>, Value) {
    let Cbor::Map(entries) = ciborium::from_reader::<Cbor, _>(&frame.payload[..]).unwrap() else {
        panic!("RESPONSE is not a map")
    };
    let get = |k: i64| {
        entries
            .iter()
            .find(|(key, _)| key.as_integer() == Some(k.into()))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get(15),
        Some(Cbor::Text(call_id.into())),
        "key 15 echoes the call id"
    );
    let Some(Cbor::Bytes(body)) = get(5) else {
        panic!("key 5 is a byte string")
    };
    let status = get(100).map(|v| u64::try_from(v.as_integer().unwrap()).unwrap());
    (
        status,
        serde_json::from_slice(&body).expect("key 5 is JSON"),
    )
}

fn task(task_id: &str, intent: &str, payload: Value) -> Value {
    json!({"task_id": task_id, "intent": intent, "payload": payload})
}

async fn directory() -> Harness {
    Harness::start(iicp_client::directory::DirectoryConfig::default()).await
}

fn worker_config(dir: &Harness, relay: &str) -> NodeConfig {
    let mut config = NodeConfig {
        models: vec!["m".into()],
        relay_worker_endpoint: Some(relay.into()),
        ..NodeConfig::local(dir.base.clone())
    };
    config.reachability.auto_detect = false;
    config
}

async fn start_worker(config: NodeConfig) -> RunningNode {
    IicpNode::new(config)
        .start(handler_fn(|req, ctx| async move {
            Ok(json!({"echo": req.payload, "served_by": ctx.node_id}))
        }))
        .await
        .expect("the node starts")
}

/// The node as the directory's discover lists it (waits for it to appear
/// with `endpoint`).
async fn listed_with(dir: &Harness, node_id: &str, endpoint: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, body) = dir
            .get(&format!("/v1/discover?intent={CHAT}&limit=50"))
            .await;
        let found = body["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["node_id"] == node_id && n["endpoint"] == endpoint)
            .cloned();
        if let Some(node) = found {
            return node;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the directory never listed {node_id} at {endpoint}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn relay_endpoint(http_port: u16, id: &str) -> String {
    format!("http://127.0.0.1:{http_port}/v1/relay-for/{id}")
}

#[tokio::test]
async fn binds_registers_through_the_relay_and_answers_calls_with_its_handler() {
    let dir = directory().await;
    let relay = ScriptedRelay::start().await;
    let node = start_worker(worker_config(&dir, &relay.addr())).await;
    let id = node.node_id().expect("a worker chooses its id at start");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let mut conn = relay.accept().await;
    let bind = conn.handshake(18_123).await;
    assert_eq!(bind.worker_id.as_deref(), Some(id.as_str()));
    assert_eq!(bind.intent.as_deref(), Some(CHAT));
    assert_eq!(bind.models, ["m"]);
    assert!(bind.bind_ticket.is_none(), "no token yet, so no ticket");
    assert_eq!(node.relay_within(WAIT).await, Some(relay.addr()));

    assert_eq!(node.registered_within(WAIT).await.unwrap(), id);
    let listed = listed_with(&dir, &id, &relay_endpoint(18_123, &id)).await;
    assert_eq!(listed["transport_method"], "turn_relay");
    assert_eq!(listed["transport_metadata"]["relay_for"], id.as_str());
    assert_eq!(listed["transport_metadata"]["relay_host"], "127.0.0.1");
    assert_eq!(listed["transport_metadata"]["relay_port"], 18_123);
    assert!(
        listed.get("transport_endpoint").is_none_or(Value::is_null),
        "{listed}"
    );

    // A task: the handler's own answer, as a complete task response.
    let (status, body) = conn.call("c-1", &task("t-1", CHAT, json!({"x": 1}))).await;
    assert_eq!(status, None, "200 carries no key 100: {body}");
    assert_eq!(body["task_id"], "t-1");
    assert_eq!(body["status"], "success");
    assert_eq!(body["result"]["echo"], json!({"x": 1}));
    assert_eq!(body["result"]["served_by"], id.as_str());

    // Key 5 not JSON: 400 in band, and the session goes on.
    let (status, body) = conn.call_raw("c-2", b"{oops".to_vec(), None).await;
    assert_eq!(status, Some(400), "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"]["code"], "validation_error");
    // A task for an intent it does not serve.
    let (status, body) = conn
        .call(
            "c-3",
            &task("t-3", "urn:iicp:intent:llm:embedding:v1", json!({})),
        )
        .await;
    assert_eq!(status, Some(422), "{body}");
    assert_eq!(body["error"]["code"], "unknown_intent");
    assert_eq!(body["task_id"], "t-3");
    // Not a task at all.
    let (status, body) = conn.call("c-4", &json!({"payload": {}})).await;
    assert_eq!(status, Some(422), "{body}");
    // The replay guard of the one pipeline: the same task id again.
    let (status, body) = conn.call("c-5", &task("t-1", CHAT, json!({"x": 1}))).await;
    assert_eq!(status, Some(409), "{body}");
    // A PING is answered, and tasks still run.
    conn.send(
        Echo {
            echo: Some(b"hi".to_vec().into()),
        }
        .ping(),
    )
    .await;
    let pong = conn.recv().await;
    assert_eq!(pong.kind, kind::PONG);
    assert_eq!(
        Echo::decode(&pong.payload).unwrap().echo.unwrap().as_ref(),
        b"hi"
    );
    let (status, body) = conn.call("c-6", &task("t-6", CHAT, json!("again"))).await;
    assert_eq!((status, &body["result"]["echo"]), (None, &json!("again")));

    // Many calls in flight at once, answered by call id.
    for i in 0..8 {
        let call = Call {
            call_id: Some(format!("m-{i}")),
            payload: task(&format!("tm-{i}"), CHAT, json!(i)),
            ..Call::default()
        };
        conn.send(call.to_frame()).await;
    }
    let mut answered = Vec::new();
    for _ in 0..8 {
        let frame = conn.recv_skipping_pings().await;
        let Cbor::Map(entries) = ciborium::from_reader::<Cbor, _>(&frame.payload[..]).unwrap()
        else {
            panic!()
        };
        let id = entries
            .iter()
            .find(|(k, _)| k.as_integer() == Some(15.into()))
            .and_then(|(_, v)| v.as_text().map(str::to_owned))
            .unwrap();
        answered.push(id);
    }
    answered.sort();
    assert_eq!(
        answered,
        (0..8).map(|i| format!("m-{i}")).collect::<Vec<_>>()
    );

    let token = node.node_token().expect("registered");
    assert!(
        !conn.saw(token.expose()),
        "the node token never goes to the relay"
    );

    // Shutdown: deregistered first, then CLOSE graceful.
    let shutdown = tokio::spawn(node.shutdown());
    let close = conn.recv_skipping_pings().await;
    assert_eq!(close.kind, kind::CLOSE);
    let Message::Close(close) = Message::from_frame(&close).unwrap() else {
        unreachable!()
    };
    assert_eq!(close.reason, Some(CloseReason::Graceful));
    let ids = dir.discover_ids(&format!("intent={CHAT}")).await;
    assert!(
        !ids.contains(&id),
        "deregistered before the session closed: {ids:?}"
    );
    shutdown.await.unwrap();
}

#[tokio::test]
async fn reconnects_after_a_drop_and_binds_with_a_ticket_once_it_holds_a_token() {
    let dir = directory().await;
    let relay = ScriptedRelay::start().await;
    let node = start_worker(worker_config(&dir, &relay.addr())).await;
    let id = node.node_id().unwrap();
    let mut conn = relay.accept().await;
    conn.handshake(18_200).await;
    node.registered_within(WAIT).await.unwrap();
    assert_eq!(node.relay_within(WAIT).await, Some(relay.addr()));

    // The relay drops the worker: it notices and dials again (after 2 s).
    drop(conn);
    let mut conn = relay.accept().await;
    let bind = conn.handshake(18_201).await;
    let ticket = bind
        .bind_ticket
        .expect("a registered node binds with a ticket");
    let claims = dir
        .dir
        .public_key()
        .unwrap()
        .verify_relay_ticket(ticket.expose())
        .expect("the directory signed it");
    assert_eq!(claims.sub, id);
    assert_eq!(claims.aud, "*", "a named relay has no known node id");
    assert_eq!(node.relay_within(WAIT).await, Some(relay.addr()));
    // The new HTTP port is registered.
    listed_with(&dir, &id, &relay_endpoint(18_201, &id)).await;
    let (status, body) = conn.call("c-1", &task("t-1", CHAT, json!("after"))).await;
    assert_eq!((status, &body["result"]["echo"]), (None, &json!("after")));
    let token = node.node_token().unwrap();
    assert!(!conn.saw(token.expose()));
    node.shutdown().await;
}

#[tokio::test]
async fn a_relay_that_wants_a_ticket_gets_one_after_the_node_registers_through_it() {
    let dir = directory().await;
    let relay = ScriptedRelay::start().await;
    let node = start_worker(worker_config(&dir, &relay.addr())).await;
    let id = node.node_id().unwrap();
    let mut conn = relay.accept().await;
    let first = conn
        .handshake_with(|b| {
            RelayAck::error(
                b.worker_id.as_deref().unwrap(),
                "relay bind ticket required",
            )
        })
        .await;
    assert!(first.bind_ticket.is_none());
    // Registered first, through the relay (its HTTP port unknown: 9484),
    // without a probe of the relay endpoint.
    node.registered_within(WAIT).await.unwrap();
    listed_with(&dir, &id, &relay_endpoint(9484, &id)).await;
    // Then the ticket, and the bind at once.
    let mut conn = relay.accept().await;
    let bind = conn.handshake(18_300).await;
    let ticket = bind.bind_ticket.expect("the second bind carries a ticket");
    let claims = dir
        .dir
        .public_key()
        .unwrap()
        .verify_relay_ticket(ticket.expose())
        .unwrap();
    assert_eq!(claims.sub, id);
    listed_with(&dir, &id, &relay_endpoint(18_300, &id)).await;
    assert!(!conn.saw(node.node_token().unwrap().expose()));
    node.shutdown().await;
}

#[tokio::test]
async fn bad_input_from_the_relay_ends_the_session_or_is_answered_never_crashes_the_worker() {
    let dir = directory().await;
    let relay = ScriptedRelay::start().await;
    let node = start_worker(worker_config(&dir, &relay.addr())).await;

    // A refused bind: retried after the backoff.
    let mut conn = relay.accept().await;
    conn.handshake_with(|b| {
        RelayAck::error(b.worker_id.as_deref().unwrap(), "relay at session capacity")
    })
    .await;
    // Garbage instead of an ACK.
    let mut conn2 = relay.accept().await;
    let _init = conn2.recv().await;
    conn2
        .framed
        .get_mut()
        .try_write(b"this is not a frame at all\r\n\r\n")
        .unwrap();
    // Then a bind that works, and garbage frames after it.
    let mut conn3 = relay.accept().await;
    conn3.handshake(18_400).await;
    assert_eq!(node.relay_within(WAIT).await, Some(relay.addr()));
    // A frame of an unknown type and a stray RELAY_ACK are ignored.
    conn3.send(Frame::new(0x42, vec![0xa0])).await;
    conn3.send(RelayAck::ok("x", 1).to_frame()).await;
    // A CALL that is not CBOR and has no call id: ignored.
    conn3
        .send(Frame::new(kind::CALL, b"\xff\xff".to_vec()))
        .await;
    let (status, body) = conn3.call("c-1", &task("t-1", CHAT, json!(1))).await;
    assert_eq!((status, &body["status"]), (None, &json!("success")));
    // Raw garbage bytes: the stream cannot be trusted; the worker drops it
    // and dials again.
    conn3
        .framed
        .get_mut()
        .try_write(b"GARBAGE GARBAGE GARBAGE")
        .unwrap();
    let mut conn4 = relay.accept().await;
    conn4.handshake(18_401).await;
    let (status, _) = conn4.call("c-2", &task("t-2", CHAT, json!(2))).await;
    assert_eq!(status, None);
    // A CLOSE from the relay: it dials again too.
    conn4
        .send(Close::new(CloseReason::Other("relay restarting".into()), "bye").to_frame())
        .await;
    let mut conn5 = relay.accept().await;
    conn5.handshake(18_402).await;
    let (status, _) = conn5.call("c-3", &task("t-3", CHAT, json!(3))).await;
    assert_eq!(status, None);
    node.shutdown().await;
    drop((conn, conn2));
}

/// Registers a scripted relay in the directory as a relay-capable node and
/// makes it discoverable (a heartbeat).
async fn register_relay(dir: &Harness, relay: &ScriptedRelay, http_port: u16, load: f64) -> String {
    let mut body = common::registration(&format!("http://127.0.0.1:{http_port}"), &["relay-model"]);
    body["relay_capable"] = json!(true);
    body["relay_accept_port"] = json!(relay.port);
    let ack = dir.register(&body).await;
    let (status, pong) = dir.heartbeat(&ack, json!({"load": load})).await;
    assert_eq!(status, 200, "{pong}");
    ack["node_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn after_three_failed_attempts_it_elects_another_relay_and_registers_through_it() {
    let dir = directory().await;
    let a = ScriptedRelay::start().await;
    let b = ScriptedRelay::start().await;
    register_relay(&dir, &a, 18_501, 0.0).await;
    let b_id = register_relay(&dir, &b, 18_502, 0.5).await;
    let node = start_worker(worker_config(&dir, &a.addr())).await;
    let id = node.node_id().unwrap();

    let mut conn = a.accept().await;
    conn.handshake(18_501).await;
    node.registered_within(WAIT).await.unwrap();
    listed_with(&dir, &id, &relay_endpoint(18_501, &id)).await;
    // Relay A goes away for good.
    drop(conn);
    drop(a);
    // 3 failed dials (2 + 4 + 8 s apart), then B is elected.
    let mut conn = tokio::time::timeout(Duration::from_secs(40), b.accept())
        .await
        .expect("the worker elects relay B");
    let bind = conn.handshake(18_502).await;
    let claims = dir
        .dir
        .public_key()
        .unwrap()
        .verify_relay_ticket(bind.bind_ticket.expect("with a ticket").expose())
        .unwrap();
    assert_eq!(claims.aud, b_id, "the ticket names the elected relay");
    assert_eq!(node.relay_within(WAIT).await, Some(b.addr()));
    listed_with(&dir, &id, &relay_endpoint(18_502, &id)).await;
    let (status, body) = conn.call("c-1", &task("t-1", CHAT, json!("via b"))).await;
    assert_eq!((status, &body["result"]["echo"]), (None, &json!("via b")));
    node.shutdown().await;
}

#[tokio::test]
async fn the_node_is_not_a_worker_unless_asked_or_unreachable_and_a_relay_never_is() {
    let dir = directory().await;
    let relay = ScriptedRelay::start().await;
    // A relay-capable node ignores relay_worker_endpoint.
    let config = NodeConfig {
        relay_capable: true,
        ..worker_config(&dir, &relay.addr())
    };
    let node = start_worker(config).await;
    node.registered_within(WAIT).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), relay.listener.accept())
            .await
            .is_err(),
        "a relay never dials a relay"
    );
    assert_eq!(node.relay(), None);
    node.shutdown().await;
    // A malformed relay endpoint is refused at start.
    for bad in ["http://relay:9485", "relay:0", "2001:db8::1:9485", ""] {
        let err = IicpNode::new(worker_config(&dir, bad))
            .start(handler_fn(|_r, _c| async { Ok(json!({})) }))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("relay_worker_endpoint"),
            "{bad}: {err}"
        );
    }
}
