//! Optional SQLite persistence of registrations (`--db FILE`).
//!
//! The registry lives in memory; every change is also written, in order, by
//! one writer thread, so handlers never wait on disk and a restart finds
//! tokens still valid and stale nodes still stale (their `last_seen` is
//! stored). Records are stored as JSON in one table.

use super::record::NodeRecord;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Pending writes beyond which handlers wait for the disk (back-pressure).
const QUEUE_DEPTH: usize = 1024;

enum Op {
    Upsert(String, String),
    Delete(String),
}

/// Handle to the writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    tx: Mutex<Option<SyncSender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating if needed) the database and returns the stored records.
    pub fn open(path: &Path) -> Result<(Self, Vec<NodeRecord>), rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS nodes (node_id TEXT PRIMARY KEY, record TEXT NOT NULL);",
        )?;
        let mut records = Vec::new();
        {
            let mut stmt = conn.prepare("SELECT node_id, record FROM nodes")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, json) = row?;
                match serde_json::from_str::<NodeRecord>(&json) {
                    Ok(rec) => records.push(rec),
                    Err(e) => {
                        tracing::warn!(node_id = %id, error = %e, "skipping unreadable stored node")
                    }
                }
            }
        }
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("iicp-directory-store".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok((
            Self {
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
            },
            records,
        ))
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

fn write_loop(conn: Connection, rx: Receiver<Op>) {
    for op in rx {
        let result = match &op {
            Op::Upsert(id, json) => conn.execute(
                "INSERT INTO nodes (node_id, record) VALUES (?1, ?2)
                 ON CONFLICT(node_id) DO UPDATE SET record = excluded.record",
                params![id, json],
            ),
            Op::Delete(id) => conn.execute("DELETE FROM nodes WHERE node_id = ?1", params![id]),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "directory store write failed");
        }
    }
}
