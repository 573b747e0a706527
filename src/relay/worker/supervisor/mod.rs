//! The supervisor: keeps this worker bound at a relay for as long as the
//! node runs.
//!
//! Loop: choose a relay (the one the operator named, else an election from
//! the directory's discover answer, else from the gossip peer cache) → ask
//! the directory for a bind ticket when the node holds a token → bind →
//! publish the relay endpoint on the node's `endpoint_updates` watch (the
//! lifecycle registers again with it) → serve until the session is lost →
//! reconnect after 2 s, doubling to 60 s while attempts fail. After 3
//! failed attempts in a row at one relay, that relay is excluded and
//! another is elected (also when the operator named the first one: the
//! directory's relays are the fallback; with none offered, the named relay
//! is tried again). When every relay has been excluded the exclusions are
//! forgotten and the election starts over.
//!
//! A relay that refuses the bind for want of a ticket while the node holds
//! no token yet: the node first registers through that relay (turn_relay,
//! which the directory does not probe), then fetches the ticket with its
//! new token and binds again at once.

mod backoff;

use super::election::{self, CandidateSource, RelayTarget};
use super::session::{self, BindError, Ended, SessionConfig};
use super::ticket::{self, TicketAnswer};
use crate::Secret;
use crate::nat::Advertised;
use crate::outbound::exchange;
use backoff::Backoff;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Time limit of the discover request of an election.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registration through the relay may take before the ticket.
const REGISTER_WAIT: Duration = Duration::from_secs(30);
/// The RELAY_ACK reasons that a bind ticket would have avoided.
const TICKET_REASONS: [&str; 3] = [
    "relay bind ticket required",
    "relay bind ticket invalid",
    "relay bind ticket replayed",
];

/// What the supervisor needs.
pub(crate) struct Supervisor {
    pub session: SessionConfig,
    pub http: reqwest::Client,
    /// The directory to elect from and fetch tickets at; `None` when the
    /// node does not register.
    pub directory_url: Option<String>,
    /// The relay the operator named.
    pub named: Option<RelayTarget>,
    /// The gossip peer cache, asked when the directory gives no relay.
    pub candidates: Option<CandidateSource>,
    /// Where the relay endpoint is published (the lifecycle registers it).
    pub advertise: watch::Sender<Advertised>,
    /// Counts the lifecycle's registrations; `None` when there is none.
    pub registrations: Option<watch::Receiver<u64>>,
    /// The relay bound at now (`host:port`), for `RunningNode::relay`.
    pub bound: watch::Sender<Option<String>>,
    /// How long calls in flight may finish at shutdown.
    pub grace: Duration,
}

/// Sleeps `d`; false when `stop` came first.
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = stop.cancelled() => false,
    }
}

impl Supervisor {
    fn worker_id(&self) -> &str {
        &self.session.worker_id
    }

