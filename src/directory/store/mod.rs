//! Optional SQLite persistence of registrations (`--db FILE`).
//!
//! The registry lives in memory; every change is also written by one writer
//! thread, so handlers never wait on disk and a restart finds tokens still
//! valid and stale nodes still stale (their `last_seen` is stored). Records
//! are stored as JSON in one table.
//!
//! Faults of the disk (issue 18). At start, the file is opened for writing
//! and one row is written: a read-only file system, a full disk or an
//! unwritable file refuses the start with the cause, instead of a directory
//! that promises persistence and silently has none. While running, a write
//! that fails (the disk filled up, say) does not stop the directory: it
//! serves from memory, logs the failure once, keeps the latest change of
//! each node waiting, retries every [`RETRY_EVERY`], and logs once when the
//! writes succeed again — the waiting changes are written then, so the file
//! catches up. [`Store::is_failing`] says which state it is in (the health
//! answer shows it).
//!
//! Threat model: records come from nodes (untrusted) but are bounded by the
//! registry before they get here; they are bound as SQL parameters, never
//! spliced into SQL. Records hold token hashes, never log text here.

use super::record::NodeRecord;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Pending writes beyond which handlers wait for the disk (back-pressure).
const QUEUE_DEPTH: usize = 1024;
/// How often waiting changes are retried while writes fail.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Most nodes whose change may wait while writes fail; beyond, new changes
/// are not kept (and that is logged once).
const MAX_WAITING: usize = 65_536;

/// One change, keyed by node id: the latest change of a node replaces any
/// earlier one still waiting.
enum Op {
    Upsert(String, String),
    Delete(String),
}

impl Op {
    fn node_id(&self) -> &str {
        match self {
            Self::Upsert(id, _) | Self::Delete(id) => id,
        }
    }
}

/// Handle to the writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    tx: Mutex<Option<SyncSender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    failing: Arc<AtomicBool>,
}

/// An error opening the store, with the cause (the caller names the path).
fn open_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Store {
    /// Opens (creating if needed) the database, checks that it can be
    /// written, and returns the stored records.
    pub fn open(path: &Path) -> std::io::Result<(Self, Vec<NodeRecord>)> {
        // The OS's own error (read-only file system, permission denied)
        // is clearer than SQLite's "unable to open database file".
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let conn = Connection::open(path).map_err(open_error)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS nodes (node_id TEXT PRIMARY KEY, record TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(open_error)?;
        // One real write: a full disk or a read-only file refuses the start.
        let opened = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        conn.execute(
            "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('opened_at', ?1)",
            params![opened.to_string()],
        )
        .map_err(open_error)?;
        let records = read_records(&conn).map_err(open_error)?;
        let failing = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let flag = failing.clone();
        let writer = std::thread::Builder::new()
            .name("iicp-directory-store".into())
            .spawn(move || write_loop(conn, rx, flag))?;
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
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match tx {
            Some(tx) if tx.send(op).is_ok() => {}
            Some(_) => tracing::error!("directory store writer has stopped; change not persisted"),
            None => tracing::warn!("directory store is closed; change not persisted"),
        }
    }

    /// Flushes queued writes and stops the writer; later writes are dropped.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
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

fn read_records(conn: &Connection) -> rusqlite::Result<Vec<NodeRecord>> {
    let mut records = Vec::new();
    let mut stmt = conn.prepare("SELECT node_id, record FROM nodes")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (id, json) = row?;
        match serde_json::from_str::<NodeRecord>(&json) {
            Ok(rec) => records.push(rec),
            Err(e) => {
                tracing::warn!(node_id = %id, error = %e, "skipping unreadable stored node")
            }
        }
    }
    Ok(records)
}

fn write(conn: &Connection, op: &Op) -> rusqlite::Result<usize> {
    match op {
        Op::Upsert(id, json) => conn.execute(
            "INSERT INTO nodes (node_id, record) VALUES (?1, ?2)
             ON CONFLICT(node_id) DO UPDATE SET record = excluded.record",
            params![id, json],
        ),
        Op::Delete(id) => conn.execute("DELETE FROM nodes WHERE node_id = ?1", params![id]),
    }
}

/// Changes not yet written, and whether the disk is failing.
struct Writer {
    conn: Connection,
    waiting: HashMap<String, Op>,
    failing: Arc<AtomicBool>,
    /// Whether a change was dropped for want of room (logged once).
    dropped: bool,
}

impl Writer {
    fn take(&mut self, op: Op) {
        if self.waiting.len() >= MAX_WAITING && !self.waiting.contains_key(op.node_id()) {
            if !self.dropped {
                tracing::error!(
                    waiting = self.waiting.len(),
                    "directory store: too many changes waiting for the disk; newer ones are not kept"
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
            if let Err(e) = write(&self.conn, op) {
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

fn write_loop(conn: Connection, rx: Receiver<Op>, failing: Arc<AtomicBool>) {
    let mut w = Writer {
        conn,
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
