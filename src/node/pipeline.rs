//! The one task pipeline. A task that arrives over HTTP (and later over the
//! native transport or a relay) goes through `Pipeline::run` (or
//! `Pipeline::run_json`, which decodes JSON bytes first): id rules
//! (`task_id`, `nonce`) → draining check → intent and policy → authorisation
//! → admission (concurrency, QoS) → replay checks (nonce, task id; 503 when
//! a window is full) → confidentiality → handler under a deadline → envelope.
//! Nothing a peer sent is logged before the id rules passed.
//! Transports are adapters in front of this function and add no checks of
//! their own (ARCHITECTURE.md, "One task pipeline"): each reads its bytes
//! (and enforces its size limit), fills an [`Inbound`], and renders the
//! typed [`Answer`].

use super::admission::AdmissionGate;
use super::answer::{Answer, AnswerBody};
use super::contained::{Contained, Panicked};
use super::envelope;
use super::handler::{HandlerError, TaskContext};
use super::inbound::{Inbound, decode_task};
use super::metrics::{NodeMetrics, StatusClass, TaskOutcome};
use super::relayed::{Glance, glance};
use super::replay::ReplayGuard;
use super::runner::Runner;
use super::served::ServedIntents;
use super::stats::{NodeStats, Outcome};
use super::task_auth::Authorizer;
use crate::backends::Output;
use crate::wire::{ErrorBody, Qos, TaskRequest, TaskStatus};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

/// Longest handler budget a task may ask for (`task.json` allows 300 000 ms).
const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(300);
/// Shortest, so a tiny value cannot make every task time out at once.
const MIN_TASK_TIMEOUT: Duration = Duration::from_millis(100);