    /// Runs until `stop`; the session is then closed gracefully.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut excluded: Vec<String> = Vec::new();
        let mut current: Option<RelayTarget> = None;
        let mut backoff = Backoff::default();
        while !stop.is_cancelled() {
            let target = match current.clone() {
                Some(t) => t,
                None => match self.choose(&mut excluded).await {
                    Some(t) => t,
                    None => {
                        let wait = backoff.next_delay();
                        tracing::warn!(
                            retry_in_s = wait.as_secs(),
                            "no relay to bind at: the directory offers no relay-capable node this node may use"
                        );
                        if !pause(wait, &stop).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            current = Some(target.clone());
            let ticket = self.ticket(&target).await;
            let had_ticket = ticket.is_some();
            let result = tokio::select! {
                r = session::bind(&self.session, &target, ticket) => r,
                () = stop.cancelled() => return,
            };
            match result {
                Ok(bound) => {
                    backoff.bound();
                    let advertised =
                        Advertised::relayed(&target.host, bound.relay_http_port, self.worker_id());
                    tracing::info!(relay = %target.addr(), endpoint = %advertised.endpoint, "bound at the relay; consumers reach this node through it");
                    self.publish(advertised);
                    self.bound.send_replace(Some(target.addr()));
                    let ended = session::serve(&self.session, bound, &stop, self.grace).await;
                    self.bound.send_replace(None);
                    match ended {
                        Ended::Stopped => {
                            tracing::info!(relay = %target.addr(), "closed the relay session");
                            return;
                        }
                        Ended::Lost(why) => {
                            tracing::warn!(relay = %target.addr(), reason = %why, "the relay session is lost; reconnecting");
                        }
                    }
                }
                Err(BindError::Refused(reason))
                    if !had_ticket
                        && TICKET_REASONS.contains(&reason.as_str())
                        && self.register_first(&target, &stop).await =>
                {
                    // Registered through this relay: bind again now, with a ticket.
                    continue;
                }
                Err(e) => {
                    tracing::warn!(relay = %target.addr(), error = %e, "relay bind failed");
                    if backoff.failed() {
                        tracing::warn!(relay = %target.addr(), "the relay failed {} times in a row; electing another", backoff::ATTEMPTS_PER_RELAY);
                        excluded.push(target.addr());
                        current = self.choose(&mut excluded).await;
                        if current
                            .as_ref()
                            .is_some_and(|next| next.addr() != target.addr())
                        {
                            // Another relay, which has not failed us: try it now.
                            backoff.bound();
                            continue;
                        }
                        // The same one again (nothing else offered): keep backing off.
                    }
                }
            }
            if !pause(backoff.next_delay(), &stop).await {
                return;
            }
        }
    }

    /// Publishes an endpoint unless it is already the one advertised (a
    /// repeated value would register again for nothing).
    fn publish(&self, advertised: Advertised) -> bool {
        self.advertise.send_if_modified(|current| {
            if *current == advertised {
                false
            } else {
                *current = advertised;
                true
            }
        })
    }

    /// The next relay to try: the named one unless excluded, else an
    /// election. With nothing left, the exclusions are forgotten once.
    async fn choose(&self, excluded: &mut Vec<String>) -> Option<RelayTarget> {
        for _ in 0..2 {
            if let Some(named) = self
                .named
                .as_ref()
                .filter(|n| !excluded.contains(&n.addr()))
            {
                return Some(named.clone());
            }
            if let Some(elected) = self.elect(excluded).await {
                tracing::info!(relay = %elected.addr(), relay_node_id = ?elected.node_id, "auto-elected relay: {}", elected.addr());
                return Some(elected);
            }
            if excluded.is_empty() {
                return None;
            }
            excluded.clear();
        }
        None
    }

    /// Elects among the directory's relay-capable nodes, else among the
    /// peer cache's.
    async fn elect(&self, excluded: &[String]) -> Option<RelayTarget> {
        let local = self.session.local_directory;
        if let Some(dir) = &self.directory_url {
            match discover(&self.http, dir, &self.session.intent).await {
                Ok(found) => {
                    if let Some(t) = election::elect(&found, self.worker_id(), excluded, local) {
                        return Some(t);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not ask the directory for relays; trying the peer cache")
                }
            }
        }
        let peers = self.candidates.as_ref().map(|source| source())?;
        election::elect(&peers, self.worker_id(), excluded, local)
    }

    /// A bind ticket, when the node holds a token and the directory issues
    /// them.
    async fn ticket(&self, target: &RelayTarget) -> Option<Secret> {
        let dir = self.directory_url.as_ref()?;
        let token = self.session.pipeline.auth.own_token()?;
        match ticket::fetch(
            &self.http,
            dir,
            &token,
            self.worker_id(),
            target.node_id.as_deref(),
        )
        .await
        {
            TicketAnswer::Issued(t) => {
                tracing::debug!(relay = %target.addr(), "got a relay bind ticket");
                Some(t)
            }
            TicketAnswer::NotIssued => {
                tracing::debug!("the directory issues no relay bind tickets; binding without");
                None
            }
            TicketAnswer::Failed(why) => {
                tracing::warn!(reason = %why, "could not get a relay bind ticket; binding without");
                None
            }
        }
    }

    /// The relay wants a ticket and the node has no token yet: register
    /// through the relay (its HTTP port as the directory lists it, or the
    /// default) and wait for the registration. True when the node then
    /// holds a token.
    async fn register_first(&self, target: &RelayTarget, stop: &CancellationToken) -> bool {
        if self.session.pipeline.auth.own_token().is_some() {
            return true;
        }
        let Some(registrations) = &self.registrations else {
            return false;
        };
        let mut registrations = registrations.clone();
        registrations.borrow_and_update();
        let port = target.http_port.unwrap_or(crate::node::DEFAULT_PORT);
        tracing::info!(relay = %target.addr(), "the relay wants a bind ticket: registering through it first");
        self.publish(Advertised::relayed(&target.host, port, self.worker_id()));
        tokio::select! {
            r = tokio::time::timeout(REGISTER_WAIT, registrations.changed()) => {
                if !matches!(r, Ok(Ok(()))) {
                    tracing::warn!("the registration through the relay did not complete in time");
                }
            }
            () = stop.cancelled() => return false,
        }
        self.session.pipeline.auth.own_token().is_some()
    }
}

/// The relay-capable nodes a directory lists for `intent`.
pub(super) async fn discover(
    http: &reqwest::Client,
    directory_url: &str,
    intent: &str,
) -> crate::Result<Vec<election::RelayCandidate>> {
    let url = format!("{}/v1/discover", directory_url.trim_end_matches('/'));
    let request = http.get(url).query(&[
        ("intent", intent),
        ("relay_capable", "true"),
        ("limit", "50"),
    ]);
    let reply = exchange(request, "the directory", DISCOVER_TIMEOUT).await?;
    let answer: Value = reply.json("the discover answer")?;
    Ok(election::candidates_from_discover(&answer))
}
