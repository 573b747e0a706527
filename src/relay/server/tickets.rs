//! Relay bind tickets (PROTOCOL.md §1.7, §7.2): a directory-signed claim
//! that worker `sub` may bind at relay `aud` (or any, `*`) once (`jti`)
//! until `exp`.
//!
//! The key is the operator's (`relay_bind_ticket_public_key`), else, when
//! tickets are required, the directory's `GET /v1/directory-key`, fetched
//! when first needed and kept (a failed fetch is retried at most every
//! [`REFETCH_PAUSE`]). Without a key and without the requirement, tickets
//! are not checked: binds are accepted unsigned, as the reference relays
//! do. Each accepted `jti` is remembered until its `exp` in a bounded
//! table. No ticket is ever logged.

use super::admission::Refusal;
use crate::Secret;
use crate::token::{DirectoryPublicKey, RelayTicketClaims, unix_now};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Pause between two failed fetches of the directory's key.
const REFETCH_PAUSE: Duration = Duration::from_secs(10);
/// Time one fetch of the directory's key may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the key comes from when the operator gave none.
struct Fetch {
    http: reqwest::Client,
    url: String,
    /// The key once fetched; the time of the last failure.
    state: tokio::sync::Mutex<(Option<DirectoryPublicKey>, Option<Instant>)>,
}

/// Checks bind tickets and remembers their ids.
pub(crate) struct Tickets {
    required: bool,
    key: Option<DirectoryPublicKey>,
    fetch: Option<Fetch>,
    /// This relay's node id (a ticket's `aud` must be it or `*`).
    identity: watch::Receiver<Option<String>>,
    /// `jti` → `exp` of every ticket accepted and not yet expired.
    seen: Mutex<HashMap<String, u64>>,
    max_ids: usize,
}

impl Tickets {
    pub(crate) fn new(
        required: bool,
        key: Option<DirectoryPublicKey>,
        directory_url: &str,
        identity: watch::Receiver<Option<String>>,
        max_ids: usize,
    ) -> crate::Result<Self> {
        let fetch = if required && key.is_none() {
            Some(Fetch {
                http: crate::outbound::directory_client(concat!(
                    "iicp-node/",
                    env!("CARGO_PKG_VERSION")
                ))?,
                url: format!("{}/v1/directory-key", directory_url.trim_end_matches('/')),
                state: tokio::sync::Mutex::new((None, None)),
            })
        } else {
            None
        };
        Ok(Self {
            required,
            key,
            fetch,
            identity,
            seen: Mutex::new(HashMap::new()),
            max_ids,
        })
    }

    /// Checks `ticket` for `worker_id`: `Ok(Some(claims))` for a valid
    /// ticket (to [consume](Self::consume) when the bind is accepted),
    /// `Ok(None)` when tickets are not checked or none was sent and none is
    /// required.
    pub(crate) async fn check(
        &self,
        ticket: Option<&Secret>,
        worker_id: &str,
    ) -> Result<Option<RelayTicketClaims>, Refusal> {
        let Some(ticket) = ticket else {
            return if self.required {
                Err(Refusal::TicketRequired)
            } else {
                Ok(None)
            };
        };
        let Some(key) = self.key().await else {
            if self.required {
                tracing::warn!(
                    "no directory key to check relay bind tickets with; refusing the bind"
                );
                return Err(Refusal::TicketInvalid);
            }
            return Ok(None);
        };
        // A node id never starts with '-', so before the relay knows its
        // own id only `aud: "*"` matches.
        let relay_id = self.identity.borrow().clone().unwrap_or_else(|| "-".into());
        let claims = key
            .verify_relay_ticket(ticket.expose())
            .map_err(|_| Refusal::TicketInvalid)?;
        claims
            .check(worker_id, &relay_id, unix_now())
            .map_err(|_| Refusal::TicketInvalid)?;
        Ok(Some(claims))
    }

    /// Records the ticket's `jti`; false when it was used before (or the
    /// table is full of unexpired ids).
    pub(crate) fn consume(&self, claims: &RelayTicketClaims) -> Result<(), Refusal> {
        let now = unix_now();
        let mut seen = crate::sync::lock(&self.seen);
        if seen.contains_key(&claims.jti) {
            return Err(Refusal::TicketReplayed);
        }
        if seen.len() >= self.max_ids {
            seen.retain(|_, exp| *exp > now);
            if seen.len() >= self.max_ids {
                return Err(Refusal::Capacity);
            }
        }
        seen.insert(claims.jti.clone(), claims.exp);
        Ok(())
    }

    async fn key(&self) -> Option<DirectoryPublicKey> {
        if let Some(key) = self.key {
            return Some(key);
        }
        let fetch = self.fetch.as_ref()?;
        let mut state = fetch.state.lock().await;
        if let (Some(key), _) = *state {
            return Some(key);
        }
        if state.1.is_some_and(|t| t.elapsed() < REFETCH_PAUSE) {
            return None;
        }
        match fetch_key(fetch).await {
            Some(key) => {
                *state = (Some(key), None);
                Some(key)
            }
            None => {
                state.1 = Some(Instant::now());
                None
            }
        }
    }
}

async fn fetch_key(fetch: &Fetch) -> Option<DirectoryPublicKey> {
    #[derive(serde::Deserialize)]
    struct KeyAnswer {
        public_key: String,
    }
    let reply = crate::outbound::exchange(fetch.http.get(&fetch.url), "directory", FETCH_TIMEOUT)
        .await
        .map_err(|e| tracing::warn!(error = ?e.to_string(), "fetching the directory key failed"))
        .ok()?;
    if !reply.is_success() {
        tracing::warn!(status = reply.status, "the directory publishes no key");
        return None;
    }
    let answer: KeyAnswer = reply.json("the directory key").ok()?;
    DirectoryPublicKey::from_hex(&answer.public_key).ok()
}
