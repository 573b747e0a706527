//! [`NativeClient`]: one native connection to a node (PROTOCOL.md §7.1),
//! multiplexed: many CALLs in flight at once, each answer matched to its
//! call by call id. Connect and INIT/ACK, PING, DISCOVER, buffered CALL,
//! streaming CALL (the lifecycle layout), CLOSE.
//!
//! One reader task owns the socket's read half and routes every RESPONSE to
//! the call waiting for it; one writer task owns the write half. A CLOSE
//! from the node, or the socket ending, fails every pending call with the
//! reason. Answers that carry no call id (the reference node leaves it out
//! of its error answers) go to the oldest buffered call still waiting.

use super::{
    Call, Close, CloseReason, Discover, Echo, Frame, FrameCodec, Init, LifecycleEvent, Message,
    Response, SpecResponse,
};
use crate::error::{IicpError, Result};
use crate::secret::Secret;
use crate::wire::IntentUrn;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

/// How a [`NativeClient`] connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NativeOptions {
    /// Time for connect plus INIT/ACK, and the default wait for an answer.
    pub timeout: Duration,
    /// Sent in INIT (key 4): the credential of every call of the session.
    pub node_token: Option<Secret>,
    /// Largest frame payload read from the node.
    pub max_frame: usize,
}

impl Default for NativeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            node_token: None,
            max_frame: super::DEFAULT_MAX_FRAME_PAYLOAD,
        }
    }
}

/// One step of a streaming call.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStep {
    /// `accepted`, `partial`, `completed`, `failed`, `cancelled`, `timed_out`.
    pub event: LifecycleEvent,
    /// Position in the call's lifecycle, from 0.
    pub sequence: u64,
    /// The (partial) result, when the step carries one.
    pub result: Option<Value>,
    /// True for the last step.
    pub is_final: bool,
}

/// Where the answer of a pending call goes.
enum Waiter {
    Once(oneshot::Sender<Result<Response>>),
    Stream(mpsc::Sender<Result<StreamStep>>),
}

#[derive(Default)]
struct Pending {
    calls: HashMap<String, Waiter>,
    /// Buffered call ids, oldest first (for answers without a call id).
    order: VecDeque<String>,
    ping: Option<oneshot::Sender<Result<Bytes>>>,
    discover: Option<oneshot::Sender<Result<Vec<Value>>>>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
}

/// A multiplexed native connection to one node. Cheap to clone; clones
/// share the connection.
#[derive(Clone)]
pub struct NativeClient {
    out: mpsc::Sender<Frame>,
    pending: Arc<Mutex<Pending>>,
    node_id: Option<String>,
    timeout: Duration,
    target: Arc<str>,
}

impl std::fmt::Debug for NativeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeClient")
            .field("target", &self.target)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn transport(target: &str, reason: impl Into<String>) -> IicpError {
    IicpError::Transport {
        target: target.to_owned(),
        reason: reason.into(),
    }
}

impl NativeClient {
    /// Connects to `address` (`host:port`, or an `iicp://host:port`
    /// transport endpoint) and completes the handshake.
    pub async fn connect(address: &str, options: NativeOptions) -> Result<Self> {
        let hostport = address.strip_prefix("iicp://").unwrap_or(address);
        let target: Arc<str> = format!("node at iicp://{hostport}").into();
        let connecting = TcpStream::connect(hostport);
        Self::establish(connecting, target, options).await
    }

    /// Connects to the first of `addrs` that answers (addresses a caller
    /// has resolved and judged itself) and completes the handshake;
    /// `hostport` names the node in errors.
    pub(crate) async fn connect_resolved(
        hostport: &str,
        addrs: &[SocketAddr],
        options: NativeOptions,
    ) -> Result<Self> {
        let target: Arc<str> = format!("node at iicp://{hostport}").into();
        Self::establish(TcpStream::connect(addrs), target, options).await
    }

