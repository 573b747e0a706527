//! REGISTER, HEARTBEAT, DEREGISTER and expiry of a replica on a shared
//! PostgreSQL database (issue 19): the same state changes as the
//! registry's (the same [`new_record`] and [`apply_heartbeat`]), applied to
//! the database's copy of the node and stored there before the answer.
//!
//! A change starts from the cache's copy when it has one (the common case:
//! one statement per heartbeat) and is stored only where the row is still
//! that version; when another replica changed the node meanwhile, or the
//! cache's copy refuses the request (a token rotated elsewhere, a challenge
//! issued elsewhere), the row is read again and the change retried, up to
//! [`ATTEMPTS`] times. A refusal is only ever answered from the database's
//! current copy. The changed record goes into this replica's cache at once;
//! the others learn of it from the notification.
//!
//! Ownership (PROTOCOL.md §1.3 step 5) is decided on the database's copy:
//! the `current_node_token` must match the stored token, whichever replica
//! issued it.

use super::change::{apply_heartbeat, new_record};
use super::registry::Registry;
use super::store::postgres::shared::Shared;
use crate::secret::Secret;
use crate::server::api_error::ApiError;
use crate::wire::{HeartbeatRequest, Pong, RegisterAck, RegisterRequest};
use axum::http::StatusCode;

/// Tries of one change before it is refused as contended.
const ATTEMPTS: usize = 4;

/// 503 when a node changed through other replicas on every try.
fn contended() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "conflict_retry",
        "this node was changed through another directory replica at the same time; retry",
    )
    .retry_after(1)
}

/// What the change needs besides the database.
pub(crate) struct Replica<'a> {
    /// The database.
    pub shared: &'a Shared,
    /// This replica's read cache.
    pub registry: &'a Registry,
}

impl Replica<'_> {
    /// [`Registry::commit_registration`] on the database: a proven
    /// re-registration replaces the stored node (under compare-and-set), an
    /// unproven one or a new one inserts a node. Refuses with 503
    /// `directory_full` when the cache holds the most nodes even after
    /// expiry, and 503 `database_unavailable` without the database.
    pub async fn register(
        &self,
        mut req: RegisterRequest,
        observed_ip: String,
        reachable: Option<bool>,
        now_ms: u64,
        evict_after_ms: u64,
    ) -> Result<RegisterAck, ApiError> {
        let requested = req.node_id.take();
        let proof = req.current_node_token.take();
        // An insert under the asked id found a row that does not read as a
        // node (or went away meanwhile): the id is taken, a fresh one is used.
        let mut id_taken = false;
        for _ in 0..ATTEMPTS {
            let previous = match &requested {
                Some(id) => self.shared.fetch(id).await?,
                None => None,
            };
            let replaces = previous
                .as_ref()
                .is_some_and(|p| proof.as_ref().is_some_and(|t| p.token_matches(t)));
            let (node_id, recovered) = match &requested {
                Some(id) if replaces || (previous.is_none() && !id_taken) => (id.clone(), true),
                _ => (crate::ids::uuid_v4_string(), false),
            };
            if !replaces && self.registry.is_full() {
                self.expire(now_ms, evict_after_ms).await?;
                if self.registry.is_full() {
                    return Err(self.registry.full());
                }
            }
            let previous = previous.filter(|_| replaces);
            let (mut record, ack) = new_record(
                req.clone(),
                node_id,
                recovered,
                observed_ip.clone(),
                reachable,
                now_ms,
                previous.as_ref(),
            );
            let stored = match &previous {
                Some(p) => self.shared.update(&record, p.change_seq).await?,
                None => self.shared.insert(&record).await?,
            };
            if let Some(seq) = stored {
                record.change_seq = seq;
                self.registry.cache_put(record);
                return Ok(ack);
            }
            id_taken |= previous.is_none();
        }
        Err(contended())
    }

    /// [`Registry::heartbeat`] on the database.
    pub async fn heartbeat(
        &self,
        token: &Secret,
        hb: HeartbeatRequest,
        now_ms: u64,
        next_heartbeat_ms: u64,
        max_node_bytes: usize,
    ) -> Result<Pong, ApiError> {
        let mut cached = self.registry.get(&hb.node_id);
        for _ in 0..ATTEMPTS {
            let (mut record, fresh) = match cached.take() {
                Some(r) => (r, false),
                None => match self.shared.fetch(&hb.node_id).await? {
                    Some(r) => (r, true),
                    None => {
                        self.registry.cache_remove(&hb.node_id, i64::MAX);
                        return Err(ApiError::unknown_node());
                    }
                },
            };
            let read_seq = record.change_seq;
            let pong = match apply_heartbeat(
                &mut record,
                token,
                &hb,
                now_ms,
                next_heartbeat_ms,
                max_node_bytes,
            ) {
                Ok(pong) => pong,
                Err(refusal) if fresh => return Err(refusal),
                Err(_) => continue, // the cache's copy may be behind: read the row
            };
            if let Some(seq) = self.shared.update(&record, read_seq).await? {
                record.change_seq = seq;
                self.registry.cache_put(record);
                return Ok(pong);
            }
        }
        Err(contended())
    }

    /// [`Registry::deregister`] on the database.
    pub async fn deregister(&self, token: &Secret, node_id: &str) -> Result<(), ApiError> {
        let mut cached = self.registry.get(node_id);
        for _ in 0..ATTEMPTS {
            let (record, fresh) = match cached.take() {
                Some(r) => (r, false),
                None => match self.shared.fetch(node_id).await? {
                    Some(r) => (r, true),
                    None => {
                        self.registry.cache_remove(node_id, i64::MAX);
                        return Err(ApiError::unknown_node());
                    }
                },
            };
            if !record.token_matches(token) {
                if fresh {
                    return Err(ApiError::unauthorized(
                        "node token is not valid for this node",
                    ));
                }
                continue;
            }
            if self.shared.delete(node_id, record.change_seq).await? {
                self.registry
                    .cache_remove(node_id, record.change_seq.saturating_add(1));
                return Ok(());
            }
        }
        Err(contended())
    }

    /// Deletes the nodes unseen for longer than the eviction age from the
    /// database (each by exactly one replica) and from this cache; returns
    /// how many this replica deleted.
    pub async fn expire(&self, now_ms: u64, evict_after_ms: u64) -> Result<usize, ApiError> {
        let gone = self
            .shared
            .expire(now_ms.saturating_sub(evict_after_ms))
            .await?;
        for (id, seq) in &gone {
            self.registry.cache_remove(id, seq.saturating_add(1));
        }
        if !gone.is_empty() {
            tracing::info!(
                evicted = gone.len(),
                "forgot nodes unseen for longer than the eviction age"
            );
        }
        Ok(gone.len())
    }
}
