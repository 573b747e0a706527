//! One connection on the relay's accept port, from INIT to its end:
//!
//! INIT → ACK, RELAY_BIND → RELAY_ACK (both within the native init
//! timeout; PINGs before the bind are answered), then the bound session:
//! CALLs go out through a bounded write queue (`Session::call`), RESPONSEs
//! come back and are matched by call id, PINGs get PONGs, the relay PINGs
//! every `ping_interval`. CLOSE, end of stream, a frame the codec refuses
//! or `silence_timeout` without a frame ends the session and fails its
//! waiting calls. A RELAY_BIND that does not decode gets RELAY_ACK
//! `malformed bind: …`; any other frame before the bind gets CLOSE
//! `protocol_error`. Nothing here logs a payload or a ticket.

use super::Relay;
use super::admission::{BindRequest, Refusal};
use super::reply::{self, Decoded, WorkerAnswer};
use super::sessions::{Link, Session};
use crate::transport::spawn_writer;
use crate::transport::{
    Ack, Close, CloseReason, Echo, Frame, FrameCodec, FrameError, Init, RelayAck, kind,
};
use futures_util::StreamExt;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// Frames queued for a worker's writer; a call waits for room (within its
/// deadline) when it is full.
const WRITE_QUEUE: usize = 64;

type Frames = FramedRead<OwnedReadHalf, FrameCodec>;

/// How a connection ends before it is bound.
enum End {
    /// Send this CLOSE.
    Close(Close),
    /// Send RELAY_ACK error (for this worker id, when known).
    Refuse(Option<String>, Refusal),
    /// The peer left or was dropped: nothing to send.
    Silent,
}

/// A connection of one worker.
pub(crate) struct Conn<'a> {
    pub relay: &'a Relay,
    pub peer: SocketAddr,
    pub stop: CancellationToken,
}

