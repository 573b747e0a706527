//! Optional persistence of registrations (`--db`): a SQLite file
//! ([`sqlite`]) or a PostgreSQL database ([`postgres`]).
//!
//! Two designs, one per backend:
//! - SQLite (one process, one machine): the registry lives in memory and
//!   every change is also written by one writer thread behind it (the
//!   write-behind [`Store`], over the storage trait [`Backend`]), so
//!   handlers never wait on the disk and a restart finds tokens still valid
//!   and stale nodes still stale (their `last_seen` is stored).
//! - PostgreSQL (any number of replicas on one database, issue 19): the
//!   database is the source of truth. Writes are made on it while the
//!   request waits, as compare-and-set updates, and each replica's registry
//!   is a read cache refreshed by notifications and a poll
//!   ([`postgres`]'s module documentation has the staleness bound).
//!
//! Records are stored as JSON, one row per node. This file holds the
//! write-behind store: the queue, the writer thread, the retries.
//!
//! Faults (issue 18). At start, the database is opened for writing and one
//! real write is made: a read-only file system, a full disk, an unreachable
//! server or a refused login refuses the start with the cause, instead of a
//! directory that promises persistence and silently has none. While
//! running, a SQLite write that fails (the disk filled up) does not stop
//! the directory: it serves from memory, logs the failure once, keeps the
//! latest change of each node waiting, retries every [`RETRY_EVERY`], and
//! logs once when the writes succeed again — the waiting changes are
//! written then, so the database catches up. [`Store::is_failing`] says
//! which state it is in (the health answer shows it). A PostgreSQL
//! directory that loses its database refuses writes instead (503
//! `database_unavailable`: accepting them in one replica's memory would
//! split the replicas), keeps answering discover from its cache, and
//! recovers by itself.
//!
//! Threat model: records come from nodes (untrusted) but are bounded by the
//! registry before they get here; they are bound as SQL parameters, never
//! spliced into SQL. Records hold token hashes, never log text here. A
//! PostgreSQL connection string holds a password: it is only ever shown
//! through [`PostgresUrl`], whose `Display` and `Debug` hide it.

pub(crate) mod postgres;
pub(crate) mod sqlite;

pub use postgres::PostgresUrl;

use super::record::NodeRecord;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Pending writes beyond which handlers wait for the database (back-pressure).
const QUEUE_DEPTH: usize = 1024;
/// How often waiting changes are retried while writes fail.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Most nodes whose change may wait while writes fail; beyond, new changes
/// are not kept (and that is logged once).
const MAX_WAITING: usize = 65_536;

/// Where a directory keeps its registrations (`--db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database; its schema is migrated at start
    /// (`migrations/postgres/`).
    Postgres(PostgresUrl),
}

impl Database {
    /// `--db VALUE`: a value starting with `postgres://` or `postgresql://`
    /// names a PostgreSQL database, anything else a SQLite file.
    pub fn parse(value: &str) -> Self {
        if PostgresUrl::is_postgres(value) {
            Self::Postgres(PostgresUrl::new(value))
        } else {
            Self::Sqlite(PathBuf::from(value))
        }
    }

    /// The backend's name, as the health answer gives it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => sqlite::Sqlite::KIND,
            Self::Postgres(_) => "postgres",
        }
    }
}

/// For logs and errors: the path, or the URL with its password hidden.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// One change, keyed by node id: the latest change of a node replaces any
/// earlier one still waiting.
#[derive(Debug)]
pub(crate) enum Op {
    /// Insert or replace the node's row with this JSON record.
    Upsert(String, String),
    /// Remove the node's row (no error when it is not there).
    Delete(String),
}

impl Op {
    fn node_id(&self) -> &str {
        match self {
            Self::Upsert(id, _) | Self::Delete(id) => id,
        }
    }
}

/// The storage trait: what a database must do for the write-behind
/// [`Store`] (SQLite). Both calls run on the writer thread and may block.
pub(crate) trait Backend: Sized {
    /// Where it is (a path, a URL).
    type Target: Send + 'static;

    /// Its name in the health answer and the logs: `sqlite`, `postgres`.
    const KIND: &'static str;

    /// Opens (creating or migrating the schema as needed), makes one real
    /// write so that an unwritable database refuses the start, and returns
    /// the stored records. The error is the cause alone (the caller names
    /// the database).
    fn open(target: Self::Target) -> std::io::Result<(Self, Vec<NodeRecord>)>;

    /// Applies one change; an error is the cause, for the log.
    fn write(&mut self, op: &Op) -> Result<(), String>;
}

/// Handle to the writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    tx: Mutex<Option<SyncSender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    failing: Arc<AtomicBool>,
}

impl Store {
    /// Opens the SQLite file `path` on a new writer thread (the open
    /// itself may block on the disk), and returns the store with the stored
    /// records.
    pub async fn open_sqlite(path: &std::path::Path) -> std::io::Result<(Self, Vec<NodeRecord>)> {
        Self::start::<sqlite::Sqlite>(path.to_owned()).await
    }