/// Everything the pipeline needs; shared by all transports.
pub(crate) struct Pipeline {
    pub handler: Runner,
    pub gate: AdmissionGate,
    /// Nonces and task ids seen recently.
    pub replay: ReplayGuard,
    /// The intents served, with their policy verdicts.
    pub intents: ServedIntents,
    pub default_timeout: Duration,
    pub identity: watch::Receiver<Option<String>>,
    pub draining: AtomicBool,
    pub stats: NodeStats,
    /// What `GET /metrics` reports.
    pub metrics: NodeMetrics,
    /// The node's CX key, when it accepts encrypted tasks.
    pub cx: Option<crate::cx::CxKeyPair>,
    /// Who may submit tasks.
    pub auth: Authorizer,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("gate", &self.gate)
            .field("intents", &self.intents)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens `iicp_conf` into the payload; every failure is a JSON error
    /// with its code and no plaintext or key material.
    fn open(
        &self,
        conf: Value,
        task: &TaskRequest,
    ) -> Result<(Value, crate::cx::SharedSecret), Answer> {
        let refuse = |code: &'static str, message: String| {
            self.metrics.cx_failure(code);
            Answer::refusal(400, ErrorBody::new(code, message))
        };
        let Some(key) = &self.cx else {
            return Err(refuse(
                "IICP-CX-02",
                "this node has no CX key; send the payload in plaintext".into(),
            ));
        };
        let conf: crate::cx::IicpConf = serde_json::from_value(conf).map_err(|_| {
            refuse(
                "IICP-CX-02",
                "iicp_conf is missing fields or malformed".into(),
            )
        })?;
        let (plain, ss) = key
            .open_request(&conf, &task.task_id, task.intent.as_str())
            .map_err(|e| refuse(e.code(), e.to_string()))?;
        let payload = serde_json::from_slice(&plain)
            .map_err(|_| refuse("IICP-CX-02", "the decrypted payload is not JSON".into()))?;
        Ok((payload, ss))
    }

    fn node_id(&self) -> Option<String> {
        self.identity.borrow().clone()
    }

    /// Stops admitting tasks (shutdown); running ones finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the node still takes tasks.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Decodes a task from JSON bytes ([`decode_task`]: 400 or 422
    /// `validation_error`) and runs it. Every transport that carries the
    /// task as JSON calls this, so the decoding rules are the same for all.
    pub async fn run_json(&self, body: &[u8], inbound: Inbound) -> Answer {
        match decode_task(body) {
            Ok(task) => self.run(task, inbound).await,
            Err(refusal) => {
                self.count(self.metrics.other_slot(), &refusal);
                refusal
            }
        }
    }

    /// Runs one task through every step and returns the answer to send.
    /// The answer is counted in the metrics; a task whose caller stops
    /// waiting (this future is dropped: the consumer went away) counts as
    /// `cancelled`.
    pub async fn run(&self, task: TaskRequest, inbound: Inbound) -> Answer {
        let slot = self.metrics.slot_of(&task.intent);
        let mut watch = CancelWatch {
            metrics: &self.metrics,
            slot,
            answered: false,
        };
        let answer = self.execute(task, inbound, slot).await;
        watch.answered = true;
        self.count(slot, &answer);
        answer
    }

    /// Counts an answer under its outcome and status class.
    fn count(&self, slot: usize, answer: &Answer) {
        let outcome = match &answer.body {
            AnswerBody::Refusal(_) => TaskOutcome::Refused,
            AnswerBody::Relayed { .. } => TaskOutcome::Success,
            AnswerBody::Envelope(_) if answer.status < 300 => TaskOutcome::Success,
            AnswerBody::Envelope(_) if answer.status == 504 => TaskOutcome::Timeout,
            AnswerBody::Envelope(_) => TaskOutcome::Error,
        };
        self.metrics
            .task(slot, outcome, StatusClass::of(answer.status));
    }

    async fn execute(&self, mut task: TaskRequest, inbound: Inbound, slot: usize) -> Answer {
        let Inbound {
            credentials,
            traceparent,
            peer,
            partials,
            relay_text,
        } = inbound;
        // First: ids are stored, logged and echoed below, so they must be
        // short and plain. The message names the rule, not the value.
        if let Err(e) = task.check_ids() {
            return Answer::validation_error(422, e.to_string());
        }
        if task.nonce.as_deref() == Some("") {
            task.nonce = None;
        }
        if self.is_draining() {
            let body = ErrorBody::new("IICP-E024", "node is shutting down; try another node")
                .with("retry_after_ms", 5000);
            return Answer::refusal(503, body).retry_after(5);
        }
        let Some(policy) = self.intents.verdict(&task.intent) else {
            return Answer::refusal(
                422,
                ErrorBody::new(
                    "unknown_intent",
                    format!("this node does not serve {}", task.intent),
                ),
            );
        };
        if let Err(v) = policy {
            return Answer::refusal(422, ErrorBody::new(v.code(), v.to_string()));
        }
        // PROTOCOL.md §2.4: credentials before any capacity is spent.
        if let Err(body) = self
            .auth
            .check(&task, &credentials, self.node_id().as_deref())
        {
            return Answer::refusal(401, body);
        }
        if task.task_id.is_empty() {
            task.task_id = crate::ids::uuid_v4_string();
        }
        let constraints = task.constraints.clone().unwrap_or_default();
        let qos = constraints.effective_qos();

        let permit = match self.gate.try_admit() {
            Some(permit) => Some(permit),
            None => {
                if qos.is_some_and(Qos::waits_for_slot) {
                    self.metrics.admission_wait();
                }
                self.gate.admit(qos).await
            }
        };
        let Some(_permit) = permit else {
            self.metrics.admission_refused();
            let body = ErrorBody::new("IICP-E021", "capacity_exceeded")
                .with("qos_class", qos.unwrap_or(Qos::BestEffort).as_str())
                .with("retry_after_ms", 2000);
            return Answer::refusal(429, body).retry_after(2);
        };
        if let Err(refusal) = self.replay.admit(task.nonce.as_deref(), &task.task_id) {
            let (status, body, retry_after_s) = refusal.error();
            return Answer {
                retry_after_s,
                ..Answer::refusal(status, body)
            };
        }
        // PROTOCOL.md §2.5: open an encrypted payload; keep the shared
        // secret for an encrypted answer.
        let mut shared = None;
        if let Some(conf) = task.iicp_conf.take() {
            match self.open(conf, &task) {
                Ok((payload, ss)) => {
                    task.payload = payload;
                    shared = Some(ss);
                }
                Err(answer) => return answer,
            }
        }
        let seal_answer = task.cx_response_encryption.as_deref() == Some("required");
        if seal_answer && shared.is_none() {
            self.metrics.cx_failure("IICP-CX-03");
            return Answer::refusal(
                400,
                ErrorBody::new(
                    "IICP-CX-03",
                    "an encrypted response needs an encrypted request",
                ),
            );
        }

        let budget = constraints
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.default_timeout)
            .clamp(MIN_TASK_TIMEOUT, MAX_TASK_TIMEOUT);
        let started = Instant::now();
        let ctx = TaskContext {
            task_id: task.task_id.clone(),
            intent: task.intent.clone(),
            traceparent,
            deadline: started + budget,
            qos,
            node_id: self.node_id(),
            // A partial travels in plaintext: none for a confidential task.
            partials: partials.filter(|_| shared.is_none()),
        };
        let task_id = task.task_id.clone();
        let intent = task.intent.clone();
        // Per task, a success is logged at debug (its span too): at the
        // default level a busy node writes no line per task (GET /metrics
        // counts them). Failures are warnings that name the task themselves.
        let span = tracing::debug_span!("iicp.task.execute", iicp.task_id = %task_id, iicp.intent = %intent, peer = ?peer);
        // The handler is polled in place (`Contained`): a panic is
        // contained, and on timeout its future is dropped, which aborts it;
        // the admission slot is released either way. When the caller stops
        // waiting (the consumer went away and the transport dropped this
        // future) the handler is dropped with it, and with it the model
        // server call.
        let running = Contained::new(self.handler.run(task, ctx).instrument(span.clone()));
        // A sealed answer encrypts the envelope's JSON, so it is built of values.
        let relay_text = relay_text && !seal_answer;
        let outcome = tokio::time::timeout(budget, running)
            .await
            .map(|ran| ran.map(|output| output.and_then(|o| settle(o, relay_text))));
        let elapsed = started.elapsed();
        let latency_ms = elapsed.as_millis() as u64;
        self.metrics.latency(slot, elapsed);
        let node_id = self.node_id();
        let _enter = span.enter();
        match outcome {
            Ok(Ok(Ok(Settled::Text(text, glance)))) => {
                self.stats.record(Outcome::Success, latency_ms);
                tracing::debug!(latency_ms, relayed = true, "task completed");
                envelope::relayed(&task_id, text, glance, latency_ms, node_id)
            }
            Ok(Ok(Ok(Settled::Value(value)))) => {
                self.stats.record(Outcome::Success, latency_ms);
                tracing::debug!(latency_ms, encrypted = seal_answer, "task completed");
                let response = envelope::success(&task_id, value, latency_ms, node_id);
                match (seal_answer, &shared) {
                    (true, Some(ss)) => {
                        Answer::envelope(200, envelope::sealed(&task_id, &response, ss))
                    }
                    _ => Answer::envelope(200, response),
                }
            }
            Ok(Ok(Err(e))) => {
                self.stats.record(Outcome::Failed, latency_ms);
                if e.code == "backend_error" {
                    self.metrics.backend_error();
                }
                tracing::warn!(iicp.task_id = %task_id, iicp.intent = %intent, latency_ms, code = %e.code, "task failed");
                let (status, kind) = if e.status == 504 {
                    (504, TaskStatus::Timeout)
                } else {
                    (e.status.clamp(400, 599), TaskStatus::Error)
                };
                let response = envelope::failure(
                    &task_id,
                    kind,
                    &e.code,
                    &e.message,
                    Some(latency_ms),
                    node_id,
                );
                Answer::envelope(status, response)
            }
            Ok(Err(Panicked)) => {
                self.stats.record(Outcome::Failed, latency_ms);
                tracing::error!(
                    iicp.task_id = %task_id,
                    iicp.intent = %intent,
                    latency_ms,
                    "task handler panicked"
                );
                let response = envelope::failure(
                    &task_id,
                    TaskStatus::Error,
                    "handler_error",
                    "the task handler crashed",
                    Some(latency_ms),
                    node_id,
                );
                Answer::envelope(500, response)
            }
            Err(_elapsed) => {
                self.stats.record(Outcome::TimedOut, latency_ms);
                tracing::warn!(
                    iicp.task_id = %task_id,
                    iicp.intent = %intent,
                    budget_ms = budget.as_millis() as u64,
                    "task timed out"
                );
                let response = envelope::failure(
                    &task_id,
                    TaskStatus::Timeout,
                    "task_timeout",
                    &format!("the task did not finish within {} ms", budget.as_millis()),
                    Some(latency_ms),
                    node_id,
                );
                Answer::envelope(504, response)
            }
        }
    }
}

