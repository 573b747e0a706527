//! A task over the native transport, the way the node suites send it: one
//! connection per task (INIT, one CALL, the node's answer), with the task's
//! JSON and the HTTP-named headers mapped to CALL keys, and the answer
//! rendered as a [`Reply`] from what the wire carries, nothing added.
//!
//! Mapping (PROTOCOL.md §7.1, docs/INTEROP.md):
//! - `intent` → key 3; `payload` → key 5 (UTF-8 JSON bytes), with
//!   `iicp_conf` and `cx_response_encryption` inside it as the node reads
//!   them, and `task_id` beside `iicp_conf` on a buffered CALL (a sealed
//!   task's AAD binds it);
//! - `task_id` → key 24 on a lifecycle CALL (a fresh id when the task has
//!   none, as the key is what asks for the lifecycle); a buffered CALL has
//!   no key for it;
//! - `nonce` → key 16; `constraints.timeout_ms` → key 6 (seconds);
//!   `constraints.qos` → key 18; `auth.node_token` / `auth.token` → key 11;
//! - `authorization: Bearer X` → INIT key 4; `x-iicp-consumer-token` →
//!   key 11; `traceparent` → key 13 (its trace id);
//! - [`Body::Raw`] bytes → key 5 as they are.
//!
//! Anything else in a task or a header panics: a case must not lose a
//! field silently.

use super::node::{Body, Reply};
use futures_util::{SinkExt, StreamExt};
use iicp_client::Secret;
use iicp_client::transport::{
    BufferedError, Call, Frame, FrameCodec, Init, Message, Response, SpecResponse, kind,
};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Longest wait for the node's answer; a hang fails the case (no timing is
/// asserted: the slowest case here waits for a 200 ms task deadline).
const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Task fields a CALL has a place for.
const TASK_FIELDS: [&str; 8] = [
    "task_id",
    "intent",
    "payload",
    "nonce",
    "constraints",
    "auth",
    "iicp_conf",
    "cx_response_encryption",
];

/// Sends `task` with `headers` as one CALL, with key 24 when `lifecycle`,
/// and reads the node's final answer (or its CLOSE).
pub async fn send(
    addr: SocketAddr,
    task: Body,
    headers: &[(&str, &str)],
    lifecycle: bool,
) -> Reply {
    let mut init = Init::with_version(1);
    let mut call = Call {
        call_id: Some(uuid::Uuid::new_v4().to_string()),
        session_id: Some("suite".into()),
        ..Default::default()
    };
    let mut raw_payload = None;
    match task {
        Body::Json(task) => fill_call(&mut call, &task, lifecycle),
        Body::Raw { bytes, .. } => raw_payload = Some(bytes),
    }
    if lifecycle && call.task_id.is_none() {
        call.task_id = Some(uuid::Uuid::new_v4().to_string());
    }
    for (name, value) in headers {
        match name.to_ascii_lowercase().as_str() {
            "authorization" => {
                let token = value.strip_prefix("Bearer ").expect("a Bearer credential");
                init.node_token = Some(Secret::new(token));
            }
            "x-iicp-consumer-token" => set_auth_token(&mut call, value),
            "traceparent" => call.trace_id = Some(trace_id(value)),
            other => panic!("header `{other}` has no native field"),
        }
    }
    let frame = match raw_payload {
        None => call.to_frame(),
        Some(bytes) => with_raw_payload(&call, bytes),
    };
    exchange(addr, init, frame).await
}

