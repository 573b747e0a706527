//! The SQLite backend (`--db FILE`): one file, one table of JSON records;
//! the schema is created inline (`CREATE TABLE IF NOT EXISTS`).

use super::{Backend, Op};
use crate::directory::record::NodeRecord;
use rusqlite::{Connection, params};
use std::path::PathBuf;

/// An open SQLite database, owned by the writer thread.
#[derive(Debug)]
pub(crate) struct Sqlite {
    conn: Connection,
}

/// An error opening the store, with the cause (the caller names the path).
fn open_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Backend for Sqlite {
    type Target = PathBuf;
    const KIND: &'static str = "sqlite";

    fn open(path: PathBuf) -> std::io::Result<(Self, Vec<NodeRecord>)> {
        // The OS's own error (read-only file system, permission denied)
        // is clearer than SQLite's "unable to open database file".
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let conn = Connection::open(&path).map_err(open_error)?;
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
        Ok((Self { conn }, records))
    }

    fn write(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Upsert(id, json) => self.conn.execute(
                "INSERT INTO nodes (node_id, record) VALUES (?1, ?2)
                 ON CONFLICT(node_id) DO UPDATE SET record = excluded.record",
                params![id, json],
            ),
            Op::Delete(id) => self
                .conn
                .execute("DELETE FROM nodes WHERE node_id = ?1", params![id]),
        }
        .map(drop)
        .map_err(|e| e.to_string())
    }
}

fn read_records(conn: &Connection) -> rusqlite::Result<Vec<NodeRecord>> {
    let mut records = Vec::new();
    let mut stmt = conn.prepare("SELECT node_id, record FROM nodes")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (id, json) = row?;
        if let Some(rec) = super::decode(&id, &json) {
            records.push(rec);
        }
    }
    Ok(records)
}