    async fn establish(
        connecting: impl Future<Output = std::io::Result<TcpStream>>,
        target: Arc<str>,
        options: NativeOptions,
    ) -> Result<Self> {
        let stream = tokio::time::timeout(options.timeout, connecting)
            .await
            .map_err(|_| IicpError::Timeout {
                what: target.to_string(),
                elapsed_ms: options.timeout.as_millis() as u64,
            })?
            .map_err(|e| transport(&target, format!("connection failed: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, FrameCodec::with_max_payload(options.max_frame));
        let mut sink = FramedWrite::new(write, FrameCodec::new());
        let init = Init {
            node_token: options.node_token.clone(),
            ..Init::with_version(1)
        };
        let handshake = async {
            sink.send(init.to_frame())
                .await
                .map_err(|e| transport(&target, format!("INIT not sent: {e}")))?;
            match frames.next().await {
                Some(Ok(frame)) => match Message::from_frame(&frame) {
                    Ok(Message::Ack(ack)) => Ok(ack),
                    Ok(Message::Close(c)) => Err(closed_error(&target, &c)),
                    Ok(other) => Err(transport(
                        &target,
                        format!("expected ACK, got frame type {}", other.kind()),
                    )),
                    Err(e) => Err(transport(&target, format!("unreadable ACK: {e}"))),
                },
                Some(Err(e)) => Err(transport(&target, format!("bad frame: {e}"))),
                None => Err(transport(&target, "closed during the handshake")),
            }
        };
        let ack = tokio::time::timeout(options.timeout, handshake)
            .await
            .map_err(|_| IicpError::Timeout {
                what: format!("the handshake with the {target}"),
                elapsed_ms: options.timeout.as_millis() as u64,
            })??;

        let (out, mut queue) = mpsc::channel::<Frame>(64);
        tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
            let _ = SinkExt::<Frame>::close(&mut sink).await;
        });
        let pending = Arc::new(Mutex::new(Pending::default()));
        tokio::spawn(read_loop(frames, pending.clone()));
        Ok(Self {
            out,
            pending,
            node_id: ack.node_id,
            timeout: options.timeout,
            target,
        })
    }

    /// The node id the ACK named, if any.
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    /// True once the connection has ended (CLOSE from the node, EOF, a
    /// bad frame) or its writer has stopped: no call can succeed on it.
    pub fn is_closed(&self) -> bool {
        self.out.is_closed() || self.lock().closed.is_some()
    }

    /// Whether `other` is a clone of this client (the same connection).
    pub(crate) fn same_connection(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.pending, &other.pending)
    }

    /// Calls waiting for their answer on this connection.
    pub fn in_flight(&self) -> usize {
        self.lock().calls.len()
    }

    /// Sends CLOSE `graceful` without waiting (when the write queue is
    /// full, dropping the last clone closes the connection anyway).
    pub(crate) fn close_now(&self) {
        let _ = self
            .out
            .try_send(Close::new(CloseReason::Graceful, "client done").to_frame());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        crate::sync::lock(&self.pending)
    }

