//! The directory lifecycle (PROTOCOL.md §1.3-§1.5, §2.6): register (retrying
//! with backoff while the directory is down; the node serves meanwhile),
//! heartbeat every `next_heartbeat_ms` answering the challenge, re-register
//! on 401/404/410 (same `node_id`, rotating the token), and deregister on
//! shutdown with the *current* token. Every directory call has a time limit
//! and races the stop, so a directory that never answers neither hangs the
//! loop nor delays shutdown; what the loop logs goes through
//! `directory_link.rs` (one line per change of state, not per attempt).
//!
//! One task owns all of this state — node id, token, HMAC key, challenge,
//! the unacknowledged metrics batch — so no two code paths can disagree
//! about it (ARCHITECTURE.md, "One lifecycle loop").

use super::capabilities::capabilities;
use super::directory_link::{Link, Step};
use super::models::AdvertisedModels;
use super::pipeline::Pipeline;
use super::stats::StatsDelta;
use crate::backends::Backend;
use crate::error::{IicpError, Result};
use crate::outbound::{error_from_response, exchange};
use crate::secret::Secret;
use crate::token::DirectoryPublicKey;
use crate::wire::heartbeat::challenge_response;
use crate::wire::{
    HeartbeatMetrics, HeartbeatRequest, IntentUrn, Pong, RegisterAck, RegisterRequest,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bounds on the interval a directory may ask for.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// Registration retry backoff: 1 s doubling to 30 s.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Time limit of each directory call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of the deregistration at shutdown (shutdown should not hang).
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before the next heartbeat after one failed for another reason than
/// a rejection (network, 5xx): sooner than a full interval.
const RETRY_FAILED_BEAT: Duration = Duration::from_secs(5);
/// How errors name the peer.
const DIRECTORY: &str = "the directory";
/// Time limit of the model probe before each heartbeat.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the lifecycle needs to run.
pub(crate) struct LifecycleParams {
    pub http: reqwest::Client,
    pub directory_url: String,
    /// The registration to send (endpoint, capabilities, limits, …).
    pub registration: RegisterRequest,
    pub node_token: Option<Secret>,
    pub identity: watch::Sender<Option<String>>,
    /// The last registration failure (for `RunningNode::registered_within`).
    pub registration_error: watch::Sender<Option<String>>,
    pub pipeline: Arc<Pipeline>,
    pub health_models: Option<Vec<String>>,
    /// Re-probed before every heartbeat: its models become `health_models`,
    /// and a changed model list re-registers with new capabilities and
    /// becomes the advertised list tasks are held to.
    pub model_probe: Option<(Arc<dyn Backend>, AdvertisedModels)>,
    /// The intent capabilities are built for.
    pub intent: IntentUrn,
    /// The endpoint to advertise and its transport fields; a new value
    /// (the router's external address changed, the relay worker bound at a
    /// relay) re-registers the node with it.
    pub endpoint_updates: watch::Receiver<crate::nat::Advertised>,
    /// Register only once `endpoint_updates` has a new value: a relay
    /// worker's node has nothing to advertise before its first bind (or
    /// the provisional relay endpoint it publishes when the relay wants a
    /// ticket). Stopped before then, it never registers.
    pub hold_until_advertised: bool,
    /// Counts successful registrations (the relay worker waits for one
    /// before it asks for a bind ticket).
    pub registrations: watch::Sender<u64>,
    /// Notified when a registration fails, so the reachability keeper
    /// checks the router at once (a lost mapping or a new address may be
    /// why).
    pub registration_failed: Arc<tokio::sync::Notify>,
}

/// The directory's view of this node, owned by the loop.
struct Registered {
    node_id: String,
    token: Secret,
    hmac_key: Option<Secret>,
    challenge: Option<String>,
}

/// Why a heartbeat did not get a PONG.
enum BeatError {
    /// The directory no longer knows this registration: register again.
    Rejected(u16),
    /// Anything else: try again at the next beat.
    Other(IicpError),
}

struct Lifecycle {
    p: LifecycleParams,
    node_id: Option<String>,
    last_token: Option<Secret>,
    pending_batch: Option<(String, StatsDelta)>,
}

/// Runs until `cancel`, then deregisters.
pub(crate) async fn run(params: LifecycleParams, cancel: CancellationToken) {
    let mut lc = Lifecycle {
        node_id: params.registration.node_id.clone(),
        last_token: params.node_token.clone(),
        pending_batch: None,
        p: params,
    };
    let mut registered: Option<Registered> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut next_beat = Instant::now();
    let native = lc.p.registration.transport_endpoint.is_some();
    if lc.p.hold_until_advertised {
        tokio::select! {
            changed = lc.p.endpoint_updates.changed() => if changed.is_err() { return },
            () = cancel.cancelled() => return,
        }
        let advertised = lc.p.endpoint_updates.borrow_and_update().clone();
        lc.advertise(advertised, native);
    }
    let mut link = Link::default();
    loop {
        if registered.is_none() {
            // A directory that accepts the connection and never answers is
            // cut off by the call's time limit; a stop does not wait for it.
            let attempt = tokio::select! {
                attempt = lc.register() => attempt,
                () = cancel.cancelled() => return,
            };
            match attempt {
                Ok(r) => {
                    link.registered(&r.node_id, &lc.p.directory_url);
                    lc.p.identity.send_replace(Some(r.node_id.clone()));
                    lc.p.registration_error.send_replace(None);
                    lc.p.registrations.send_modify(|n| *n += 1);
                    registered = Some(r);
                    backoff = FIRST_BACKOFF;
                    next_beat = Instant::now(); // first heartbeat at once (SDK-NODE-01)
                }
                Err(e) => {
                    link.failed(Step::Register, &e, backoff);
                    lc.p.registration_error.send_replace(Some(e.to_string()));
                    lc.p.registration_failed.notify_one();
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_beat) => {}
            Ok(()) = lc.p.endpoint_updates.changed() => {
                let advertised = lc.p.endpoint_updates.borrow_and_update().clone();
                tracing::info!(endpoint = %advertised.endpoint, "the endpoint changed; registering again");
                lc.advertise(advertised, native);
                registered = None;
                continue;
            }
            () = cancel.cancelled() => break,
        }
        if lc.refresh_models().await {
            tracing::info!(
                "the backend's model list changed; registering again with new capabilities"
            );
            registered = None;
            continue;
        }
        let Some(reg) = registered.as_mut() else {
            continue;
        };
        let beat = tokio::select! {
            beat = lc.heartbeat(reg) => beat,
            () = cancel.cancelled() => break,
        };
        match beat {
            Ok(interval) => {
                link.beat();
                next_beat = Instant::now() + interval;
            }
            Err(BeatError::Rejected(status)) => {
                link.rejected(status);
                registered = None;
            }
            Err(BeatError::Other(e)) => {
                link.failed(Step::Heartbeat, &e, RETRY_FAILED_BEAT);
                next_beat = Instant::now() + RETRY_FAILED_BEAT;
            }
        }
    }
    if let Some(reg) = registered {
        match lc.deregister(&reg).await {
            Ok(()) => tracing::info!(node_id = ?reg.node_id, "deregistered from the directory"),
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), "deregistration failed; the directory drops the node after 90 s")
            }
        }
    }
}

