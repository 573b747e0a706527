//! The node's native transport (PROTOCOL.md §7.1): binary frames on the
//! node's one port, as an adapter in front of the one task pipeline, the way
//! `http.rs` is for HTTP. It adds no checks of its own: a CALL becomes a
//! [`TaskRequest`] and goes through `Pipeline::run` (admission, replay,
//! deadline, CX, task auth), and the pipeline's [`Answer`] becomes a RESPONSE
//! in the layout the CALL implies.
//!
//! A session, in order: INIT within [`NativeLimits::init_timeout`] (anything
//! else first: CLOSE `protocol_error`; no common version: CLOSE
//! `version_mismatch`) → ACK → PING/PONG, DISCOVER and CALLs, many in flight
//! (matched by call id) up to [`NativeLimits::max_calls`] → CLOSE. A frame
//! the codec or the message decoder refuses ends the session with a CLOSE
//! naming the reason; an unknown frame type gets CLOSE `unknown_type`;
//! nothing for [`NativeLimits::idle_timeout`] while no call runs gets CLOSE
//! `idle_timeout`. When the peer goes away (end of stream, or its CLOSE),
//! its calls are cancelled: the handler is aborted and a backend's model
//! server call dropped. A CALL with key 24 streams: partial results the
//! handler sends become `partial` steps before the final one.
//!
//! For the accept loop's eviction policy (`server::slots`), a session waits
//! on its client while no call is in flight (from the accept, or from the
//! end of its last call: INIT and PING do not count as work) or while its
//! writes stall; it is busy while a call is in flight. INIT restarts the
//! wait (the first call comes a round trip after it). An evicted session
//! is dropped at once: its writer task is aborted with it, so a client that
//! does not read cannot keep the socket open.

use super::NativeLimits;
use super::answer::{Answer, AnswerBody};
use super::inbound::Inbound;
use super::pipeline::Pipeline;
use super::task_auth::{Credentials, looks_like_consumer_token};
use crate::server::NativeHandler;
use crate::server::activity::Activity;
use crate::server::tracked::Tracked;
use crate::transport::spawn_writer;
use crate::transport::{
    Ack, BufferedError, BufferedResponse, Call, Close, CloseReason, Discover, DiscoverReply, Frame,
    FrameCodec, Lifecycle, LifecycleEvent, Message, MessageError, Response, ResultEncoding,
    SpecError, SpecResponse, kind,
};
use crate::wire::{IntentUrn, Qos, TaskConstraints, TaskMetrics, TaskRequest, TaskStatus};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// The protocol versions this node speaks.
const VERSIONS: (u64, u64) = (1, 1);
/// Frames queued for the writer before a call's answer waits for room.
const WRITE_QUEUE: usize = 64;

/// What DISCOVER tells about this node.
#[derive(Debug, Clone)]
pub(crate) struct NativeInfo {
    pub endpoint: String,
    pub transport_endpoint: String,
    pub region: String,
    pub models: Vec<String>,
}

/// Serves native sessions for one node.
pub(crate) struct NativeSessions {
    pub pipeline: Arc<Pipeline>,
    pub info: Arc<NativeInfo>,
    pub limits: NativeLimits,
}

impl NativeHandler for NativeSessions {
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
        activity: Arc<Activity>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.session(stream, peer, shutdown, activity))
    }
}