    async fn send(&self, frame: Frame) -> Result<()> {
        self.out
            .send(frame)
            .await
            .map_err(|_| transport(&self.target, "the connection is closed"))
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T>>, limit: Duration) -> Result<T> {
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(transport(&self.target, "the connection ended")),
            Err(_) => Err(IicpError::Timeout {
                what: self.target.to_string(),
                elapsed_ms: limit.as_millis() as u64,
            }),
        }
    }

    /// Sends PING with `echo` (at most 64 bytes) and returns the PONG's echo.
    pub async fn ping(&self, echo: &[u8]) -> Result<Bytes> {
        let (tx, rx) = oneshot::channel();
        self.lock().ping = Some(tx);
        let echo = Echo {
            echo: (!echo.is_empty()).then(|| Bytes::copy_from_slice(echo)),
        };
        self.send(echo.ping()).await?;
        self.wait(rx, self.timeout).await
    }

    /// Asks the node which nodes it knows for `intent` (itself, when it
    /// serves it).
    pub async fn discover(&self, intent: impl AsRef<str>) -> Result<Vec<Value>> {
        let (tx, rx) = oneshot::channel();
        self.lock().discover = Some(tx);
        let discover = Discover::Session {
            session_id: Some("discover".into()),
            intent: Some(intent.as_ref().to_owned()),
        };
        self.send(discover.to_frame()).await?;
        self.wait(rx, self.timeout).await
    }

    /// Runs a task and returns its result. A refusal comes back as
    /// `IicpError::Protocol` with the node's status and code.
    pub async fn call(&self, intent: impl AsRef<str>, payload: Value) -> Result<Value> {
        self.call_with(Call {
            intent: Some(IntentUrn::parse(intent.as_ref())?.to_string()),
            payload,
            ..Default::default()
        })
        .await
    }

    /// Sends a CALL as given (its `call_id` is set when missing) and waits
    /// for its buffered answer, at most its `timeout` or the client's.
    pub async fn call_with(&self, mut call: Call) -> Result<Value> {
        call.task_id = None;
        let limit = call.timeout.map_or(self.timeout, |t| t + self.timeout);
        let answer = self
            .exchange(call, limit)
            .await
            .map_err(Failure::into_error)?;
        answer_value(&self.target, answer)
    }

    /// Sends a CALL as given (its `call_id` and `session_id` are set when
    /// missing; with `task_id` set it is a lifecycle call) and waits at most
    /// `limit` for its final answer, which is returned as received. The
    /// failure says whether the CALL was handed to the connection.
    pub(crate) async fn exchange(
        &self,
        mut call: Call,
        limit: Duration,
    ) -> std::result::Result<Response, Failure> {
        let id = call
            .call_id
            .get_or_insert_with(crate::ids::uuid_v4_string)
            .clone();
        call.session_id.get_or_insert_with(|| "native".into());
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.lock();
            if let Some(why) = &p.closed {
                return Err(Failure::Unsent(transport(&self.target, why.clone())));
            }
            p.calls.insert(id.clone(), Waiter::Once(tx));
            p.order.push_back(id.clone());
        }
        if let Err(e) = self.send(call.to_frame()).await {
            self.forget(&id);
            return Err(Failure::Unsent(e));
        }
        let answer = match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(e))) => Err(Failure::Lost(e)),
            Ok(Err(_)) => Err(Failure::Lost(transport(
                &self.target,
                "the connection ended",
            ))),
            Err(_) => Err(Failure::TimedOut(IicpError::Timeout {
                what: self.target.to_string(),
                elapsed_ms: limit.as_millis() as u64,
            })),
        };
        self.forget(&id);
        answer
    }

    /// Runs a task with the streaming lifecycle (CALL key 24 = `task_id`)
    /// and returns its steps as they arrive, the last one final.
    pub async fn stream(
        &self,
        intent: impl AsRef<str>,
        payload: Value,
        task_id: &str,
    ) -> Result<mpsc::Receiver<Result<StreamStep>>> {
        let id = crate::ids::uuid_v4_string();
        let call = Call {
            session_id: Some("native".into()),
            intent: Some(IntentUrn::parse(intent.as_ref())?.to_string()),
            payload,
            call_id: Some(id.clone()),
            task_id: Some(task_id.to_owned()),
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel(16);
        self.lock().calls.insert(id.clone(), Waiter::Stream(tx));
        if let Err(e) = self.send(call.to_frame()).await {
            self.forget(&id);
            return Err(e);
        }
        Ok(rx)
    }

    /// Sends a lifecycle CALL as given (`task_id` must be set; `call_id`
    /// and `session_id` are set when missing) and returns its steps on a
    /// channel holding up to `capacity` steps (a consumer further behind
    /// loses steps, which it sees as a gap in `sequence`). The error says
    /// whether the CALL was handed to the connection: only `Unsent` is
    /// possible here.
    pub(crate) async fn stream_call(
        &self,
        mut call: Call,
        capacity: usize,
    ) -> std::result::Result<mpsc::Receiver<Result<StreamStep>>, Failure> {
        let id = call
            .call_id
            .get_or_insert_with(crate::ids::uuid_v4_string)
            .clone();
        call.session_id.get_or_insert_with(|| "native".into());
        let (tx, rx) = mpsc::channel(capacity.max(1));
        {
            let mut p = self.lock();
            if let Some(why) = &p.closed {
                return Err(Failure::Unsent(transport(&self.target, why.clone())));
            }
            p.calls.insert(id.clone(), Waiter::Stream(tx));
        }
        if let Err(e) = self.send(call.to_frame()).await {
            self.forget(&id);
            return Err(Failure::Unsent(e));
        }
        Ok(rx)
    }

    fn forget(&self, id: &str) {
        let mut p = self.lock();
        p.calls.remove(id);
        p.order.retain(|o| o != id);
    }

    /// Sends CLOSE `graceful`; pending calls fail once the node closes.
    pub async fn close(self) {
        let _ = self
            .send(Close::new(CloseReason::Graceful, "client done").to_frame())
            .await;
    }
}

