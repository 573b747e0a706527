//! A replica's read cache: the registry in memory, kept up to date with the
//! shared database, so that discover (and every read) never waits on it.
//!
//! One connection of its own `LISTEN`s on [`CHANNEL`]: the `nodes_changed`
//! trigger notifies the id of every node inserted, updated or deleted, and
//! the cache fetches those rows (in batches) and applies them. A
//! notification is delivered once the change is committed, so the fetch
//! sees it. Every [`POLL_EVERY`] the cache also asks for the rows and
//! tombstones changed since the last change it saw (a poll interval behind,
//! so a change committed after a higher-numbered one is not skipped) and
//! fetches those it does not hold yet: the backstop if a notification were
//! lost.
//! Each (re)connection reloads the whole table first (`LISTEN` is in place
//! before the read, so nothing between is missed).
//!
//! A copy replaces the one held only when its `change_seq` is higher, and a
//! deletion removes only an older copy, so the order in which changes
//! arrive does not matter. Staleness bound: a change made through one
//! replica is in every other's cache one notification round trip later
//! (milliseconds on one network), and at the latest after two polls
//! ([`POLL_EVERY`] × 2) while the cache is connected. The replica that made
//! a change has it in its own cache at once.
//!
//! The connection lost, the cache keeps what it holds (discover answers as
//! before, nodes ageing out of it by their `last_seen_ms` as usual), and a
//! new connection is tried every [`RECONNECT_EVERY`] until the database is
//! back, when the reload brings the cache up to date.
//!
//! Untrusted input: notification payloads come from the database; one that
//! is not a node id (longer than [`MAX_ID_LEN`]) is not fetched but starts
//! a poll. Pending ids are bounded by [`MAX_PENDING`]; beyond, a poll
//! catches up instead.

use super::shared::{QUERY_TIMEOUT, RECONNECT_EVERY, Shared};
use super::{CHANNEL, row_record};
use crate::directory::record::NodeRecord;
use crate::directory::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tokio_util::sync::CancellationToken;

/// How often the cache polls for changes (the backstop of notifications).
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(2);
/// Longest notification payload read as a node id (ids are at most 36).
const MAX_ID_LEN: usize = 64;
/// Most node ids waiting to be fetched; beyond, a poll catches up.
const MAX_PENDING: usize = 65_536;
/// Most ids fetched by one statement.
const FETCH_BATCH: usize = 1_000;

/// Every stored node, and the highest `change_seq` among them.
pub(crate) async fn read_all(
    client: &Client,
) -> Result<(Vec<NodeRecord>, i64), tokio_postgres::Error> {
    let rows = client
        .query("SELECT node_id, record, change_seq FROM nodes", &[])
        .await?;
    let mut records = Vec::with_capacity(rows.len());
    let mut high = 0;
    for row in &rows {
        high = high.max(row.try_get::<_, i64>(2)?);
        if let Some(rec) = row_record(row)? {
            records.push(rec);
        }
    }
    Ok((records, high))
}

/// Why a session of the cache ended.
enum Ended {
    Cancelled,
    Lost(String),
}

/// Keeps `registry` up to date with the database until `cancel`.
pub(crate) async fn run(shared: Arc<Shared>, registry: Arc<Registry>, cancel: CancellationToken) {
    let mut lost = false;
    loop {
        match session(&shared, &registry, &cancel, &mut lost).await {
            Ended::Cancelled => return,
            Ended::Lost(why) => {
                shared.set_cache_connected(false);
                if !lost {
                    tracing::warn!(
                        error = %why,
                        "directory cache lost the database: discover answers from the cache as \
                         it is; reconnecting every {} s",
                        RECONNECT_EVERY.as_secs()
                    );
                    lost = true;
                } else {
                    tracing::debug!(error = %why, "directory cache: database still unreachable");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_EVERY) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// A statement of the cache, bounded by [`QUERY_TIMEOUT`].
async fn bounded<T>(
    shared: &Shared,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, statement).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(shared.target().error(&e)),
        Err(_) => Err(format!("no answer within {} s", QUERY_TIMEOUT.as_secs())),
    }
}

/// One connection's life: listen, reload, then apply notifications and
/// polls until the connection ends or `cancel`.
async fn session(
    shared: &Shared,
    registry: &Registry,
    cancel: &CancellationToken,
    lost: &mut bool,
) -> Ended {
    let connected = tokio::select! {
        c = bounded(shared, shared.target().config.connect(NoTls)) => c,
        () = cancel.cancelled() => return Ended::Cancelled,
    };
    let (client, mut connection) = match connected {
        Ok(pair) => pair,
        Err(why) => return Ended::Lost(why),
    };
    let (tx, mut rx) = mpsc::channel::<String>(MAX_PENDING);
    let overflow = Arc::new(AtomicBool::new(false));
    let overflowed = overflow.clone();
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let id = n.payload();
                    if id.len() > MAX_ID_LEN || tx.try_send(id.to_owned()).is_err() {
                        overflowed.store(true, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(e),
                None => return None,
            }
        }
    });
    let mut cache = Cache {
        shared,
        registry,
        client: &client,
        behind: 0,
        at_last_poll: 0,
        high: 0,
    };
    let started = async {
        bounded(shared, client.batch_execute(&format!("LISTEN {CHANNEL}"))).await?;
        cache.reload().await
    };
    let reloaded = tokio::select! {
        r = started => r,
        () = cancel.cancelled() => {
            driver.abort();
            return Ended::Cancelled;
        }
    };
    if let Err(why) = reloaded {
        driver.abort();
        return Ended::Lost(why);
    }
    shared.set_cache_connected(true);
    if std::mem::take(lost) {
        tracing::info!("directory cache reconnected to the database and reloaded");
    }
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    loop {
        let step = tokio::select! {
            () = cancel.cancelled() => {
                driver.abort();
                return Ended::Cancelled;
            }
            ended = &mut driver => {
                return Ended::Lost(match ended {
                    Ok(Some(e)) => shared.target().error(&e),
                    Ok(None) => "the connection closed".to_owned(),
                    Err(e) => e.to_string(),
                });
            }
            Some(id) = rx.recv() => {
                let mut ids = HashSet::from([id]);
                while ids.len() < FETCH_BATCH {
                    match rx.try_recv() {
                        Ok(id) => ids.insert(id),
                        Err(_) => break,
                    };
                }
                cache.refresh(ids.into_iter().collect()).await
            }
            _ = poll.tick() => cache.poll().await,
        };
        let step = match step {
            Ok(()) if overflow.swap(false, Ordering::Relaxed) => cache.poll().await,
            other => other,
        };
        if let Err(why) = step {
            driver.abort();
            return Ended::Lost(why);
        }
    }
}

