//! The session registry: one entry per bound worker id, TCP and long-poll
//! alike, with the relay rules applied at one place under one lock: an
//! alive session is never displaced, new binds are rate-limited per source
//! (a rebind from the worker's last source is exempt), the number of
//! sessions is capped (dead sessions are dropped first), a ticket's `jti`
//! is consumed only when the bind is accepted.
//!
//! A [`Session`] holds the calls waiting for the worker's answer (bounded),
//! each matched by its call id; when the session ends they fail at once.

use super::admission::{BindRate, BindRequest, Refusal};
use super::tickets::Tickets;
use crate::Secret;
use crate::relay::RelayLimits;
use crate::token::RelayTicketClaims;
use crate::transport::{Call, Frame};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::reply::WorkerAnswer;

/// How the relay reaches a worker.
pub(crate) enum Link {
    /// A bound native connection: frames for its writer.
    Tcp { out: mpsc::Sender<Frame> },
    /// An HTTP long-poll worker: calls wait in a queue for its next pull.
    Poll(PollLink),
}

/// The long-poll side of a session.
pub(crate) struct PollLink {
    /// Compared in constant time, never logged.
    pub token: Secret,
    pub queue: mpsc::Sender<QueuedCall>,
    pub pulls: tokio::sync::Mutex<mpsc::Receiver<QueuedCall>>,
}

/// A call waiting for a long-poll worker's pull.
#[derive(Debug)]
pub(crate) struct QueuedCall {
    pub call_id: String,
    pub task: Value,
}

/// What a call to a worker needs besides the task.
#[derive(Debug, Default)]
pub(crate) struct CallMeta {
    /// The consumer's bearer token (CALL key 11).
    pub auth_token: Option<Secret>,
    /// The consumer's trace id (CALL key 13).
    pub trace_id: Option<[u8; 16]>,
}

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallError {
    /// Too many calls already wait for this worker.
    Busy,
    /// The session ended before the answer.
    Gone,
    /// The deadline passed.
    Timeout,
}

/// One bound worker.
pub(crate) struct Session {
    pub worker_id: String,
    pub intent: Option<String>,
    pub models: Vec<String>,
    /// The address it bound from.
    pub source: IpAddr,
    pub link: Link,
    pending: Mutex<HashMap<String, oneshot::Sender<WorkerAnswer>>>,
    last_seen: Mutex<Instant>,
    /// Cancelled when the session ends (unbound, replaced, dead, shutdown).
    pub ended: CancellationToken,
    max_pending: usize,
    silence: Duration,
}

impl Session {
    pub(crate) fn new(req: &BindRequest, source: IpAddr, link: Link, limits: &RelayLimits) -> Self {
        Self {
            worker_id: req.worker_id.clone(),
            intent: req.intent.clone(),
            models: req.models.clone(),
            source,
            link,
            pending: Mutex::new(HashMap::new()),
            last_seen: Mutex::new(Instant::now()),
            ended: CancellationToken::new(),
            max_pending: limits.max_pending_calls,
            silence: limits.silence_timeout,
        }
    }

    /// The worker was heard from (a frame, a pull).
    pub(crate) fn touch(&self) {
        *crate::sync::lock(&self.last_seen) = Instant::now();
    }

    /// When the session counts as dead if nothing is heard before.
    pub(crate) fn dead_at(&self) -> Instant {
        *crate::sync::lock(&self.last_seen) + self.silence
    }

    /// Not ended and heard from within the silence timeout.
    pub(crate) fn is_alive(&self) -> bool {
        !self.ended.is_cancelled() && Instant::now() < self.dead_at()
    }

    /// Ends the session: every waiting call fails (502 to its consumer).
    pub(crate) fn end(&self) {
        self.ended.cancel();
        crate::sync::lock(&self.pending).clear();
    }

    /// Whether call `call_id` still waits for an answer.
    pub(crate) fn is_pending(&self, call_id: &str) -> bool {
        crate::sync::lock(&self.pending).contains_key(call_id)
    }

