//! A replica's writes to the shared database, made while the request
//! waits: read a node, update it where it is still the version read
//! (compare-and-set on `change_seq`), insert a new one, delete one, expire
//! the stale ones.
//!
//! One connection, opened on the first write and again after it is lost;
//! tokio-postgres pipelines the requests of concurrent handlers on it (no
//! transaction is held open: every write is one statement). Each statement
//! is bounded by [`QUERY_TIMEOUT`]. While the database is unreachable, a
//! new connection is tried at most every [`RECONNECT_EVERY`] and writes in
//! between fail at once, so a lost database costs a request no wait; the
//! change of state is logged once each way. [`Shared::is_available`] says
//! which state it is in (the health answer shows it).

use super::{Target, connect};
use crate::directory::record::NodeRecord;
use crate::server::api_error::ApiError;
use axum::http::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Statement};

/// Time limit of one statement (and of opening the connection).
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Least time between two attempts to connect while the database is lost.
pub(crate) const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Seconds a refused write is told to wait.
const RETRY_AFTER_S: u64 = 5;
/// How long a deletion's tombstone is kept for the poll (0002_replicas.sql).
const TOMBSTONE_HOURS: i32 = 1;

/// The database could not be reached (the cause is logged by [`Shared`]).
#[derive(Debug)]
pub(crate) struct Unavailable;

impl From<Unavailable> for ApiError {
    fn from(_: Unavailable) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "this directory cannot reach its database: registrations, heartbeats and \
             deregistrations are refused until it is back (discover still answers)",
        )
        .retry_after(RETRY_AFTER_S)
    }
}

/// An open connection and its prepared statements.
struct Conn {
    client: Client,
    fetch: Statement,
    update: Statement,
    insert: Statement,
    delete: Statement,
}

/// The shared database, as one replica writes to it.
pub(crate) struct Shared {
    target: Target,
    conn: Mutex<Option<Arc<Conn>>>,
    connecting: tokio::sync::Mutex<()>,
    last_failure: Mutex<Option<Instant>>,
    available: AtomicBool,
    cache_connected: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("available", &self.is_available())
            .finish_non_exhaustive()
    }
}

/// Prepares the writes' statements on a new connection.
async fn prepare(client: Client) -> Result<Conn, tokio_postgres::Error> {
    let fetch = client
        .prepare("SELECT node_id, record, change_seq FROM nodes WHERE node_id = $1")
        .await?;
    let update = client
        .prepare(
            "UPDATE nodes SET record = $2, last_seen_ms = $3
             WHERE node_id = $1 AND change_seq = $4 RETURNING change_seq",
        )
        .await?;
    let insert = client
        .prepare(
            "INSERT INTO nodes (node_id, record, last_seen_ms) VALUES ($1, $2, $3)
             ON CONFLICT (node_id) DO NOTHING RETURNING change_seq",
        )
        .await?;
    let delete = client
        .prepare("DELETE FROM nodes WHERE node_id = $1 AND change_seq = $2")
        .await?;
    Ok(Conn {
        client,
        fetch,
        update,
        insert,
        delete,
    })
}

/// A record's JSON and `last_seen_ms` as the row stores them.
fn row_of(record: &NodeRecord) -> Result<(String, i64), Unavailable> {
    let json = serde_json::to_string(record).map_err(|e| {
        tracing::error!(error = %e, "could not serialise node record");
        Unavailable
    })?;
    Ok((json, i64::try_from(record.last_seen_ms).unwrap_or(i64::MAX)))
}

impl Shared {
    /// The store of `target`; the connection opens on the first write.
    pub(super) fn new(target: Target) -> Self {
        Self {
            target,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(None),
            available: AtomicBool::new(true),
            cache_connected: AtomicBool::new(true),
        }
    }