/// The cache's side of one connection.
struct Cache<'a> {
    shared: &'a Shared,
    registry: &'a Registry,
    client: &'a Client,
    /// The lower bound of the next poll: the highest change seen as of
    /// the poll before the last (a full poll interval behind).
    behind: i64,
    /// The highest change seen as of the last poll.
    at_last_poll: i64,
    /// The highest change seen so far.
    high: i64,
}

impl Cache<'_> {
    /// Replaces the cache's content with the table's.
    async fn reload(&mut self) -> Result<(), String> {
        let (records, high) = bounded(self.shared, read_all(self.client)).await?;
        let held = self.registry.cache_versions();
        let present: HashSet<&str> = records.iter().map(|r| r.node_id.as_str()).collect();
        let gone: Vec<String> = held
            .into_keys()
            .filter(|id| !present.contains(id.as_str()))
            .collect();
        for id in gone {
            // Only copies no newer than the read: a node written since is kept.
            self.registry.cache_remove(&id, high.saturating_add(1));
        }
        let count = records.len();
        for rec in records {
            self.registry.cache_put(rec);
        }
        self.behind = high;
        self.at_last_poll = high;
        self.high = high;
        tracing::debug!(nodes = count, "directory cache reloaded");
        Ok(())
    }

    /// Fetches `ids` as they are now and applies them.
    async fn refresh(&mut self, ids: Vec<String>) -> Result<(), String> {
        for chunk in ids.chunks(FETCH_BATCH) {
            let rows = bounded(
                self.shared,
                self.client.query(
                    "SELECT node_id, record, change_seq FROM nodes WHERE node_id = ANY($1)",
                    &[&chunk],
                ),
            )
            .await?;
            let tombstones = bounded(
                self.shared,
                self.client.query(
                    "SELECT node_id, change_seq FROM node_tombstones WHERE node_id = ANY($1)",
                    &[&chunk],
                ),
            )
            .await?;
            let mut found = HashSet::new();
            for row in &rows {
                let id: String = row.try_get(0).map_err(|e| e.to_string())?;
                found.insert(id);
                if let Some(rec) = row_record(row).map_err(|e| e.to_string())? {
                    self.high = self.high.max(rec.change_seq);
                    self.registry.cache_put(rec);
                }
            }
            let deleted: HashMap<String, i64> = tombstones
                .iter()
                .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
                .collect();
            for id in chunk.iter().filter(|id| !found.contains(*id)) {
                // No tombstone either (pruned): the node is gone.
                let seq = deleted.get(id).copied().unwrap_or(i64::MAX);
                self.registry.cache_remove(id, seq);
            }
        }
        Ok(())
    }

    /// Asks for what changed since one poll ago and fetches what the cache
    /// does not hold yet.
    async fn poll(&mut self) -> Result<(), String> {
        let rows = bounded(
            self.shared,
            self.client.query(
                "SELECT node_id, change_seq, false FROM nodes WHERE change_seq > $1
                 UNION ALL
                 SELECT node_id, change_seq, true FROM node_tombstones WHERE change_seq > $1",
                &[&self.behind],
            ),
        )
        .await?;
        let mut stale = Vec::new();
        let mut high = self.high;
        for row in &rows {
            let (Ok(id), Ok(seq), Ok(deleted)) = (
                row.try_get::<_, String>(0),
                row.try_get::<_, i64>(1),
                row.try_get::<_, bool>(2),
            ) else {
                continue;
            };
            high = high.max(seq);
            let newer = match self.registry.cache_version(&id) {
                Some(have) => have < seq,
                None => !deleted,
            };
            if newer {
                stale.push(id);
            }
        }
        self.high = high;
        self.behind = self.at_last_poll;
        self.at_last_poll = high;
        if !stale.is_empty() {
            tracing::debug!(
                nodes = stale.len(),
                "directory cache: the poll found changes not yet applied"
            );
            self.refresh(stale).await?;
        }
        Ok(())
    }
}