    /// Hands the worker's answer to the waiting call (if it still waits).
    pub(crate) fn resolve(&self, call_id: &str, answer: WorkerAnswer) {
        let waiting = crate::sync::lock(&self.pending).remove(call_id);
        if let Some(tx) = waiting {
            let _ = tx.send(answer);
        }
    }

    /// Sends `task` (the consumer's whole envelope) to the worker and waits
    /// for its answer until `deadline`. The call is forgotten when this
    /// future ends or is dropped (the consumer went away).
    pub(crate) async fn call(
        &self,
        task: Value,
        meta: CallMeta,
        deadline: Instant,
    ) -> Result<WorkerAnswer, CallError> {
        if self.ended.is_cancelled() {
            return Err(CallError::Gone);
        }
        let call_id = crate::ids::uuid_v4_string();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = crate::sync::lock(&self.pending);
            if pending.len() >= self.max_pending {
                return Err(CallError::Busy);
            }
            pending.insert(call_id.clone(), tx);
        }
        let _forget = Forget {
            session: self,
            call_id: &call_id,
        };
        let sent = match &self.link {
            Link::Tcp { out } => {
                let call = Call {
                    call_id: Some(call_id.clone()),
                    payload: task,
                    timeout: Some(deadline.saturating_duration_since(Instant::now())),
                    auth_token: meta.auth_token,
                    trace_id: meta.trace_id,
                    ..Call::default()
                };
                tokio::time::timeout_at(deadline, out.send(call.to_frame()))
                    .await
                    .map(|r| r.map_err(drop))
            }
            Link::Poll(poll) => {
                let queued = QueuedCall {
                    call_id: call_id.clone(),
                    task,
                };
                tokio::time::timeout_at(deadline, poll.queue.send(queued))
                    .await
                    .map(|r| r.map_err(drop))
            }
        };
        match sent {
            Err(_) => return Err(CallError::Timeout),
            Ok(Err(_)) => return Err(CallError::Gone),
            Ok(Ok(())) => {}
        }
        tokio::select! {
            answer = rx => answer.map_err(|_| CallError::Gone),
            () = tokio::time::sleep_until(deadline) => Err(CallError::Timeout),
            () = self.ended.cancelled() => Err(CallError::Gone),
        }
    }
}

/// Removes a call from the pending table when its wait ends.
struct Forget<'a> {
    session: &'a Session,
    call_id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        crate::sync::lock(&self.session.pending).remove(self.call_id);
    }
}

/// Every bound worker, by worker id.
pub(crate) struct Registry {
    limits: RelayLimits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Arc<Session>>,
    rate: BindRate,
    /// Worker id → the source it was bound from and when it ended, for
    /// sessions that ended within the bind window: a reconnect from there
    /// is a rebind, exempt from the bind rate.
    ended: HashMap<String, (IpAddr, Instant)>,
}

/// Ended sessions remembered before expired entries are swept; beyond
/// [`MAX_ENDED`] no more are remembered (their reconnects count as new).
const ENDED_SWEEP_AT: usize = 4096;
const MAX_ENDED: usize = 65_536;

impl Inner {
    fn forget(&mut self, session: &Session, window: Duration) {
        let now = Instant::now();
        if self.ended.len() >= ENDED_SWEEP_AT {
            self.ended
                .retain(|_, (_, at)| now.duration_since(*at) < window);
        }
        if self.ended.len() < MAX_ENDED {
            self.ended
                .insert(session.worker_id.clone(), (session.source, now));
        }
    }

    fn is_rebind(&self, worker_id: &str, source: IpAddr, window: Duration) -> bool {
        self.sessions
            .get(worker_id)
            .is_some_and(|s| s.source == source)
            || self
                .ended
                .get(worker_id)
                .is_some_and(|(from, at)| *from == source && at.elapsed() < window)
    }
}

