//! One relay session, the worker's side (PROTOCOL.md §7.2 and the relay
//! contract): dial the relay's accept port (connect timeout 10 s), INIT →
//! ACK, RELAY_BIND → RELAY_ACK, then serve the relay's CALLs through the
//! node's one task pipeline until the session ends.
//!
//! - A CALL's key 5 is the consumer's whole task envelope as JSON; it is
//!   decoded as HTTP decodes a body and run by `Pipeline::run` (admission,
//!   replay, deadline, CX, task auth with key 11 as the bearer, or as the
//!   consumer token when it has that shape), its budget capped by key 6
//!   (the seconds the relay will still wait). The answer goes back as the
//!   complete task-response JSON (`response.rs`). A key 5 that is not JSON
//!   is answered 400 and the session goes on.
//! - At most `NativeLimits::max_calls` run at once; more are answered 429.
//!   Frames above `NativeLimits::max_frame` end the session.
//! - The worker PINGs every 30 s and answers the relay's PINGs; a relay
//!   from which nothing (no PONG, no frame) arrived for 90 s is lost.
//! - A frame the codec refuses (garbage on the wire) ends the session (the
//!   stream cannot be trusted to be in step any more); unknown frame types
//!   are ignored.
//! - Stopping (the node shuts down): the calls in flight finish within the
//!   grace period, then CLOSE `graceful`.
//!
//! Nothing of a task, an answer, a ticket or a token is logged. The node
//! token never goes to the relay: INIT carries only the version, and the
//! bind only a directory ticket.

use super::election::{RelayTarget, host_allowed};
use super::response::response_frame;
use crate::Secret;
use crate::node::NativeLimits;
use crate::node::answer::Answer;
use crate::node::inbound::{Inbound, decode_task};
use crate::node::pipeline::Pipeline;
use crate::node::task_auth::{Credentials, looks_like_consumer_token};
use crate::transport::spawn_writer;
use crate::transport::{
    Call, Close, CloseReason, Echo, Frame, FrameCodec, Init, Message, MessageError, RelayBind, kind,
};
use crate::wire::TaskConstraints;
use crate::wire::endpoint::classify_ip;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// The HTTP port assumed when RELAY_ACK names none (older relays).
const DEFAULT_RELAY_HTTP_PORT: u16 = crate::node::DEFAULT_PORT;
/// Frames queued for the writer before a call's answer waits for room.
const WRITE_QUEUE: usize = 64;

/// The session's clock (PROTOCOL.md §7.2).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    /// TCP connect, all addresses together.
    pub connect: Duration,
    /// Each handshake answer (ACK, RELAY_ACK).
    pub handshake: Duration,
    /// Between two PINGs.
    pub ping_every: Duration,
    /// Silence after which the relay counts as lost.
    pub silence: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            ping_every: Duration::from_secs(30),
            silence: Duration::from_secs(90),
        }
    }
}

/// What every session of one worker shares.
pub(crate) struct SessionConfig {
    pub pipeline: Arc<Pipeline>,
    pub limits: NativeLimits,
    pub worker_id: String,
    pub intent: String,
    pub models: Vec<String>,
    pub timings: Timings,
    /// Whether the directory is local (a relay on a private address may
    /// then be dialled).
    pub local_directory: bool,
}

/// Why a bind did not happen.
#[derive(Debug)]
pub(crate) enum BindError {
    /// No TCP connection (refused, timed out, unresolvable, or an address
    /// the endpoint rules refuse).
    Connect(String),
    /// The relay answered RELAY_ACK `error` with this reason.
    Refused(String),
    /// The handshake went wrong otherwise (no ACK, a CLOSE, garbage).
    Protocol(String),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "could not connect: {why}"),
            Self::Refused(reason) => write!(f, "the relay refused the bind: {reason:?}"),
            Self::Protocol(why) => write!(f, "handshake failed: {why}"),
        }
    }
}

/// A bound session, ready to serve.
pub(crate) struct Bound {
    read: FramedRead<OwnedReadHalf, FrameCodec>,
    write: FramedWrite<OwnedWriteHalf, FrameCodec>,
    /// The relay's HTTP port, where consumers reach this worker.
    pub relay_http_port: u16,
}

/// How a served session ended.
#[derive(Debug, PartialEq)]
pub(crate) enum Ended {
    /// The relay went away or misbehaved: reconnect.
    Lost(String),
    /// The node is stopping; the session was closed gracefully.
    Stopped,
}