/// Sets the CALL's keys from a task in its HTTP JSON form.
fn fill_call(call: &mut Call, task: &Value, lifecycle: bool) {
    let fields = task.as_object().expect("a task is a JSON object");
    for name in fields.keys() {
        assert!(
            TASK_FIELDS.contains(&name.as_str()),
            "task field `{name}` has no native key"
        );
    }
    let text = |v: &Value, what: &str| -> String {
        v.as_str()
            .unwrap_or_else(|| panic!("{what} must be text to go native: {v}"))
            .to_owned()
    };
    call.intent = task.get("intent").map(|v| text(v, "intent"));
    if lifecycle {
        call.task_id = task.get("task_id").map(|v| text(v, "task_id"));
    }
    call.idempotency_key = task.get("nonce").map(|v| text(v, "nonce"));
    if let Some(constraints) = task.get("constraints") {
        for (name, value) in constraints.as_object().expect("constraints object") {
            match name.as_str() {
                "timeout_ms" => {
                    call.timeout = Some(Duration::from_millis(value.as_u64().expect("ms")));
                }
                "qos" => call.qos = Some(text(value, "qos")),
                other => panic!("constraint `{other}` has no native key"),
            }
        }
    }
    if let Some(auth) = task.get("auth") {
        let token = auth
            .get("node_token")
            .or_else(|| auth.get("token"))
            .expect("auth.node_token or auth.token");
        set_auth_token(call, &text(token, "auth token"));
    }
    let mut payload = task.get("payload").cloned().unwrap_or(Value::Null);
    let envelope: Map<String, Value> = ["iicp_conf", "cx_response_encryption"]
        .into_iter()
        .filter_map(|k| task.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect();
    if !envelope.is_empty() {
        let mut wrapper = match payload {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => panic!("a payload beside CX fields must be an object: {other}"),
        };
        if envelope.contains_key("iicp_conf") && !lifecycle {
            if let Some(id) = task.get("task_id") {
                wrapper.insert("task_id".into(), id.clone());
            }
        }
        wrapper.extend(envelope);
        payload = Value::Object(wrapper);
    }
    call.payload = payload;
}

fn set_auth_token(call: &mut Call, token: &str) {
    assert!(
        call.auth_token.is_none(),
        "CALL key 11 holds one credential: a case sends one"
    );
    call.auth_token = Some(Secret::new(token));
}

/// The 16-byte trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn trace_id(traceparent: &str) -> [u8; 16] {
    let hex_id = traceparent.split('-').nth(1).expect("a traceparent");
    hex::decode(hex_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .expect("a 32-hex-digit trace id")
}

/// The CALL with key 5 replaced by `bytes` as they are.
fn with_raw_payload(call: &Call, bytes: Vec<u8>) -> Frame {
    let encoded = call.to_frame().payload;
    let ciborium::Value::Map(mut entries) =
        ciborium::from_reader::<ciborium::Value, _>(&encoded[..]).expect("our CALL decodes")
    else {
        panic!("a CALL is a map");
    };
    entries.retain(|(k, _)| k.as_integer() != Some(5.into()));
    entries.push((5.into(), ciborium::Value::Bytes(bytes)));
    // Deterministic order, as any encoder of ours writes it.
    entries.sort_by_key(|(k, _)| k.as_integer().map(i128::from).unwrap_or(i128::MAX));
    let mut payload = Vec::new();
    ciborium::into_writer(&ciborium::Value::Map(entries), &mut payload).unwrap();
    Frame::new(kind::CALL, payload)
}

/// Handshakes, sends `call` and reads until its final answer or a CLOSE.
async fn exchange(addr: SocketAddr, init: Init, call: Frame) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("the node accepts");
    let mut framed = Framed::new(stream, FrameCodec::new());
    framed.send(init.to_frame()).await.expect("INIT sent");
    let ack = next_message(&mut framed).await;
    assert!(matches!(ack, Some((Message::Ack(_), _))), "no ACK: {ack:?}");
    framed.send(call).await.expect("CALL sent");
    let mut text = String::new();
    let reply = tokio::time::timeout(ANSWER_WAIT, async {
        loop {
            let Some((message, raw)) = next_message(&mut framed).await else {
                return closed(None);
            };
            text.push_str(&raw);
            match message {
                Message::Response(r) if r.is_final() => return answer(r),
                Message::Response(_) | Message::Pong(_) => {}
                Message::Close(c) => return closed(c.reason.map(|r| r.to_string())),
                other => panic!("unexpected message from the node: {other:?}"),
            }
        }
    })
    .await
    .expect("the node answers the CALL");
    Reply { text, ..reply }
}