/// The `transport_endpoint` for an HTTP endpoint: `http://h:p` →
/// `iicp://h:p`, `https://h:p` → `iicpsec://h:p` (PROTOCOL.md §2.1). The
/// port is the HTTP one (both share it); a path is dropped.
pub(crate) fn transport_endpoint(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let scheme = match url.scheme() {
        "http" => "iicp",
        "https" => "iicpsec",
        _ => return None,
    };
    let host = match url.host()? {
        url::Host::Ipv6(ip) => format!("[{ip}]"),
        host => host.to_string(),
    };
    Some(format!(
        "{scheme}://{host}:{}",
        url.port_or_known_default()?
    ))
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a session goes on after a frame.
enum Next {
    Continue,
    /// Send this CLOSE (if any) and end the session.
    Close(Option<Close>),
    /// The peer closed the session: nobody reads answers any more.
    PeerClosed,
}

/// Per-connection state.
struct Session {
    peer: SocketAddr,
    /// Set by INIT; nothing but INIT is taken before.
    ready: bool,
    /// INIT key 4: the credential for every CALL of this session that
    /// carries none of its own.
    node_token: Option<crate::Secret>,
    calls: JoinSet<()>,
    out: mpsc::Sender<Frame>,
}

impl NativeSessions {
    async fn session(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
        activity: Arc<Activity>,
    ) {
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, FrameCodec::with_max_payload(self.limits.max_frame));
        let write = Tracked::new(write, activity.clone());
        let (out, writer) = spawn_writer(FramedWrite::new(write, FrameCodec::new()), WRITE_QUEUE);
        // Dropping the session (an eviction) must close the socket, also
        // when the writer is stuck on a client that does not read.
        let mut writer = AbortOnDrop(writer);
        let mut s = Session {
            peer,
            ready: false,
            node_token: None,
            calls: JoinSet::new(),
            out,
        };
        let init_deadline = Instant::now() + self.limits.init_timeout;
        let mut peer_left = false;
        let mut idle = true;
        let mut spoke = false;
        let close = loop {
            if s.ready && !spoke {
                spoke = true;
                activity.handshake_done();
            }
            if idle != s.calls.is_empty() {
                idle = !idle;
                if idle {
                    activity.idle();
                } else {
                    activity.busy();
                }
            }
            let wait_until = if !s.ready {
                init_deadline
            } else if s.calls.is_empty() {
                Instant::now() + self.limits.idle_timeout
            } else {
                Instant::now() + Duration::from_secs(86_400)
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    break Some(Close::new(CloseReason::Graceful, "the node is shutting down"));
                }
                Some(_) = s.calls.join_next(), if !s.calls.is_empty() => {}
                () = tokio::time::sleep_until(wait_until) => {
                    break Some(if s.ready {
                        Close::new(CloseReason::IdleTimeout, "no frame for too long")
                    } else {
                        Close::new(CloseReason::ProtocolError, "no INIT in time")
                    });
                }
                next = frames.next() => match next {
                    None => {
                        peer_left = true;
                        break None;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(peer = %s.peer, reason = e.reason(), "native frame refused");
                        break Some(Close::new(e.close_reason(), e.to_string()));
                    }
                    Some(Ok(frame)) => match self.dispatch(&mut s, frame).await {
                        Next::Continue => {}
                        Next::Close(close) => break close,
                        Next::PeerClosed => {
                            peer_left = true;
                            break None;
                        }
                    },
                },
            }
        };
        if peer_left {
            // Nobody is left to read the answers: stop the work.
            s.calls.abort_all();
        } else {
            while s.calls.join_next().await.is_some() {}
        }
        if let Some(close) = close {
            let _ = s.out.send(close.to_frame()).await;
        }
        drop(s);
        let _ = (&mut writer.0).await;
    }

    /// Applies one frame.
    async fn dispatch(&self, s: &mut Session, frame: Frame) -> Next {
        let message = match Message::from_frame(&frame) {
            Ok(m) => m,
            // A malformed CLOSE still ends the session; nothing to answer.
            Err(_) if frame.kind == kind::CLOSE => return Next::PeerClosed,
            Err(e) => match unreadable_payload(s.ready, &frame, &e) {
                // As HTTP answers a body that is not JSON: 400, in band.
                Some(refusal) => return self.send(s, refusal).await,
                None => return Next::Close(Some(Close::new(e.close_reason(), e.to_string()))),
            },
        };
        if !s.ready {
            let Message::Init(init) = message else {
                return Next::Close(Some(Close::new(
                    CloseReason::ProtocolError,
                    "the first frame must be INIT",
                )));
            };
            let Some(version) = init.choose_version(VERSIONS.0, VERSIONS.1) else {
                return Next::Close(Some(Close::new(
                    CloseReason::VersionMismatch,
                    format!("this node speaks version {}", VERSIONS.1),
                )));
            };
            s.ready = true;
            s.node_token = init.node_token;
            let ack = Ack {
                version: Some(version),
                node_id: self.pipeline.identity.borrow().clone(),
            };
            return self.send(s, ack.to_frame()).await;
        }
        match message {
            Message::Ping(echo) => self.send(s, Message::Pong(echo).to_frame()).await,
            Message::Pong(_) => Next::Continue,
            Message::Discover(d) => {
                let reply = self.discover(&d);
                self.send(s, Message::Response(Response::Discover(reply)).to_frame())
                    .await
            }
            Message::Call(call) => {
                if s.calls.len() >= self.limits.max_calls {
                    let busy = error_response(
                        &call,
                        &Answer::refusal(
                            429,
                            crate::wire::ErrorBody::new(
                                "IICP-E021",
                                "too many calls in flight on this connection",
                            ),
                        ),
                        0,
                    );
                    return self.send(s, busy).await;
                }
                let pipeline = self.pipeline.clone();
                let out = s.out.clone();
                let inbound = Inbound {
                    credentials: credentials(&call, s.node_token.as_ref()),
                    traceparent: call.trace_id.map(traceparent),
                    peer: Some(s.peer),
                    partials: None,
                    relay_text: false,
                };
                // Boxed: the task then holds a pointer, not the whole call's
                // state, which tokio would copy on every move (measured).
                s.calls.spawn(Box::pin(async move {
                    run_call(&pipeline, call, inbound, &out).await;
                }));
                Next::Continue
            }
            Message::Close(_) => Next::PeerClosed,
            Message::RelayBind(_) => Next::Close(Some(Close::new(
                CloseReason::ProtocolError,
                "relay binds go to the relay accept port",
            ))),
            Message::Init(_) | Message::Ack(_) | Message::Response(_) | Message::RelayAck(_) => {
                Next::Close(Some(Close::new(
                    CloseReason::ProtocolError,
                    "unexpected frame for a node",
                )))
            }
        }
    }

    async fn send(&self, s: &Session, frame: Frame) -> Next {
        if s.out.send(frame).await.is_err() {
            Next::PeerClosed
        } else {
            Next::Continue
        }
    }

    /// This node, if it serves the intent asked for.
    fn discover(&self, d: &Discover) -> DiscoverReply {
        let intent = d.intent().map(str::to_owned);
        let serves = intent
            .as_deref()
            .and_then(|i| IntentUrn::parse(i).ok())
            .is_some_and(|i| self.pipeline.intents.contains(&i));
        let nodes = if serves {
            let p = &self.pipeline;
            vec![json!({
                "node_id": p.identity.borrow().clone(),
                "endpoint": self.info.endpoint,
                "transport_endpoint": self.info.transport_endpoint,
                "region": self.info.region,
                "models": self.info.models,
                "load": f64::from(p.gate.active()) / f64::from(p.gate.max()),
                "available": !p.is_draining(),
            })]
        } else {
            Vec::new()
        };
        DiscoverReply {
            session_id: match d {
                Discover::Session { session_id, .. } => session_id.clone(),
                Discover::Query(_) => None,
            },
            intent,
            nodes,
        }
    }
}