/// Resolves and connects. An elected relay's addresses are judged as its
/// endpoint was (all of them, so a name cannot rebind to a private one); a
/// relay the operator named is trusted.
async fn connect(target: &RelayTarget, cfg: &SessionConfig) -> Result<TcpStream, BindError> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| BindError::Connect(format!("cannot resolve {}: {e}", target.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(BindError::Connect(format!(
                "{} has no address",
                target.host
            )));
        }
        if !target.named {
            if let Some(bad) = addrs
                .iter()
                .find(|a| !host_allowed(classify_ip(a.ip()), cfg.local_directory))
            {
                return Err(BindError::Connect(format!(
                    "{} resolves to {}, which a relay may not be",
                    target.host,
                    bad.ip()
                )));
            }
        }
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(BindError::Connect(
            last.map_or_else(|| "no address".into(), |e| e.to_string()),
        ))
    };
    match tokio::time::timeout(cfg.timings.connect, attempt).await {
        Ok(result) => result,
        Err(_) => Err(BindError::Connect(format!(
            "no connection within {} s",
            cfg.timings.connect.as_secs()
        ))),
    }
}

/// Reads the next message within the handshake timeout.
async fn next_message(
    read: &mut FramedRead<OwnedReadHalf, FrameCodec>,
    wait: Duration,
    expecting: &str,
) -> Result<Message, BindError> {
    let frame = match tokio::time::timeout(wait, read.next()).await {
        Err(_) => {
            return Err(BindError::Protocol(format!(
                "no {expecting} within {} s",
                wait.as_secs()
            )));
        }
        Ok(None) => {
            return Err(BindError::Protocol(format!(
                "the relay closed the connection before {expecting}"
            )));
        }
        Ok(Some(Err(e))) => return Err(BindError::Protocol(format!("unreadable frame: {e}"))),
        Ok(Some(Ok(frame))) => frame,
    };
    let message = Message::from_frame(&frame)
        .map_err(|e| BindError::Protocol(format!("unreadable {expecting}: {e}")))?;
    if let Message::Close(close) = &message {
        return Err(BindError::Protocol(format!(
            "the relay closed the session ({}: {:?})",
            close.reason.as_ref().map_or("no reason", |r| r.as_str()),
            close.message.as_deref().unwrap_or("")
        )));
    }
    Ok(message)
}

/// Dials `target` and binds this worker there, sending `ticket` (if any)
/// in RELAY_BIND key 4.
pub(crate) async fn bind(
    cfg: &SessionConfig,
    target: &RelayTarget,
    ticket: Option<Secret>,
) -> Result<Bound, BindError> {
    let stream = connect(target, cfg).await?;
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut read = FramedRead::new(read, FrameCodec::with_max_payload(cfg.limits.max_frame));
    let mut write = FramedWrite::new(write, FrameCodec::new());
    let send = |e: crate::transport::FrameError| BindError::Protocol(format!("write failed: {e}"));
    // INIT carries the version only: never the node token.
    write
        .send(Init::with_version(1).to_frame())
        .await
        .map_err(send)?;
    match next_message(&mut read, cfg.timings.handshake, "ACK").await? {
        Message::Ack(_) => {}
        other => {
            return Err(BindError::Protocol(format!(
                "expected ACK, got {}",
                kind::name(other.kind()).unwrap_or("an unknown frame")
            )));
        }
    }
    let bind = RelayBind {
        worker_id: Some(cfg.worker_id.clone()),
        intent: Some(cfg.intent.clone()),
        models: cfg.models.clone(),
        bind_ticket: ticket,
    };
    write.send(bind.to_frame()).await.map_err(send)?;
    match next_message(&mut read, cfg.timings.handshake, "RELAY_ACK").await? {
        Message::RelayAck(ack) if ack.is_ok() => Ok(Bound {
            read,
            write,
            relay_http_port: ack.relay_http_port.unwrap_or(DEFAULT_RELAY_HTTP_PORT),
        }),
        Message::RelayAck(ack) => Err(BindError::Refused(
            ack.reason.unwrap_or_else(|| "no reason given".into()),
        )),
        other => Err(BindError::Protocol(format!(
            "expected RELAY_ACK, got {}",
            kind::name(other.kind()).unwrap_or("an unknown frame")
        ))),
    }
}