    async fn start<B: Backend>(target: B::Target) -> std::io::Result<(Self, Vec<NodeRecord>)> {
        let failing = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        let flag = failing.clone();
        let writer = std::thread::Builder::new()
            .name("iicp-directory-store".into())
            .spawn(move || match B::open(target) {
                Ok((backend, records)) => {
                    if opened_tx.send(Ok(records)).is_ok() {
                        write_loop(backend, rx, flag);
                    }
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })?;
        let records = match opened.await {
            Ok(Ok(records)) => records,
            Ok(Err(e)) => {
                let _ = writer.join();
                return Err(e);
            }
            Err(_) => {
                let _ = writer.join();
                return Err(std::io::Error::other("the store's writer thread ended"));
            }
        };
        Ok((
            Self {
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                failing,
            },
            records,
        ))
    }

    /// Whether the last write failed (the directory serves from memory and
    /// changes wait to be written).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Queues an insert-or-replace of `record`.
    pub fn upsert(&self, record: &NodeRecord) {
        match serde_json::to_string(record) {
            Ok(json) => self.send(Op::Upsert(record.node_id.clone(), json)),
            Err(e) => tracing::error!(error = %e, "could not serialise node record"),
        }
    }

    /// Queues a delete.
    pub fn delete(&self, node_id: &str) {
        self.send(Op::Delete(node_id.to_owned()));
    }

    fn send(&self, op: Op) {
        // Clone the sender so the lock is not held while the queue is full.
        let tx = crate::sync::lock(&self.tx).clone();
        match tx {
            Some(tx) if tx.send(op).is_ok() => {}
            Some(_) => tracing::error!("directory store writer has stopped; change not persisted"),
            None => tracing::warn!("directory store is closed; change not persisted"),
        }
    }

    /// Flushes queued writes and stops the writer; later writes are dropped.
    pub fn close(&self) {
        crate::sync::lock(&self.tx).take();
        let writer = crate::sync::lock(&self.writer).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Changes not yet written, and whether the database is failing.
struct Writer<B> {
    backend: B,
    waiting: HashMap<String, Op>,
    failing: Arc<AtomicBool>,
    /// Whether a change was dropped for want of room (logged once).
    dropped: bool,
}

impl<B: Backend> Writer<B> {
    fn take(&mut self, op: Op) {
        if self.waiting.len() >= MAX_WAITING && !self.waiting.contains_key(op.node_id()) {
            if !self.dropped {
                tracing::error!(
                    waiting = self.waiting.len(),
                    "directory store: too many changes waiting for the database; newer ones are not kept"
                );
                self.dropped = true;
            }
            return;
        }
        self.waiting.insert(op.node_id().to_owned(), op);
    }

    /// Writes what waits, stopping at the first failure (the rest would
    /// fail the same way); logs a change of state once.
    fn flush(&mut self) {
        let ids: Vec<String> = self.waiting.keys().cloned().collect();
        let mut written = 0usize;
        for id in ids {
            let Some(op) = self.waiting.get(&id) else {
                continue;
            };
            if let Err(e) = self.backend.write(op) {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %e,
                        waiting = self.waiting.len(),
                        "directory store write failed; serving from memory, changes wait and are retried every {} s",
                        RETRY_EVERY.as_secs()
                    );
                } else {
                    tracing::debug!(error = %e, waiting = self.waiting.len(), "directory store write failed again");
                }
                return;
            }
            self.waiting.remove(&id);
            written += 1;
        }
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(
                written,
                "directory store writes succeed again; the waiting changes are written"
            );
            self.dropped = false;
        }
    }
}

fn write_loop<B: Backend>(backend: B, rx: Receiver<Op>, failing: Arc<AtomicBool>) {
    let mut w = Writer {
        backend,
        waiting: HashMap::new(),
        failing,
        dropped: false,
    };
    loop {
        let next = if w.waiting.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(RETRY_EVERY)
        };
        match next {
            Ok(op) => {
                w.take(op);
                // Everything already queued goes in one pass.
                while let Ok(op) = rx.try_recv() {
                    w.take(op);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        w.flush();
    }
    if !w.waiting.is_empty() {
        w.flush();
        if !w.waiting.is_empty() {
            tracing::error!(
                lost = w.waiting.len(),
                "directory store: changes could not be written before the stop"
            );
        }
    }
}

/// A stored record, or `None` (logged) when it no longer reads as one.
pub(crate) fn decode(node_id: &str, json: &str) -> Option<NodeRecord> {
    match serde_json::from_str::<NodeRecord>(json) {
        Ok(rec) => Some(rec),
        Err(e) => {
            tracing::warn!(node_id = %node_id, error = %e, "skipping unreadable stored node");
            None
        }
    }
}