/// A handler's result, ready for its envelope.
enum Settled {
    /// A value (every handler's, and an engine's answer that is read).
    Value(Value),
    /// An engine's JSON answer relayed as it came, and what the envelope
    /// takes from it.
    Text(bytes::Bytes, Glance),
}

/// An engine's JSON text is relayed when the transport allows it and the
/// text passes `relayed.rs`'s checks; otherwise it is parsed, and an answer
/// that is not JSON fails as `backend_error` (502), as a parsed one does.
fn settle(output: Output, relay_text: bool) -> Result<Settled, HandlerError> {
    match output {
        Output::Value(value) => Ok(Settled::Value(value)),
        Output::Json(text) => match relay_text.then(|| glance(&text)).flatten() {
            Some(glance) => Ok(Settled::Text(text, glance)),
            None => Ok(Settled::Value(Output::Json(text).into_value()?)),
        },
    }
}

/// Counts a task as `cancelled` when [`Pipeline::run`] is dropped before
/// it answered (the transport stopped waiting because the consumer left;
/// the handler is aborted with it).
struct CancelWatch<'a> {
    metrics: &'a NodeMetrics,
    slot: usize,
    answered: bool,
}

impl Drop for CancelWatch<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.metrics
                .task(self.slot, TaskOutcome::Cancelled, StatusClass::None);
        }
    }
}
