//! The PostgreSQL store (`--db postgres://…`), with tokio-postgres: the
//! database is the source of truth, and any number of directory replicas
//! share it (issue 19).
//!
//! - [`shared`]: the writes. Register, heartbeat, deregister and expiry
//!   are statements on the database, made while the request waits; an
//!   update only applies where the row is still the version the replica
//!   read (compare-and-set on `change_seq`), so replicas never overwrite
//!   each other. The database lost, writes are refused (503
//!   `database_unavailable`) and tried again on the next request.
//! - [`cache`]: each replica's read cache (the registry in memory), which
//!   discover and every read answer from. A connection `LISTEN`s on
//!   [`CHANNEL`] (a trigger notifies each changed node id) and fetches what
//!   changed; a poll of the rows changed since the last one seen, every
//!   [`cache::POLL_EVERY`], is the backstop; every (re)connection reloads
//!   the whole table. With the database lost, the cache keeps answering as
//!   it last was, and the replica reconnects by itself.
//!
//! The schema is versioned in `migrations/postgres/NNNN_name.sql` (compiled
//! in) and applied at start in one transaction under an advisory lock, so
//! directories starting at once on an empty database do not race; each
//! applied version is a row of `schema_migrations`. A database whose schema
//! is newer than this binary refuses the start. The directory's signing key
//! is stored in the same transaction by the first directory to start
//! (`store_meta`, key `signing_key`), and every replica signs with it.
//!
//! No TLS in this build: `sslmode` absent or `disable` connects in the
//! clear, any other `sslmode` refuses the start (reach the server over a
//! private network or a local socket). The password never reaches a log
//! line or an error: [`PostgresUrl`] shows the URL with `***` instead, and
//! [`cause`] scrubs it from error text.

pub(crate) mod cache;
pub(crate) mod shared;
mod url;

pub use url::PostgresUrl;

use crate::directory::record::NodeRecord;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls, Row};

/// Connect time limit when the URL sets none (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The advisory lock migrations run under (any constant shared by every
/// iicp-node: the ASCII of "iicp-mig").
const MIGRATION_LOCK: i64 = 0x6969_6370_2d6d_6967;
/// The channel the `nodes_changed` trigger notifies (0002_replicas.sql).
pub(crate) const CHANNEL: &str = "iicp_directory_nodes";
/// The `store_meta` key of the shared signing key (its seed, hex).
const SIGNING_KEY: &str = "signing_key";

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../../../../migrations/postgres/0001_nodes.sql"),
    ),
    (
        2,
        include_str!("../../../../migrations/postgres/0002_replicas.sql"),
    ),
];

/// How to reach the database, with the password kept for scrubbing.
#[derive(Clone)]
pub(crate) struct Target {
    config: Config,
    password: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Target(..)")
    }
}

impl Target {
    /// Reads the URL; refuses a `sslmode` this build cannot honour.
    fn new(url: &PostgresUrl) -> std::io::Result<Self> {
        let password = url.password();
        if let Some(mode) = url.unsupported_sslmode() {
            return Err(std::io::Error::other(format!(
                "sslmode={mode} is not supported: this build connects to PostgreSQL without TLS \
                 (use sslmode=disable over a private network or a local socket)"
            )));
        }
        let mut config: Config = url
            .expose()
            .parse()
            .map_err(|e| std::io::Error::other(cause(&e, password.as_deref())))?;
        config
            .ssl_mode(SslMode::Disable)
            .application_name("iicp-node directory");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(Self { config, password })
    }

    /// The error and its causes on one line, without the password.
    pub(crate) fn error(&self, e: &tokio_postgres::Error) -> String {
        cause(e, self.password.as_deref())
    }
}

