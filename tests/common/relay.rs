//! Relay helpers: a relay-capable node in-process ([`start_relay`]), a
//! hand-driven worker speaking frames over a `TcpStream` ([`HandWorker`]),
//! and a consumer's task through the relay ([`relay_for`],
//! [`RelayNode::consumer`] in the background, [`RelayNode::task`]).
//!
//! ```ignore
//! let relay = start_relay(|_| {}).await;
//! let mut worker = HandWorker::bound(relay.accept, "w-1").await;
//! let consumer = relay.consumer("w-1", json!({...}), vec![]);
//! let call = worker.next_call().await;
//! worker.answer_success(&call, json!(...)).await;
//! let (status, body) = consumer.await.unwrap();
//! ```

use super::node::local_config;
use futures_util::{SinkExt, StreamExt};
use iicp_client::transport::{
    Call, Close, Echo, Frame, FrameCodec, Init, Message, RelayAck, RelayBind,
};
use iicp_client::{NodeConfig, RunningNode, Secret};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Longest wait for any frame or answer: a hang fails the test.
pub const WAIT: Duration = Duration::from_secs(20);

/// A relay-capable node on loopback.
pub struct RelayNode {
    pub node: RunningNode,
    /// `http://127.0.0.1:PORT`: the node's HTTP port (consumers, long-poll).
    pub base: String,
    /// The accept port for workers.
    pub accept: SocketAddr,
}

impl RelayNode {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A consumer's `task` for `worker_id` through the relay, POSTed in the
    /// background with `headers` (see [`relay_for`]); await it for the
    /// status and body once the worker has answered.
    pub fn consumer(
        &self,
        worker_id: &str,
        task: Value,
        headers: Vec<(&'static str, String)>,
    ) -> tokio::task::JoinHandle<(u16, Value)> {
        let (base, worker_id) = (self.base.clone(), worker_id.to_owned());
        tokio::spawn(async move { relay_for(base, &worker_id, task, headers).await })
    }

    /// A consumer's `task` for `worker_id` through the relay, no headers:
    /// status and body.
    pub async fn task(&self, worker_id: &str, task: Value) -> (u16, Value) {
        relay_for(self.base.clone(), worker_id, task, vec![]).await
    }
}

/// Starts a relay-capable node on loopback (free ports, no registration;
/// its own `/v1/task` answers `{"relay_itself": true}`), after `tweak` has
/// adjusted its configuration.
pub async fn start_relay(tweak: impl FnOnce(&mut NodeConfig)) -> RelayNode {
    let mut config = NodeConfig {
        relay_capable: true,
        relay_accept_port: 0,
        ..local_config()
    };
    tweak(&mut config);
    let node = super::node::start_node(config, |_req: iicp_client::TaskRequest, _ctx| async {
        Ok(json!({"relay_itself": true}))
    })
    .await;
    let accept = node
        .relay_addr()
        .expect("a relay-capable node has an accept port");
    let base = format!("http://{}", node.local_addr());
    RelayNode { node, base, accept }
}

/// A worker driven frame by frame.
pub struct HandWorker {
    pub framed: Framed<TcpStream, FrameCodec>,
}

impl HandWorker {
    /// Connects to the accept port and says INIT (answered by ACK).
    pub async fn connect(accept: SocketAddr) -> Self {
        let stream = TcpStream::connect(accept)
            .await
            .expect("connect to the relay");
        let mut worker = Self {
            framed: Framed::new(stream, FrameCodec::new()),
        };
        worker.send(Init::with_version(1).to_frame()).await;
        match worker.next_message().await {
            Some(Message::Ack(_)) => worker,
            other => panic!("expected ACK, got {other:?}"),
        }
    }

    /// Connects and binds `worker_id`; panics unless the relay says ok.
    pub async fn bound(accept: SocketAddr, worker_id: &str) -> Self {
        let (worker, ack) = Self::try_bind(accept, worker_id, None).await;
        assert!(ack.is_ok(), "bind of {worker_id} refused: {ack:?}");
        worker
    }

    /// Connects and binds `worker_id` with `ticket`: the worker and the
    /// relay's RELAY_ACK, whatever it says.
    pub async fn try_bind(
        accept: SocketAddr,
        worker_id: &str,
        ticket: Option<&str>,
    ) -> (Self, RelayAck) {
        let mut worker = Self::connect(accept).await;
        let ack = worker.bind(worker_id, ticket).await;
        (worker, ack)
    }

    /// The reason a bind of `worker_id` (with `ticket`) on a new connection
    /// is refused with; `None` when it is accepted.
    pub async fn refusal(
        accept: SocketAddr,
        worker_id: &str,
        ticket: Option<&str>,
    ) -> Option<String> {
        Self::try_bind(accept, worker_id, ticket).await.1.reason
    }