impl Lifecycle {
    /// Takes a new endpoint and its transport fields into the registration.
    /// The native `transport_endpoint` follows a direct endpoint (when the
    /// node serves the native transport); a relayed node has none (the
    /// relay speaks HTTP to consumers).
    fn advertise(&mut self, advertised: crate::nat::Advertised, native: bool) {
        let r = &mut self.p.registration;
        r.transport_endpoint = (native && !advertised.is_relayed())
            .then(|| super::transport_endpoint_for(&advertised.endpoint))
            .flatten();
        r.transport_method = advertised.transport_method;
        r.nat_type = advertised.nat_type;
        r.transport_metadata = advertised.transport_metadata;
        r.endpoint = advertised.endpoint;
    }

    /// Probes the backend's models into `health_models`; true when the list
    /// differs from the registered capabilities (time to re-register). A
    /// failed probe reports no models, which hides the node until the
    /// backend is back.
    async fn refresh_models(&mut self) -> bool {
        let Some((probe, advertised)) = self.p.model_probe.clone() else {
            return false;
        };
        let models = match tokio::time::timeout(PROBE_TIMEOUT, probe.probe()).await {
            Ok(Ok((models, _))) => models,
            Ok(Err(e)) => {
                tracing::warn!(error = ?e.to_string(), "backend model probe failed; advertising no models");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("backend model probe timed out; advertising no models");
                Vec::new()
            }
        };
        let registered: Vec<&String> = self
            .p
            .registration
            .capabilities
            .iter()
            .flat_map(|c| &c.models)
            .collect();
        let changed = !models.is_empty()
            && (models.len() != registered.len()
                || models.iter().any(|m| !registered.contains(&m)));
        if changed {
            self.p.registration.capabilities = capabilities(&models, &self.p.intent, None);
            advertised.set(&models);
        }
        self.p.health_models = Some(models);
        changed
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.p.directory_url.trim_end_matches('/'))
    }

    async fn register(&mut self) -> Result<Registered> {
        let mut body = self.p.registration.clone();
        body.node_id = self.node_id.clone();
        body.current_node_token = self.last_token.clone();
        let reply = exchange(
            self.p.http.post(self.url("register")).json(&body),
            DIRECTORY,
            CALL_TIMEOUT,
        )
        .await?;
        let ack: RegisterAck = reply.json("the registration ACK")?;
        let token = ack
            .effective_token()
            .cloned()
            .ok_or_else(|| IicpError::Decode {
                what: "the registration ACK".into(),
                reason: "it carries no node_token".into(),
            })?;
        if let (Some(seen), Ok(ep)) = (&ack.observed_source_ip, reqwest::Url::parse(&body.endpoint))
        {
            if ep
                .host_str()
                .is_some_and(|h| h.trim_matches(['[', ']']) != seen)
            {
                tracing::debug!(observed_source_ip = ?seen, "the directory sees another address than the advertised endpoint");
            }
        }
        self.node_id = Some(ack.node_id.clone());
        self.last_token = Some(token.clone());
        self.p.pipeline.auth.set_own_token(token.clone());
        self.p
            .pipeline
            .auth
            .set_directory_key(self.directory_key().await);
        Ok(Registered {
            node_id: ack.node_id,
            token,
            hmac_key: ack.node_hmac_key,
            challenge: None,
        })
    }

    /// The directory's token-signing key (PROTOCOL.md §2.4: fetched at
    /// registration); `None` when it has none or cannot say.
    async fn directory_key(&self) -> Option<DirectoryPublicKey> {
        #[derive(serde::Deserialize)]
        struct KeyAnswer {
            public_key: String,
        }
        let reply = exchange(
            self.p.http.get(self.url("directory-key")),
            DIRECTORY,
            CALL_TIMEOUT,
        )
        .await
        .ok()?;
        if !reply.is_success() {
            tracing::debug!(
                status = reply.status,
                "the directory publishes no token-signing key"
            );
            return None;
        }
        let answer: KeyAnswer = reply.json("the directory key").ok()?;
        DirectoryPublicKey::from_hex(&answer.public_key)
            .map_err(|e| tracing::warn!(error = ?e.to_string(), "the directory's key is unusable"))
            .ok()
    }

    async fn heartbeat(
        &mut self,
        reg: &mut Registered,
    ) -> std::result::Result<Duration, BeatError> {
        let pipeline = &self.p.pipeline;
        let active = pipeline.gate.active();
        let mut hb = HeartbeatRequest::new(reg.node_id.clone());
        hb.load = Some(f64::from(active) / f64::from(pipeline.gate.max()));
        hb.active_jobs = Some(active);
        hb.available = Some(!pipeline.is_draining());
        hb.max_concurrent = Some(pipeline.gate.max());
        hb.health_models = self.p.health_models.clone();
        if let (Some(key), Some(challenge)) = (&reg.hmac_key, &reg.challenge) {
            hb.challenge_response = Some(challenge_response(key, challenge));
        }
        if self.pending_batch.is_none() {
            let delta = pipeline.stats.drain();
            if !delta.is_empty() {
                self.pending_batch = Some((crate::ids::uuid_v4_string(), delta));
            }
        }
        if let Some((id, d)) = &self.pending_batch {
            let done = d.success + d.failed + d.timeouts;
            let mut metrics = HeartbeatMetrics {
                tasks_success: d.success,
                tasks_failed: d.failed,
                avg_latency_ms: Some(d.latency_ms_total as f64 / done.max(1) as f64),
                ..Default::default()
            };
            metrics
                .extra
                .insert("tasks_timeout".into(), json!(d.timeouts));
            hb.metrics = Some(metrics);
            hb.metrics_batch_id = Some(id.clone());
        }
        let request = self
            .p
            .http
            .post(self.url("heartbeat"))
            .bearer_auth(reg.token.expose())
            .json(&hb);
        let reply = exchange(request, DIRECTORY, CALL_TIMEOUT)
            .await
            .map_err(BeatError::Other)?;
        if matches!(reply.status, 401 | 404 | 410) {
            return Err(BeatError::Rejected(reply.status));
        }
        let pong: Pong = reply.json("the heartbeat PONG").map_err(BeatError::Other)?;
        reg.challenge = pong.challenge;
        if let Some((id, _)) = &self.pending_batch {
            // Absent means the directory does not track batches: done either way.
            if pong
                .metrics_batch_accepted
                .as_deref()
                .is_none_or(|a| a == id)
            {
                self.pending_batch = None;
            }
        }
        Ok(Duration::from_millis(pong.next_heartbeat_ms).clamp(MIN_INTERVAL, MAX_INTERVAL))
    }

    async fn deregister(&self, reg: &Registered) -> Result<()> {
        let request = self
            .p
            .http
            .delete(self.url("register"))
            .bearer_auth(reg.token.expose())
            .json(&json!({"node_id": reg.node_id}));
        let reply = exchange(request, DIRECTORY, DEREGISTER_TIMEOUT).await?;
        // 404: the directory no longer knows the node, which is what we wanted.
        if reply.is_success() || reply.status == 404 {
            Ok(())
        } else {
            Err(error_from_response(reply.status, &reply.body))
        }
    }
}