/// Serves a bound session until the relay is lost or `stop` is cancelled.
pub(crate) async fn serve(
    cfg: &SessionConfig,
    bound: Bound,
    stop: &CancellationToken,
    grace: Duration,
) -> Ended {
    let Bound {
        read: mut frames,
        write,
        ..
    } = bound;
    let (out, writer) = spawn_writer(write, WRITE_QUEUE);
    let mut calls = JoinSet::new();
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(
        Instant::now() + cfg.timings.ping_every,
        cfg.timings.ping_every,
    );
    let ended = loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                // Calls in flight finish (the pipeline refuses new ones while draining).
                let _ = tokio::time::timeout(grace, async {
                    while calls.join_next().await.is_some() {}
                }).await;
                let _ = out.send(Close::new(CloseReason::Graceful, "the node is shutting down").to_frame()).await;
                break Ended::Stopped;
            }
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            _ = ping.tick() => {
                if out.send(Echo::default().ping()).await.is_err() {
                    break Ended::Lost("the connection to the relay broke".into());
                }
            }
            () = tokio::time::sleep_until(last_heard + cfg.timings.silence) => {
                break Ended::Lost(format!("nothing from the relay for {} s", cfg.timings.silence.as_secs()));
            }
            next = frames.next() => match next {
                None => break Ended::Lost("the relay closed the connection".into()),
                Some(Err(e)) => {
                    let _ = out.send(Close::new(e.close_reason(), e.to_string()).to_frame()).await;
                    break Ended::Lost(format!("unreadable frame from the relay: {e}"));
                }
                Some(Ok(frame)) => {
                    last_heard = Instant::now();
                    if let Some(lost) = dispatch(cfg, frame, &mut calls, &out).await {
                        break Ended::Lost(lost);
                    }
                }
            },
        }
    };
    if ended != Ended::Stopped {
        // Nobody is left to read the answers.
        calls.abort_all();
    }
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    ended
}

/// Applies one frame from the relay; `Some(why)` ends the session.
async fn dispatch(
    cfg: &SessionConfig,
    frame: Frame,
    calls: &mut JoinSet<()>,
    out: &mpsc::Sender<Frame>,
) -> Option<String> {
    let gone = || Some("the connection to the relay broke".to_owned());
    match frame.kind {
        kind::CALL => {
            let call = match Message::from_frame(&frame) {
                Ok(Message::Call(call)) => call,
                Ok(_) => return None,
                Err(e) => {
                    // As HTTP answers a body that is not JSON: 400, in band,
                    // when the call can be told apart.
                    if let Some(call_id) = call_id_of(&frame.payload) {
                        let answer = Answer::validation_error(400, unreadable_call(&e));
                        if out
                            .send(response_frame(&call_id, &answer, None))
                            .await
                            .is_err()
                        {
                            return gone();
                        }
                    } else {
                        tracing::debug!(reason = %e, "relay CALL without a usable call id ignored");
                    }
                    return None;
                }
            };
            let Some(call_id) = call.call_id.clone() else {
                tracing::debug!("relay CALL without a call id ignored");
                return None;
            };
            if calls.len() >= cfg.limits.max_calls {
                let busy = Answer::refusal(
                    429,
                    crate::wire::ErrorBody::new(
                        "IICP-E021",
                        "too many calls in flight on this relay session",
                    )
                    .with("retry_after_ms", 1000),
                );
                if out
                    .send(response_frame(&call_id, &busy, None))
                    .await
                    .is_err()
                {
                    return gone();
                }
                return None;
            }
            let pipeline = cfg.pipeline.clone();
            let out = out.clone();
            calls.spawn(async move {
                let (answer, task_id) = run_call(&pipeline, call).await;
                let _ = out
                    .send(response_frame(&call_id, &answer, task_id.as_deref()))
                    .await;
            });
            None
        }
        kind::PING => {
            let echo = Echo::decode(&frame.payload).unwrap_or_default();
            if out.send(echo.pong()).await.is_err() {
                return gone();
            }
            None
        }
        kind::CLOSE => Some(match Message::from_frame(&frame) {
            Ok(Message::Close(close)) => format!(
                "the relay closed the session ({})",
                close.reason.as_ref().map_or("no reason", |r| r.as_str())
            ),
            _ => "the relay closed the session".into(),
        }),
        other => {
            tracing::debug!(frame_type = other, "frame from the relay ignored");
            None
        }
    }
}

/// The message of the 400 for a CALL that did not decode; names the key,
/// never the value.
fn unreadable_call(e: &MessageError) -> String {
    match e {
        MessageError::InvalidValue { key: 5, .. } => "CALL key 5 (the task) is not JSON".to_owned(),
        other => format!("CALL unreadable: {other}"),
    }
}