    /// Binds `worker_id` on new connections every 50 ms until the relay
    /// takes it (within [`WAIT`]); each refusal on the way must give
    /// `meanwhile` as its reason when that is set.
    pub async fn bound_once_free(
        accept: SocketAddr,
        worker_id: &str,
        meanwhile: Option<&str>,
    ) -> Self {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (worker, ack) = Self::try_bind(accept, worker_id, None).await;
            if ack.is_ok() {
                return worker;
            }
            if let Some(reason) = meanwhile {
                assert_eq!(ack.reason.as_deref(), Some(reason));
            }
            assert!(tokio::time::Instant::now() < deadline, "{ack:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends RELAY_BIND and returns the RELAY_ACK.
    pub async fn bind(&mut self, worker_id: &str, ticket: Option<&str>) -> RelayAck {
        let bind = RelayBind {
            worker_id: Some(worker_id.into()),
            intent: Some("urn:iicp:intent:llm:chat:v1".into()),
            models: vec!["hand-model".into()],
            bind_ticket: ticket.map(Secret::new),
        };
        self.send(bind.to_frame()).await;
        self.ack().await
    }

    /// The next RELAY_ACK (panics on anything else).
    pub async fn ack(&mut self) -> RelayAck {
        match self.next_message().await {
            Some(Message::RelayAck(ack)) => ack,
            other => panic!("expected RELAY_ACK, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: Frame) {
        self.framed.send(frame).await.expect("send a frame");
    }

    /// The next frame; `None` when the relay closed the connection.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        match tokio::time::timeout(WAIT, self.framed.next()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(_) => None,
            Err(_) => panic!("no frame from the relay within {WAIT:?}"),
        }
    }

    /// The next frame as a message.
    pub async fn next_message(&mut self) -> Option<Message> {
        let frame = self.next_frame().await?;
        Some(Message::from_frame(&frame).expect("the relay sends well-formed frames"))
    }

    /// The next CALL; PINGs on the way are answered.
    pub async fn next_call(&mut self) -> Call {
        loop {
            match self.next_message().await {
                Some(Message::Call(call)) => return call,
                Some(Message::Ping(echo)) => self.send(echo.pong()).await,
                other => panic!("expected CALL, got {other:?}"),
            }
        }
    }

    /// The CLOSE the relay ends with (panics on anything else but PING).
    pub async fn close(&mut self) -> Option<Close> {
        loop {
            match self.next_message().await {
                Some(Message::Close(close)) => return Some(close),
                Some(Message::Ping(_)) => {}
                None => return None,
                other => panic!("expected CLOSE, got {other:?}"),
            }
        }
    }

    /// Answers `call` with a RESPONSE: key 15, key 5 the UTF-8 JSON of
    /// `body`, key 100 `status` when given (the relay contract).
    pub async fn answer(&mut self, call: &Call, body: Value, status: Option<u16>) {
        use ciborium::Value as C;
        let mut entries = vec![
            (
                C::from(15),
                C::from(call.call_id.clone().expect("a call id")),
            ),
            (C::from(5), C::Bytes(serde_json::to_vec(&body).unwrap())),
        ];
        if let Some(status) = status {
            entries.push((C::from(100), C::from(status)));
        }
        let mut payload = Vec::new();
        ciborium::into_writer(&C::Map(entries), &mut payload).unwrap();
        self.send(Frame::new(iicp_client::transport::kind::RESPONSE, payload))
            .await;
    }

    /// Answers `call` with `{"status": "success", "result": <result>}`.
    pub async fn answer_success(&mut self, call: &Call, result: Value) {
        self.answer(call, json!({"status": "success", "result": result}), None)
            .await;
    }

    /// Sends PING and waits for its PONG.
    pub async fn ping(&mut self) {
        let echo = Echo {
            echo: Some(bytes::Bytes::from_static(b"hi")),
        };
        self.send(echo.ping()).await;
        match self.next_message().await {
            Some(Message::Pong(pong)) => assert_eq!(pong, echo),
            other => panic!("expected PONG, got {other:?}"),
        }
    }

    /// Serves every CALL in the background with a complete answer naming
    /// `worker_id` and echoing the task's payload.
    pub fn serve_echo(mut self, worker_id: &str) -> tokio::task::JoinHandle<()> {
        let worker_id = worker_id.to_owned();
        tokio::spawn(async move {
            loop {
                let frame = match self.framed.next().await {
                    Some(Ok(frame)) => frame,
                    _ => return,
                };
                match Message::from_frame(&frame) {
                    Ok(Message::Call(call)) => {
                        let body = json!({
                            "task_id": call.payload.get("task_id").cloned().unwrap_or(Value::Null),
                            "status": "success",
                            "result": {"echo": call.payload.get("payload").cloned(), "worker": worker_id},
                            "node_id": worker_id,
                        });
                        self.answer(&call, body, None).await;
                    }
                    Ok(Message::Ping(echo)) => self.send(echo.pong()).await,
                    Ok(Message::Close(_)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
    }
}

/// A chat task envelope with `timeout_ms` (when given).
pub fn chat_task(text: &str, timeout_ms: Option<u64>) -> Value {
    let mut task = json!({
        "task_id": uuid::Uuid::new_v4().to_string(),
        "intent": "urn:iicp:intent:llm:chat:v1",
        "payload": {"messages": [{"role": "user", "content": text}]},
    });
    if let Some(ms) = timeout_ms {
        task["constraints"] = json!({"timeout_ms": ms});
    }
    task
}

/// `POST {base}/v1/relay-for/{worker_id}/v1/task` with `headers`: status
/// and JSON body.
pub async fn relay_for(
    base: String,
    worker_id: &str,
    task: Value,
    headers: Vec<(&'static str, String)>,
) -> (u16, Value) {
    let url = format!("{base}/v1/relay-for/{worker_id}/v1/task");
    post_json(&url, &task, headers).await
}

/// POSTs JSON; the answer's status and JSON body (Null when empty).
pub async fn post_json(
    url: &str,
    body: &Value,
    headers: Vec<(&'static str, String)>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).json(body);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    send(req).await
}

/// GETs `url` with an optional bearer token: status and JSON body (Null
/// when empty).
pub async fn get_json(url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    send(req).await
}

/// Sends `req` (answered within twice [`WAIT`]): status and JSON body (Null
/// when empty).
async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = tokio::time::timeout(WAIT * 2, req.send())
        .await
        .expect("the relay answers in time")
        .expect("the relay answers");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
    };
    (status, body)
}

/// The error code of a JSON error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}