/// The next message and its payload as lossy UTF-8 text; `None` when the
/// node ends the connection.
async fn next_message(framed: &mut Framed<TcpStream, FrameCodec>) -> Option<(Message, String)> {
    let frame = framed.next().await?.expect("a well-formed frame");
    let message = Message::from_frame(&frame).expect("a well-formed message");
    Some((
        message,
        String::from_utf8_lossy(&frame.payload).into_owned(),
    ))
}

fn closed(reason: Option<String>) -> Reply {
    Reply {
        status: None,
        code: None,
        body: Value::Null,
        text: String::new(),
        retry_after_s: None,
        outcome: None,
        closed: Some(reason.unwrap_or_else(|| "connection ended".into())),
    }
}

/// The final RESPONSE as a [`Reply`], each field from the wire.
fn answer(response: Response) -> Reply {
    let (status, code, body, outcome) = match response {
        Response::Buffered(r) => {
            let result = r.result.unwrap_or(Value::Null);
            let body =
                sealed(&result).unwrap_or_else(|| json!({"status": "success", "result": result}));
            (Some(200), None, body, None)
        }
        Response::Error(e) => buffered_error(e),
        Response::Spec(r) => spec_answer(r),
        Response::Discover(d) => panic!("a DISCOVER answer to a CALL: {d:?}"),
    };
    Reply {
        status,
        code,
        body,
        text: String::new(),
        retry_after_s: None,
        outcome,
        closed: None,
    }
}

type Parts = (Option<u16>, Option<String>, Value, Option<String>);

/// `{100 status, 101 message, 6 {1 code, 2 message}}`: the code is read from
/// key 6 only (the structured error is what the suites check).
fn buffered_error(e: BufferedError) -> Parts {
    let status = u16::try_from(e.code).expect("key 100 is an HTTP status");
    let structured = e.error.unwrap_or_default();
    let body = json!({"error": {"code": structured.code, "message": structured.message}});
    (Some(status), structured.code, body, None)
}

/// A lifecycle step: no HTTP status; key 4 is the outcome.
fn spec_answer(r: SpecResponse) -> Parts {
    let code = r.error.as_ref().and_then(|e| e.code.clone());
    if let Some(body) = r.result.as_ref().and_then(sealed) {
        return (None, code, body, r.status);
    }
    let mut body = Map::new();
    if let Some(status) = &r.status {
        body.insert("status".into(), json!(status));
    }
    if let Some(id) = r.lifecycle.as_ref().and_then(|l| l.task_id.clone()) {
        body.insert("task_id".into(), json!(id));
    }
    if let Some(result) = r.result {
        body.insert("result".into(), result);
    }
    if let Some(e) = r.error {
        body.insert(
            "error".into(),
            json!({"code": e.code, "message": e.message}),
        );
    }
    let mut metrics = Map::new();
    for (name, value) in [
        ("latency_ms", r.duration_ms),
        ("tokens_used", r.tokens_used),
    ] {
        if let Some(v) = value {
            metrics.insert(name.into(), json!(v));
        }
    }
    if let Some(node) = r.node_id {
        metrics.insert("node_id".into(), json!(node));
    }
    if !metrics.is_empty() {
        body.insert("metrics".into(), Value::Object(metrics));
    }
    (None, code, Value::Object(body), r.status)
}

/// A sealed CX answer travels whole as the result (src/node/native.rs):
/// it is then the answer itself.
fn sealed(result: &Value) -> Option<Value> {
    (result["status"] == "encrypted" && result.get("iicp_conf_resp").is_some())
        .then(|| result.clone())
}

/// A `NativeClient` handshaken with `node` on its one port (panics when the
/// handshake fails).
pub async fn connect(node: &iicp_client::RunningNode) -> iicp_client::transport::NativeClient {
    iicp_client::transport::NativeClient::connect(
        &format!("iicp://{}", node.local_addr()),
        iicp_client::transport::NativeOptions::default(),
    )
    .await
    .expect("handshake")
}