/// A W3C traceparent for CALL key 13's 16-byte trace id.
fn traceparent(trace_id: [u8; 16]) -> String {
    let span: [u8; 8] = rand::random();
    format!("00-{}-{}-01", hex::encode(trace_id), hex::encode(span))
}

/// The credentials of a CALL: key 11 (else the session's INIT key 4 node
/// token). Key 11 carries a node token or a directory consumer token
/// (docs/INTEROP.md); one shaped like a consumer token is checked as one,
/// anything else as the node token, so a refusal names the right cause.
fn credentials(call: &Call, session_token: Option<&crate::Secret>) -> Credentials {
    match &call.auth_token {
        Some(token) if looks_like_consumer_token(token.expose()) => Credentials {
            consumer_token: Some(token.expose().to_owned()),
            bearer: session_token.cloned(),
        },
        Some(token) => Credentials {
            consumer_token: None,
            bearer: Some(token.clone()),
        },
        None => Credentials {
            consumer_token: None,
            bearer: session_token.cloned(),
        },
    }
}

/// A CALL whose key 5 is not JSON, its other keys well-formed: the answer
/// HTTP gives a body that is not JSON (400 `validation_error`), matched to
/// the call by its id. `None` for any other decoding error (the session
/// then closes with its reason) and before INIT.
fn unreadable_payload(ready: bool, frame: &Frame, error: &MessageError) -> Option<Frame> {
    let MessageError::InvalidValue { key: 5, .. } = error else {
        return None;
    };
    if !ready || frame.kind != kind::CALL {
        return None;
    }
    // The payload decoded as CBOR up to key 5: drop that key and read the rest.
    let ciborium::Value::Map(entries) =
        ciborium::from_reader::<ciborium::Value, _>(&frame.payload[..]).ok()?
    else {
        return None;
    };
    let rest: Vec<_> = entries
        .into_iter()
        .filter(|(k, _)| k.as_integer() != Some(5.into()))
        .collect();
    let mut bytes = Vec::new();
    ciborium::into_writer(&ciborium::Value::Map(rest), &mut bytes).ok()?;
    let call = Call::decode(&bytes).ok()?;
    Some(error_response(
        &call,
        &Answer::validation_error(400, format!("CALL {error}")),
        0,
    ))
}