/// Why an exchange on one connection produced no answer, by what the node
/// may have seen of the CALL.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The CALL was never handed to the connection (it had already ended):
    /// the node cannot have seen it, so sending it elsewhere is safe.
    Unsent(IicpError),
    /// The CALL was handed to the connection, which then ended before its
    /// answer: the node may have run it.
    Lost(IicpError),
    /// No answer within the time allowed; the connection is still up.
    TimedOut(IicpError),
}

impl Failure {
    /// The error inside.
    pub(crate) fn into_error(self) -> IicpError {
        match self {
            Self::Unsent(e) | Self::Lost(e) | Self::TimedOut(e) => e,
        }
    }
}

/// The result of a buffered answer, or the node's refusal as an error.
pub(crate) fn answer_value(target: &str, answer: Response) -> Result<Value> {
    match answer {
        Response::Buffered(r) => Ok(r.result.unwrap_or(Value::Null)),
        Response::Spec(r) => spec_result(target, r),
        Response::Error(e) => Err(protocol_error(&e)),
        Response::Discover(_) => Err(transport(target, "a DISCOVER reply to a CALL")),
    }
}

/// A buffered error as the node's own error: the status from key 100; the
/// code from the structured error (key 6), else from a `[code] message`
/// text (our older nodes), else `http_<status>` (the reference peers).
fn protocol_error(e: &super::BufferedError) -> IicpError {
    let status = u16::try_from(e.code).unwrap_or(500);
    let text = e.message.as_deref().unwrap_or_default();
    let bracketed = text.strip_prefix('[').and_then(|t| t.split_once("] "));
    let structured = e.error.as_ref().and_then(|s| s.code.clone());
    let (code, message) = match (structured, bracketed) {
        (Some(code), _) => {
            let message = e.error.as_ref().and_then(|s| s.message.clone());
            let fallback = bracketed.map_or(text, |(_, rest)| rest);
            (code, message.unwrap_or_else(|| fallback.to_owned()))
        }
        (None, Some((code, rest))) => (code.to_owned(), rest.to_owned()),
        (None, None) => (format!("http_{status}"), text.to_owned()),
    };
    IicpError::Protocol {
        code,
        message,
        status,
    }
}

fn spec_result(target: &str, r: SpecResponse) -> Result<Value> {
    match r.error {
        Some(e) => Err(IicpError::Protocol {
            code: e.code.unwrap_or_else(|| "task_error".into()),
            message: e.message.unwrap_or_default(),
            status: 200,
        }),
        None if r.result.is_some() => Ok(r.result.unwrap_or(Value::Null)),
        None => Err(IicpError::NoResult {
            node_id: target.to_owned(),
        }),
    }
}