    /// Where the cache connection connects, and how its errors are shown.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Whether the database is reachable: the last write reached it, and
    /// the cache's connection is up.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed) && self.cache_connected.load(Ordering::Relaxed)
    }

    /// The cache's connection is up (`true`: it reached the database, which
    /// counts as reachable again) or lost.
    pub(crate) fn set_cache_connected(&self, up: bool) {
        self.cache_connected.store(up, Ordering::Relaxed);
        if up {
            // The next write connects at once.
            *crate::sync::lock(&self.last_failure) = None;
            self.succeeded();
        }
    }

    fn current(&self) -> Option<Arc<Conn>> {
        let held = crate::sync::lock(&self.conn);
        held.as_ref().filter(|c| !c.client.is_closed()).cloned()
    }

    fn forget(&self, conn: &Arc<Conn>) {
        let mut held = crate::sync::lock(&self.conn);
        if held.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *held = None;
        }
    }

    fn failed(&self, why: &str) {
        if self.available.swap(false, Ordering::Relaxed) {
            tracing::error!(
                error = %why,
                "directory database unreachable: registrations, heartbeats and deregistrations \
                 are refused with 503 until it is back; discover answers from the cache"
            );
        } else {
            tracing::debug!(error = %why, "directory database still unreachable");
        }
    }

    fn succeeded(&self) {
        if !self.available.swap(true, Ordering::Relaxed) {
            tracing::info!("directory database reachable again: writes are accepted");
        }
    }

    /// The open connection, or a new one (at most one attempt per
    /// [`RECONNECT_EVERY`] while the database is lost).
    async fn conn(&self) -> Result<Arc<Conn>, Unavailable> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        {
            let last = crate::sync::lock(&self.last_failure);
            if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
                return Err(Unavailable);
            }
        }
        let opened = tokio::time::timeout(QUERY_TIMEOUT, async {
            prepare(connect(&self.target).await?).await
        })
        .await;
        let why = match opened {
            Ok(Ok(conn)) => {
                let conn = Arc::new(conn);
                *crate::sync::lock(&self.conn) = Some(conn.clone());
                *crate::sync::lock(&self.last_failure) = None;
                return Ok(conn);
            }
            Ok(Err(e)) => self.target.error(&e),
            Err(_) => format!("no connection within {} s", QUERY_TIMEOUT.as_secs()),
        };
        *crate::sync::lock(&self.last_failure) = Some(Instant::now());
        self.failed(&why);
        Err(Unavailable)
    }

    /// Runs one statement on `conn` within [`QUERY_TIMEOUT`]; a failure
    /// drops a connection that is closed or hangs.
    async fn settle<T>(
        &self,
        conn: &Arc<Conn>,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Unavailable> {
        match tokio::time::timeout(QUERY_TIMEOUT, statement).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => {
                if conn.client.is_closed() {
                    self.forget(conn);
                }
                self.failed(&self.target.error(&e));
                Err(Unavailable)
            }
            Err(_) => {
                self.forget(conn);
                self.failed(&format!("no answer within {} s", QUERY_TIMEOUT.as_secs()));
                Err(Unavailable)
            }
        }
    }

    /// The stored record of `node_id`, as it is now.
    pub async fn fetch(&self, node_id: &str) -> Result<Option<NodeRecord>, Unavailable> {
        let c = self.conn().await?;
        let row = self
            .settle(&c, c.client.query_opt(&c.fetch, &[&node_id]))
            .await?;
        match row {
            None => Ok(None),
            Some(row) => super::row_record(&row).map_err(|e| {
                self.failed(&self.target.error(&e));
                Unavailable
            }),
        }
    }

    /// Replaces the node's row with `record` where it is still at
    /// `expected_seq`; the row's new `change_seq`, or `None` when another
    /// write came first (read it again).
    pub async fn update(
        &self,
        record: &NodeRecord,
        expected_seq: i64,
    ) -> Result<Option<i64>, Unavailable> {
        let (json, last_seen) = row_of(record)?;
        let c = self.conn().await?;
        let row = self
            .settle(
                &c,
                c.client.query_opt(
                    &c.update,
                    &[&record.node_id, &json, &last_seen, &expected_seq],
                ),
            )
            .await?;
        Ok(row.and_then(|r| r.try_get(0).ok()))
    }

    /// Stores a new node; its `change_seq`, or `None` when a node of that
    /// id exists already.
    pub async fn insert(&self, record: &NodeRecord) -> Result<Option<i64>, Unavailable> {
        let (json, last_seen) = row_of(record)?;
        let c = self.conn().await?;
        let row = self
            .settle(
                &c,
                c.client
                    .query_opt(&c.insert, &[&record.node_id, &json, &last_seen]),
            )
            .await?;
        Ok(row.and_then(|r| r.try_get(0).ok()))
    }

    /// Deletes the node where it is still at `expected_seq`; whether it
    /// did (`false`: it changed or went meanwhile).
    pub async fn delete(&self, node_id: &str, expected_seq: i64) -> Result<bool, Unavailable> {
        let c = self.conn().await?;
        let n = self
            .settle(&c, c.client.execute(&c.delete, &[&node_id, &expected_seq]))
            .await?;
        Ok(n == 1)
    }

    /// Deletes every node last seen before `cutoff_ms`, and the tombstones
    /// older than the poll needs. One statement: of replicas expiring at
    /// once, each row goes to exactly one. Returns the ids and versions
    /// this replica deleted.
    pub async fn expire(&self, cutoff_ms: u64) -> Result<Vec<(String, i64)>, Unavailable> {
        let cutoff = i64::try_from(cutoff_ms).unwrap_or(i64::MAX);
        let c = self.conn().await?;
        let rows = self
            .settle(
                &c,
                c.client.query(
                    "DELETE FROM nodes WHERE last_seen_ms < $1 RETURNING node_id, change_seq",
                    &[&cutoff],
                ),
            )
            .await?;
        self.settle(
            &c,
            c.client.execute(
                "DELETE FROM node_tombstones WHERE deleted_at < now() - make_interval(hours => $1)",
                &[&TOMBSTONE_HOURS],
            ),
        )
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect())
    }
}