/// Turns a CALL into a task, runs it through the pipeline and sends the
/// answer as the RESPONSE frames the CALL implies: one buffered RESPONSE, or
/// for a streaming CALL (key 24) a `partial` step per partial result the
/// handler sends, then the final step.
async fn run_call(
    pipeline: &Pipeline,
    mut call: Call,
    mut inbound: Inbound,
    out: &mpsc::Sender<Frame>,
) {
    let task = match task_of(&mut call) {
        Ok(task) => task,
        Err(answer) => {
            let _ = out.send(error_response(&call, &answer, 0)).await;
            return;
        }
    };
    let Some(task_id) = call.task_id.clone() else {
        let answer = pipeline.run(task, inbound).await;
        let _ = out.send(final_response(&call, answer, 0)).await;
        return;
    };
    let (sink, mut partials) = crate::PartialSink::channel();
    inbound.partials = Some(sink);
    let mut sequence = 0;
    let step = |sequence: u64, result: Value| {
        Message::Response(Response::Spec(SpecResponse {
            result: Some(result),
            ..lifecycle_step(&call, &task_id, LifecycleEvent::Partial, sequence)
        }))
        .to_frame()
    };
    let run = pipeline.run(task, inbound);
    tokio::pin!(run);
    let answer = loop {
        tokio::select! {
            biased;
            Some(partial) = partials.recv() => {
                if out.send(step(sequence, partial)).await.is_err() {
                    return; // the session is gone; dropping `run` cancels the task
                }
                sequence += 1;
            }
            answer = &mut run => break answer,
        }
    };
    // Partials sent just before the handler returned come first.
    while let Ok(partial) = partials.try_recv() {
        let _ = out.send(step(sequence, partial)).await;
        sequence += 1;
    }
    let _ = out.send(final_response(&call, answer, sequence)).await;
}

/// The RESPONSE for the pipeline's answer: the result, or the refusal or
/// failure.
fn final_response(call: &Call, mut answer: Answer, sequence: u64) -> Frame {
    let env = match &mut answer.body {
        AnswerBody::Envelope(env) | AnswerBody::Relayed { envelope: env, .. }
            if matches!(
                env.status,
                TaskStatus::Success | TaskStatus::Completed | TaskStatus::Encrypted
            ) =>
        {
            env
        }
        _ => return error_response(call, &answer, sequence),
    };
    // A sealed answer travels whole, for the client to open; a plaintext
    // one gives up its result (moved, not copied).
    let result = if env.status == TaskStatus::Encrypted {
        serde_json::to_value(&**env).unwrap_or(Value::Null)
    } else {
        env.result.take().unwrap_or(Value::Null)
    };
    success_response(call, result, env.metrics.as_ref(), sequence)
}

/// The task a CALL asks for. The payload may carry `iicp_conf` (CX) and
/// `cx_response_encryption` as an HTTP body would.
fn task_of(call: &mut Call) -> Result<TaskRequest, Answer> {
    let intent = call
        .intent
        .as_deref()
        .ok_or_else(|| Answer::validation_error(422, "CALL key 3 (intent) is required"))?;
    let intent = IntentUrn::parse(intent)
        .map_err(|e| Answer::validation_error(422, format!("CALL key 3: {e}")))?;
    let mut payload = std::mem::take(&mut call.payload);
    let mut task = TaskRequest::new(intent, Value::Null);
    // A sealed task's AAD binds its task id, which a buffered CALL (no key
    // 24) has no key for: it travels beside `iicp_conf` (docs/INTEROP.md).
    let mut sealed_task_id = None;
    if let Some(obj) = payload.as_object_mut() {
        task.iicp_conf = obj.remove("iicp_conf");
        task.cx_response_encryption = obj
            .remove("cx_response_encryption")
            .and_then(|v| v.as_str().map(str::to_owned));
        if task.iicp_conf.is_some() {
            sealed_task_id = obj.remove("task_id");
        }
    }
    if task.iicp_conf.is_none() {
        task.payload = payload;
    }
    task.task_id = match (&call.task_id, sealed_task_id) {
        (Some(id), _) => id.clone(),
        (None, None) => String::new(),
        (None, Some(Value::String(id))) => id,
        (None, Some(_)) => {
            return Err(Answer::validation_error(
                422,
                "CALL key 5: task_id beside iicp_conf must be a string",
            ));
        }
    };
    task.nonce = call.idempotency_key.clone();
    task.constraints = Some(TaskConstraints {
        timeout_ms: call.timeout.map(|t| t.as_millis() as u64),
        qos: call.qos.as_deref().and_then(|q| q.parse::<Qos>().ok()),
        ..Default::default()
    });
    Ok(task)
}