/// The error and its causes on one line, without the password.
fn cause(e: &(dyn std::error::Error + 'static), password: Option<&str>) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let mut text = text.replace('\n', "; ");
    if let Some(pw) = password {
        text = text.replace(pw, "***");
    }
    text
}

/// Opens a connection whose I/O is driven by a task of the current runtime.
async fn connect(target: &Target) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = target.config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "directory store: PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// A node's record from a row of `(node_id, record, change_seq)`, or
/// `None` (logged) when the stored JSON no longer reads as one.
fn row_record(row: &Row) -> Result<Option<NodeRecord>, tokio_postgres::Error> {
    let id: &str = row.try_get(0)?;
    let json: &str = row.try_get(1)?;
    let seq: i64 = row.try_get(2)?;
    Ok(super::decode(id, json).map(|mut rec| {
        rec.change_seq = seq;
        rec.registration_bytes = crate::directory::beat::registration_bytes(&rec.registration);
        rec
    }))
}

/// What [`open`] found: the shared store, the stored records and the
/// signing key every replica uses.
pub(crate) struct Opened {
    /// The writes.
    pub shared: std::sync::Arc<shared::Shared>,
    /// Every stored node, for the read cache.
    pub records: Vec<NodeRecord>,
    /// The shared signing key's seed (when one was offered or stored).
    pub signing_seed: Option<[u8; 32]>,
}

/// Connects, brings the schema up to date, stores `offered_seed` as the
/// shared signing key unless one is stored already, makes one real write
/// (a read-only role or a standby refuses the start) and reads every node.
/// The error is the cause alone, without the password (the caller names
/// the database).
pub(crate) async fn open(
    url: &PostgresUrl,
    offered_seed: Option<[u8; 32]>,
) -> std::io::Result<Opened> {
    let target = Target::new(url)?;
    let opened = async {
        let mut client = connect(&target).await?;
        let (applied, signing_seed) = migrate(&mut client, offered_seed).await?;
        for version in applied {
            tracing::info!(version, "directory store: PostgreSQL migration applied");
        }
        client
            .execute(
                "INSERT INTO store_meta (key, value) VALUES ('opened_at', now()::text)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[],
            )
            .await?;
        let records = cache::read_all(&client).await?.0;
        Ok::<_, OpenError>((records, signing_seed))
    };
    let (records, signing_seed) = opened.await.map_err(|e| {
        std::io::Error::other(match e {
            OpenError::Db(e) => target.error(&e),
            OpenError::Newer(v) => format!(
                "the database schema is at version {v}, newer than this iicp-node knows \
                 ({}); run a newer iicp-node",
                MIGRATIONS.last().map_or(0, |(v, _)| *v)
            ),
            OpenError::BadKey => format!(
                "store_meta holds a {SIGNING_KEY} that is not 64 hex characters; \
                 remove that row to have a new key stored"
            ),
        })
    })?;
    Ok(Opened {
        shared: std::sync::Arc::new(shared::Shared::new(target)),
        records,
        signing_seed,
    })
}

/// Why the database could not be opened.
enum OpenError {
    Db(tokio_postgres::Error),
    Newer(i32),
    BadKey,
}

impl From<tokio_postgres::Error> for OpenError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

/// Applies the migrations the database lacks and settles the shared
/// signing key, in one transaction under the advisory lock; returns the
/// versions applied now and the key's seed.
async fn migrate(
    client: &mut Client,
    offered_seed: Option<[u8; 32]>,
) -> Result<(Vec<i32>, Option<[u8; 32]>), OpenError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // SET LOCAL: within this transaction only, the server does not send the
    // NOTICE `relation "schema_migrations" already exists` that tokio-postgres
    // would log at info on every start after the first.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    // try_get: a `schema_migrations` of another tool (a text version, say)
    // is an error that refuses the start, not a panic.
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if let Some(&newer) = applied.iter().filter(|v| **v > known).max() {
        return Err(OpenError::Newer(newer));
    }
    let mut now = Vec::new();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        now.push(*version);
    }
    let seed = match offered_seed {
        None => None,
        Some(offered) => {
            tx.execute(
                "INSERT INTO store_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&SIGNING_KEY, &hex::encode(offered)],
            )
            .await?;
            let stored: String = tx
                .query_one(
                    "SELECT value FROM store_meta WHERE key = $1",
                    &[&SIGNING_KEY],
                )
                .await?
                .try_get(0)?;
            let bytes = hex::decode(stored.trim()).map_err(|_| OpenError::BadKey)?;
            Some(<[u8; 32]>::try_from(bytes).map_err(|_| OpenError::BadKey)?)
        }
    };
    tx.commit().await?;
    Ok((now, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_compiled_in_and_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let versions: Vec<i32> = files
            .iter()
            .map(|n| n[..4].parse().expect("NNNN_name.sql"))
            .collect();
        let compiled: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, compiled);
        assert_eq!(compiled, (1..=compiled.len() as i32).collect::<Vec<_>>());
    }
}