impl Registry {
    pub(crate) fn new(limits: RelayLimits) -> Self {
        Self {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Applies the relay rules to a bind whose ticket (if any) checked out,
    /// and on success registers the new session (ending a dead one it
    /// replaces).
    pub(crate) fn admit(
        &self,
        session: Session,
        claims: Option<&RelayTicketClaims>,
        tickets: &Tickets,
    ) -> Result<Arc<Session>, Refusal> {
        let mut inner = crate::sync::lock(&self.inner);
        let existing = inner.sessions.get(&session.worker_id).cloned();
        if existing.as_ref().is_some_and(|e| e.is_alive()) {
            return Err(Refusal::AliveSession);
        }
        let window = self.limits.bind_window;
        let rebind = inner.is_rebind(&session.worker_id, session.source, window);
        if !rebind
            && !inner.rate.allow(
                session.source,
                self.limits.binds_per_window,
                self.limits.bind_window,
            )
        {
            return Err(Refusal::RateLimited);
        }
        if inner.sessions.len() >= self.limits.max_sessions {
            self.drop_dead(&mut inner);
        }
        let taken =
            inner.sessions.len() - usize::from(inner.sessions.contains_key(&session.worker_id));
        if taken >= self.limits.max_sessions {
            return Err(Refusal::Capacity);
        }
        if let Some(claims) = claims {
            tickets.consume(claims)?;
        }
        let session = Arc::new(session);
        if let Some(old) = inner
            .sessions
            .insert(session.worker_id.clone(), session.clone())
        {
            old.end();
        }
        Ok(session)
    }

    /// The session of `worker_id`, if it is alive.
    pub(crate) fn get(&self, worker_id: &str) -> Option<Arc<Session>> {
        let inner = crate::sync::lock(&self.inner);
        inner
            .sessions
            .get(worker_id)
            .filter(|s| s.is_alive())
            .cloned()
    }

    /// The long-poll session holding `token` (compared in constant time).
    pub(crate) fn by_token(&self, token: &str) -> Option<Arc<Session>> {
        use subtle::ConstantTimeEq;
        let inner = crate::sync::lock(&self.inner);
        let mut found = None;
        for session in inner.sessions.values() {
            if let Link::Poll(poll) = &session.link {
                let same: bool = poll
                    .token
                    .expose()
                    .as_bytes()
                    .ct_eq(token.as_bytes())
                    .into();
                if same {
                    found = Some(session.clone());
                }
            }
        }
        found.filter(|s| !s.ended.is_cancelled())
    }

    /// Removes `session` (if it is still the one bound for its worker id)
    /// and ends it. True when it was removed here.
    pub(crate) fn remove(&self, session: &Arc<Session>) -> bool {
        let mut inner = crate::sync::lock(&self.inner);
        let ours = inner
            .sessions
            .get(&session.worker_id)
            .is_some_and(|s| Arc::ptr_eq(s, session));
        if ours {
            inner.sessions.remove(&session.worker_id);
            inner.forget(session, self.limits.bind_window);
        }
        drop(inner);
        session.end();
        ours
    }

    /// Ends and removes every dead session; returns them for logging.
    pub(crate) fn sweep(&self) -> Vec<Arc<Session>> {
        let mut inner = crate::sync::lock(&self.inner);
        self.drop_dead(&mut inner)
    }

    fn drop_dead(&self, inner: &mut Inner) -> Vec<Arc<Session>> {
        let dead: Vec<_> = inner
            .sessions
            .values()
            .filter(|s| !s.is_alive())
            .cloned()
            .collect();
        for session in &dead {
            inner.sessions.remove(&session.worker_id);
            inner.forget(session, self.limits.bind_window);
            session.end();
        }
        dead
    }

    /// Ends every session (shutdown).
    pub(crate) fn end_all(&self) {
        let mut inner = crate::sync::lock(&self.inner);
        for (_, session) in inner.sessions.drain() {
            session.end();
        }
    }
}