fn closed_error(target: &str, close: &Close) -> IicpError {
    let reason = close
        .reason
        .as_ref()
        .map_or_else(|| "closed".to_owned(), |r| r.to_string());
    transport(
        target,
        format!(
            "the node closed the connection: {reason}{}",
            close
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
    )
}

/// Routes every frame from the node until the connection ends, then fails
/// whatever still waits.
async fn read_loop(
    mut frames: FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
    pending: Arc<Mutex<Pending>>,
) {
    let lock = || crate::sync::lock(&pending);
    let why = loop {
        let frame = match frames.next().await {
            None => break "the node ended the connection".to_owned(),
            Some(Err(e)) => break format!("bad frame from the node: {e}"),
            Some(Ok(frame)) => frame,
        };
        match Message::from_frame(&frame) {
            Ok(Message::Pong(echo)) => {
                if let Some(tx) = lock().ping.take() {
                    let _ = tx.send(Ok(echo.echo.unwrap_or_default()));
                }
            }
            Ok(Message::Response(Response::Discover(d))) => {
                if let Some(tx) = lock().discover.take() {
                    let _ = tx.send(Ok(d.nodes));
                }
            }
            Ok(Message::Response(r)) => route(&mut lock(), r),
            Ok(Message::Close(c)) => {
                break closed_error("node", &c).to_string();
            }
            Ok(_) => {}
            Err(e) => break format!("unreadable message from the node: {e}"),
        }
    };
    let mut p = lock();
    p.closed = Some(why.clone());
    for (_, waiter) in p.calls.drain() {
        match waiter {
            Waiter::Once(tx) => {
                let _ = tx.send(Err(transport("node", why.clone())));
            }
            Waiter::Stream(tx) => {
                let _ = tx.try_send(Err(transport("node", why.clone())));
            }
        }
    }
    p.order.clear();
}

/// Hands one RESPONSE to the call it answers.
fn route(p: &mut Pending, response: Response) {
    let id = match response.call_id() {
        Some(id) if p.calls.contains_key(id) => id.to_owned(),
        _ => match p.order.front() {
            Some(oldest) => oldest.clone(),
            None => return,
        },
    };
    match p.calls.get(&id) {
        Some(Waiter::Once(_)) => {
            // A lifecycle call answered step by step (accepted, partial…)
            // waits for its final step.
            if matches!(&response, Response::Spec(spec) if !spec.is_final()) {
                return;
            }
            if let Some(Waiter::Once(tx)) = p.calls.remove(&id) {
                p.order.retain(|o| *o != id);
                let _ = tx.send(Ok(response));
            }
        }
        Some(Waiter::Stream(tx)) => {
            let Response::Spec(spec) = response else {
                return;
            };
            let is_final = spec.is_final();
            let step = StreamStep {
                event: spec
                    .lifecycle
                    .as_ref()
                    .map_or(LifecycleEvent::Completed, |l| l.event),
                sequence: spec.lifecycle.as_ref().map_or(0, |l| l.sequence),
                result: spec.result.clone(),
                is_final,
            };
            let step = match spec.error {
                Some(e) if is_final => Err(IicpError::Protocol {
                    code: e.code.unwrap_or_else(|| "task_error".into()),
                    message: e.message.unwrap_or_default(),
                    status: 200,
                }),
                _ => Ok(step),
            };
            // The reader task serves every call of the connection and must
            // not wait on one consumer: a consumer 16 steps behind loses
            // the excess (its final step is then missing, which it sees).
            let _ = tx.try_send(step);
            if is_final {
                p.calls.remove(&id);
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{BufferedError, SpecError};

    fn code_and_message(e: &BufferedError) -> (String, String, u16) {
        match protocol_error(e) {
            IicpError::Protocol {
                code,
                message,
                status,
            } => (code, message, status),
            other => panic!("not a Protocol error: {other:?}"),
        }
    }

    #[test]
    fn a_buffered_error_keeps_the_nodes_status_and_code() {
        let ours = BufferedError {
            code: 429,
            message: Some("[IICP-E021] capacity_exceeded".into()),
            error: Some(SpecError {
                code: Some("IICP-E021".into()),
                message: Some("capacity_exceeded".into()),
            }),
            ..Default::default()
        };
        let want = |c: &str, m: &str, s| (c.to_owned(), m.to_owned(), s);
        assert_eq!(
            code_and_message(&ours),
            want("IICP-E021", "capacity_exceeded", 429)
        );
        // Key 6 wins over a text that looks like another code.
        let structured = BufferedError {
            message: Some("[other] text".into()),
            error: Some(SpecError {
                code: Some("unauthorized".into()),
                message: None,
            }),
            code: 401,
            ..Default::default()
        };
        assert_eq!(
            code_and_message(&structured),
            want("unauthorized", "text", 401)
        );
        let bracketed = BufferedError {
            code: 409,
            message: Some("[IICP-E010] replay".into()),
            ..Default::default()
        };
        assert_eq!(
            code_and_message(&bracketed),
            want("IICP-E010", "replay", 409)
        );
        let reference = BufferedError {
            code: 503,
            message: Some("busy".into()),
            ..Default::default()
        };
        assert_eq!(code_and_message(&reference), want("http_503", "busy", 503));
    }
}