impl Conn<'_> {
    /// Serves the connection until it ends. `dropped` is cancelled when the
    /// listener drops it before it binds; `bound` is called once it is.
    pub(crate) async fn serve(
        self,
        stream: TcpStream,
        dropped: CancellationToken,
        bound: impl FnOnce(),
    ) {
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(
            read,
            FrameCodec::with_max_payload(self.relay.native.max_frame),
        );
        let (out, writer) = spawn_writer(FramedWrite::new(write, FrameCodec::new()), WRITE_QUEUE);
        let close = match self.bind(&mut frames, &out, &dropped).await {
            Ok(session) => {
                bound();
                self.run(&session, &mut frames, &out).await
            }
            Err(End::Close(close)) => Some(close),
            Err(End::Refuse(worker_id, refusal)) => {
                if !matches!(refusal, Refusal::Malformed(_)) {
                    tracing::info!(
                        worker_id = worker_id.as_deref().unwrap_or(""),
                        source = %self.peer.ip(),
                        reason = %refusal.reason(),
                        "relay: bind refused"
                    );
                }
                let ack = RelayAck::error(worker_id.as_deref().unwrap_or(""), &refusal.reason());
                let _ = out.send(ack.to_frame()).await;
                None
            }
            Err(End::Silent) => None,
        };
        if let Some(close) = close {
            let _ = out.send(close.to_frame()).await;
        }
        drop(out);
        let _ = writer.await;
    }

    /// The handshake and the admission, within the init timeout (the
    /// ticket check, which may fetch the directory's key, has its own).
    async fn bind(
        &self,
        frames: &mut Frames,
        out: &mpsc::Sender<Frame>,
        dropped: &CancellationToken,
    ) -> Result<Arc<Session>, End> {
        let deadline = Instant::now() + self.relay.native.init_timeout;
        let request = tokio::select! {
            biased;
            () = self.stop.cancelled() => {
                return Err(End::Close(Close::new(CloseReason::Graceful, "the relay is shutting down")));
            }
            () = dropped.cancelled() => return Err(End::Silent),
            r = tokio::time::timeout_at(deadline, self.handshake(frames, out)) => match r {
                Ok(r) => r?,
                Err(_) => {
                    return Err(End::Close(Close::new(
                        CloseReason::ProtocolError,
                        "no INIT and RELAY_BIND in time",
                    )));
                }
            },
        };
        let refuse = |r: Refusal| End::Refuse(Some(request.worker_id.clone()), r);
        let claims = tokio::select! {
            () = dropped.cancelled() => return Err(End::Silent),
            r = self.relay.tickets.check(request.ticket.as_ref(), &request.worker_id) => r.map_err(refuse)?,
        };
        let link = Link::Tcp { out: out.clone() };
        let session = Session::new(&request, self.peer.ip(), link, &self.relay.limits);
        let session = self
            .relay
            .registry
            .admit(session, claims.as_ref(), &self.relay.tickets)
            .map_err(refuse)?;
        let ack = RelayAck::ok(&request.worker_id, self.relay.http_port);
        if out.send(ack.to_frame()).await.is_err() {
            self.relay.registry.remove(&session);
            return Err(End::Silent);
        }
        tracing::info!(
            worker_id = %session.worker_id,
            source = %self.peer.ip(),
            transport = "tcp",
            ticket = claims.is_some(),
            "relay: worker bound"
        );
        Ok(session)
    }

    /// INIT → ACK, then the RELAY_BIND.
    async fn handshake(
        &self,
        frames: &mut Frames,
        out: &mpsc::Sender<Frame>,
    ) -> Result<BindRequest, End> {
        let frame = next_frame(frames).await?;
        if frame.kind != kind::INIT {
            return Err(End::Close(Close::new(
                CloseReason::ProtocolError,
                "the first frame must be INIT",
            )));
        }
        let init = Init::decode(&frame.payload)
            .map_err(|e| End::Close(Close::new(e.close_reason(), e.to_string())))?;
        let Some(version) = init.choose_version(1, 1) else {
            return Err(End::Close(Close::new(
                CloseReason::VersionMismatch,
                "this relay speaks version 1",
            )));
        };
        let ack = Ack {
            version: Some(version),
            node_id: self.relay.identity.borrow().clone(),
        };
        out.send(ack.to_frame()).await.map_err(|_| End::Silent)?;
        let frame = loop {
            let frame = next_frame(frames).await?;
            match frame.kind {
                kind::PING => {
                    let echo = Echo::decode(&frame.payload).unwrap_or_default();
                    out.send(echo.pong()).await.map_err(|_| End::Silent)?;
                }
                kind::PONG => {}
                kind::CLOSE => return Err(End::Silent),
                kind::RELAY_BIND => break frame,
                _ => {
                    return Err(End::Close(Close::new(
                        CloseReason::ProtocolError,
                        "a relay takes RELAY_BIND after INIT, before anything else",
                    )));
                }
            }
        };
        BindRequest::from_relay_bind(&frame.payload).map_err(|(id, r)| End::Refuse(id, r))
    }

    /// The bound session until it ends; the CLOSE to send, if any.
    async fn run(
        &self,
        session: &Arc<Session>,
        frames: &mut Frames,
        out: &mpsc::Sender<Frame>,
    ) -> Option<Close> {
        let every = self.relay.limits.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        let (close, why) = loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => {
                    break (Some(Close::new(CloseReason::Graceful, "the relay is shutting down")), "shutdown");
                }
                () = session.ended.cancelled() => {
                    break (Some(Close::new(CloseReason::Graceful, "the session was ended")), "ended");
                }
                () = tokio::time::sleep_until(session.dead_at()) => {
                    if !session.is_alive() {
                        break (Some(Close::new(CloseReason::IdleTimeout, "nothing heard for too long")), "silent");
                    }
                }
                _ = ping.tick() => {
                    // Best effort: a full queue already shows the link is busy.
                    let _ = out.try_send(Echo::default().ping());
                }
                next = frames.next() => match next {
                    None => break (None, "disconnected"),
                    Some(Err(e)) => {
                        tracing::debug!(worker_id = %session.worker_id, reason = e.reason(), "relay: frame refused");
                        break (close_for(&e), "bad frame");
                    }
                    Some(Ok(frame)) => {
                        session.touch();
                        if !self.on_frame(session, frame, out).await {
                            break (None, "closed by the worker");
                        }
                    }
                },
            }
        };
        if self.relay.registry.remove(session) {
            tracing::info!(
                worker_id = %session.worker_id,
                source = %self.peer.ip(),
                transport = "tcp",
                why,
                "relay: worker unbound"
            );
        }
        close
    }

    /// Applies one frame of a bound worker; false when it ends the session.
    async fn on_frame(&self, session: &Session, frame: Frame, out: &mpsc::Sender<Frame>) -> bool {
        match frame.kind {
            kind::PING => {
                let echo = Echo::decode(&frame.payload).unwrap_or_default();
                out.send(echo.pong()).await.is_ok()
            }
            kind::RESPONSE => {
                match reply::decode(&frame.payload) {
                    Ok(Decoded::Answer(call_id, answer)) => session.resolve(&call_id, answer),
                    Ok(Decoded::Partial) => {}
                    Ok(Decoded::Unreadable(call_id, e)) => {
                        tracing::debug!(worker_id = %session.worker_id, error = %e, "relay: unreadable answer");
                        session.resolve(&call_id, unreadable());
                    }
                    Err(e) => {
                        tracing::debug!(worker_id = %session.worker_id, error = %e, "relay: RESPONSE without a call id");
                    }
                }
                true
            }
            kind::CLOSE => false,
            // PONG keeps the session alive (touched above); anything else a
            // worker has no business sending is ignored, as the peers do.
            _ => true,
        }
    }
}

/// The answer a consumer gets when the worker's RESPONSE cannot be read.
fn unreadable() -> WorkerAnswer {
    WorkerAnswer {
        status: Some(502),
        body: Some(json!({"error": {
            "code": "IICP-E031",
            "message": "the worker's answer could not be read",
        }})),
        error: None,
    }
}

fn close_for(e: &FrameError) -> Option<Close> {
    match e {
        FrameError::Io(_) => None,
        e => Some(Close::new(e.close_reason(), e.to_string())),
    }
}

async fn next_frame(frames: &mut Frames) -> Result<Frame, End> {
    match frames.next().await {
        None => Err(End::Silent),
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e)) => Err(close_for(&e).map_or(End::Silent, End::Close)),
    }
}