/// The call id of a CALL payload that did not decode as a CALL: key 15 as
/// text or an unsigned integer, at most 128 bytes.
fn call_id_of(payload: &[u8]) -> Option<String> {
    use ciborium::Value as Cbor;
    let Cbor::Map(entries) = ciborium::from_reader::<Cbor, _>(payload).ok()? else {
        return None;
    };
    let (_, id) = entries
        .into_iter()
        .find(|(k, _)| k.as_integer() == Some(15.into()))?;
    let id = match id {
        Cbor::Text(t) => t,
        Cbor::Integer(i) => u64::try_from(i).ok()?.to_string(),
        _ => return None,
    };
    (!id.is_empty() && id.len() <= 128).then_some(id)
}

/// Runs the CALL's task through the pipeline; returns the answer and the
/// task's id (for a refusal's body).
async fn run_call(pipeline: &Pipeline, call: Call) -> (Answer, Option<String>) {
    // Serialising a Value to a Vec cannot fail.
    let body = serde_json::to_vec(&call.payload).unwrap_or_default();
    let mut task = match decode_task(&body) {
        Ok(task) => task,
        Err(refusal) => return (refusal, None),
    };
    let task_id = (!task.task_id.is_empty()).then(|| task.task_id.clone());
    if let Some(left) = call.timeout {
        // The relay stops waiting after key 6 seconds: finish before.
        let left_ms = left.as_millis().min(u128::from(u64::MAX)) as u64;
        let constraints = task
            .constraints
            .get_or_insert_with(TaskConstraints::default);
        let asked = constraints
            .timeout_ms
            .unwrap_or(pipeline.default_timeout.as_millis() as u64);
        constraints.timeout_ms = Some(asked.min(left_ms));
    }
    let inbound = Inbound {
        credentials: credentials(call.auth_token.as_ref()),
        traceparent: call.trace_id.map(traceparent),
        peer: None,
        partials: None,
        relay_text: false,
    };
    (pipeline.run(task, inbound).await, task_id)
}

/// CALL key 11 (the consumer's `Authorization: Bearer`): the bearer, or the
/// consumer token when it has that shape (as the native transport reads it).
fn credentials(token: Option<&Secret>) -> Credentials {
    match token {
        Some(t) if looks_like_consumer_token(t.expose()) => Credentials {
            consumer_token: Some(t.expose().to_owned()),
            bearer: None,
        },
        other => Credentials {
            consumer_token: None,
            bearer: other.cloned(),
        },
    }
}

/// A W3C traceparent for CALL key 13's 16-byte trace id.
fn traceparent(trace_id: [u8; 16]) -> String {
    let span: [u8; 8] = rand::random();
    format!("00-{}-{}-01", hex::encode(trace_id), hex::encode(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_read_from_broken_calls() {
        use ciborium::Value as Cbor;
        let enc = |entries: Vec<(Cbor, Cbor)>| {
            let mut out = Vec::new();
            ciborium::into_writer(&Cbor::Map(entries), &mut out).unwrap();
            out
        };
        assert_eq!(
            call_id_of(&enc(vec![
                (15.into(), "c-1".into()),
                (5.into(), Cbor::Bytes(b"{oops".to_vec()))
            ])),
            Some("c-1".into())
        );
        assert_eq!(
            call_id_of(&enc(vec![(15.into(), 42.into())])),
            Some("42".into())
        );
        assert_eq!(call_id_of(&enc(vec![(15.into(), "".into())])), None);
        assert_eq!(
            call_id_of(&enc(vec![(15.into(), "x".repeat(129).into())])),
            None
        );
        assert_eq!(call_id_of(&enc(vec![(15.into(), (-1).into())])), None);
        assert_eq!(call_id_of(b"\xff\x00garbage"), None);
    }

    #[test]
    fn key_11_is_a_bearer_or_a_consumer_token() {
        let plain = credentials(Some(&Secret::new("node-token")));
        assert_eq!(plain.bearer.unwrap().expose(), "node-token");
        let shaped = format!("abc.{}", "a".repeat(128));
        let consumer = credentials(Some(&Secret::new(shaped.clone())));
        assert_eq!(consumer.consumer_token.as_deref(), Some(shaped.as_str()));
        assert!(consumer.bearer.is_none());
        let none = credentials(None);
        assert!(none.bearer.is_none() && none.consumer_token.is_none());
    }
}