/// Step `sequence` of a streaming call's lifecycle: a `partial` one, or
/// the final one for a terminal event.
fn lifecycle_step(
    call: &Call,
    task_id: &str,
    event: LifecycleEvent,
    sequence: u64,
) -> SpecResponse {
    SpecResponse::step(
        call.session_id.clone(),
        call.call_id.clone(),
        Lifecycle {
            // An id the pipeline refuses is not echoed (as over HTTP).
            task_id: crate::wire::task::is_valid_task_id(task_id).then(|| task_id.to_owned()),
            sequence,
            event,
            is_final: event.is_terminal(),
        },
    )
}

/// A success: the buffered layout `{2, 15, 5 result}`, or the `completed`
/// step, which also carries the envelope's metrics (7 tokens_used,
/// 8 duration_ms, 11 node_id).
fn success_response(
    call: &Call,
    result: Value,
    metrics: Option<&TaskMetrics>,
    sequence: u64,
) -> Frame {
    let response = match &call.task_id {
        Some(task_id) => Response::Spec(SpecResponse {
            result: Some(result),
            tokens_used: metrics.and_then(|m| m.tokens_used),
            duration_ms: metrics.and_then(|m| m.latency_ms),
            node_id: metrics.and_then(|m| m.node_id.clone()),
            ..lifecycle_step(call, task_id, LifecycleEvent::Completed, sequence)
        }),
        None => Response::Buffered(BufferedResponse {
            session_id: call.session_id.clone(),
            call_id: call.call_id.clone(),
            result: Some(result),
            encoding: ResultEncoding::CborBytes,
        }),
    };
    Message::Response(response).to_frame()
}

/// A refusal or failure: `{100 status, 101 "[code] message", 6 {1 code,
/// 2 message}}` for a buffered CALL, the `failed`/`timed_out` step (key 4
/// `error`/`timeout`) with `6 {1 code, 2 message}` for a streaming one.
fn error_response(call: &Call, answer: &Answer, sequence: u64) -> Frame {
    let code = answer.code().unwrap_or("task_error").to_owned();
    let message = answer.message().unwrap_or("the task failed").to_owned();
    let response = match &call.task_id {
        Some(task_id) => {
            let event = if answer.status == 504 {
                LifecycleEvent::TimedOut
            } else {
                LifecycleEvent::Failed
            };
            Response::Spec(SpecResponse {
                error: Some(SpecError {
                    code: Some(code),
                    message: Some(message),
                }),
                ..lifecycle_step(call, task_id, event, sequence)
            })
        }
        None => Response::Error(BufferedError {
            code: i64::from(answer.status),
            message: Some(format!("[{code}] {message}")),
            error: Some(SpecError {
                code: Some(code),
                message: Some(message),
            }),
            session_id: call.session_id.clone(),
            call_id: call.call_id.clone(),
        }),
    };
    Message::Response(response).to_frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_endpoints_follow_the_http_endpoint() {
        for (http, native) in [
            ("http://127.0.0.1:9484", Some("iicp://127.0.0.1:9484")),
            (
                "https://node.example.com",
                Some("iicpsec://node.example.com:443"),
            ),
            ("http://[::1]:8020/base", Some("iicp://[::1]:8020")),
            ("ftp://x", None),
        ] {
            assert_eq!(transport_endpoint(http).as_deref(), native, "{http}");
        }
    }
}
