//! The PostgreSQL backend (`--db postgres://…`), with tokio-postgres.
//!
//! The writer thread owns a small tokio runtime (one worker, which also
//! drives the connection) and blocks on it: the directory's own runtime
//! never waits for the database, and shutdown can join the thread from any
//! runtime. A lost connection is opened again on the next write; each
//! write is bounded by [`WRITE_TIMEOUT`].
//!
//! The schema is versioned in `migrations/postgres/NNNN_name.sql` (compiled
//! in) and applied at start in one transaction under an advisory lock, so
//! directories starting at once on an empty database do not race; each
//! applied version is a row of `schema_migrations`. A database whose schema
//! is newer than this binary refuses the start.
//!
//! No TLS in this build: `sslmode` absent or `disable` connects in the
//! clear, any other `sslmode` refuses the start (reach the server over a
//! private network or a local socket). The password never reaches a log
//! line or an error: [`PostgresUrl`] shows the URL with `***` instead.

use super::{Backend, Op};
use crate::directory::record::NodeRecord;
use std::fmt;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls, Statement};

/// Connect time limit when the URL sets none (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of one write (reconnecting included).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The advisory lock migrations run under (any constant shared by every
/// iicp-node: the ASCII of "iicp-mig").
const MIGRATION_LOCK: i64 = 0x6969_6370_2d6d_6967;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    include_str!("../../../migrations/postgres/0001_nodes.sql"),
)];

/// A PostgreSQL connection string (`postgres://user:password@host:port/db`).
/// It prints, in `Display` and `Debug` alike, with the password (in the
/// user part or a `password=` parameter) replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// Wraps a connection string; it is checked when the directory starts.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// Whether `value` is a PostgreSQL URL (`postgres://`, `postgresql://`).
    pub fn is_postgres(value: &str) -> bool {
        let lower = value.get(..13).unwrap_or(value).to_ascii_lowercase();
        lower.starts_with("postgres://") || lower.starts_with("postgresql://")
    }

    /// The connection string itself, with its password. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The password it holds, if any (to scrub it from error text).
    fn password(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        let pw = url
            .password()
            .map(|p| percent_decode(p).unwrap_or_else(|| p.to_owned()));
        pw.or_else(|| {
            url.query_pairs()
                .find(|(k, _)| k == "password")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|p| !p.is_empty())
    }

    /// A `sslmode` this build cannot honour, if the URL asks for one.
    fn unsupported_sslmode(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned())
            .filter(|v| v != "disable")
    }
}

/// `%XX` decoding of a URL's password (None when it is not valid UTF-8).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s.get(i + 1..i + 3);
        if let (b'%', Some(b)) = (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            // Unparseable: show the scheme only, in case a password is in it.
            let scheme = self.0.split("://").next().unwrap_or("postgres");
            return write!(f, "{scheme}://(not shown: not a valid URL)");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(url.as_str())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// An open connection and its prepared statements.
struct Conn {
    client: Client,
    upsert: Statement,
    delete: Statement,
}

/// A PostgreSQL database, owned by the writer thread.
pub(crate) struct Postgres {
    rt: tokio::runtime::Runtime,
    config: Config,
    conn: Option<Conn>,
    password: Option<String>,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
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

/// Opens a connection, driven by a task of the writer's runtime.
async fn connect_client(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "directory store: PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Prepares the statements of the writes (the tables must exist).
async fn prepare(client: Client) -> Result<Conn, tokio_postgres::Error> {
    let upsert = client
        .prepare(
            "INSERT INTO nodes (node_id, record, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (node_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
        )
        .await?;
    let delete = client
        .prepare("DELETE FROM nodes WHERE node_id = $1")
        .await?;
    Ok(Conn {
        client,
        upsert,
        delete,
    })
}

async fn connect(config: &Config) -> Result<Conn, tokio_postgres::Error> {
    prepare(connect_client(config).await?).await
}

/// Applies the migrations the database lacks, in one transaction under
/// the advisory lock; returns the versions applied now.
async fn migrate(client: &mut Client) -> Result<Vec<i32>, OpenError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
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
    tx.commit().await?;
    Ok(now)
}

impl Postgres {
    fn error(&self, e: &tokio_postgres::Error) -> String {
        cause(e, self.password.as_deref())
    }

    async fn write_async(
        conn: &mut Option<Conn>,
        config: &Config,
        op: &Op,
    ) -> Result<(), tokio_postgres::Error> {
        let c = match conn {
            Some(c) if !c.client.is_closed() => c,
            _ => conn.insert(connect(config).await?),
        };
        match op {
            Op::Upsert(id, json) => c.client.execute(&c.upsert, &[id, json]).await,
            Op::Delete(id) => c.client.execute(&c.delete, &[id]).await,
        }
        .map(drop)
    }
}

impl Backend for Postgres {
    type Target = PostgresUrl;
    const KIND: &'static str = "postgres";

    fn open(url: PostgresUrl) -> std::io::Result<(Self, Vec<NodeRecord>)> {
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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("iicp-directory-pg")
            .enable_all()
            .build()?;
        let opened = rt.block_on(async {
            let conn = connect_and_migrate(&config).await?;
            // One real write: a read-only role or a standby refuses the start.
            conn.client
                .execute(
                    "INSERT INTO store_meta (key, value) VALUES ('opened_at', now()::text)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[],
                )
                .await?;
            let rows = conn
                .client
                .query("SELECT node_id, record FROM nodes", &[])
                .await?;
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some(rec) = super::decode(row.try_get(0)?, row.try_get(1)?) {
                    records.push(rec);
                }
            }
            Ok::<_, OpenError>((conn, records))
        });
        let (conn, records) = opened.map_err(|e| {
            std::io::Error::other(match e {
                OpenError::Db(e) => cause(&e, password.as_deref()),
                OpenError::Newer(v) => format!(
                    "the database schema is at version {v}, newer than this iicp-node knows \
                     ({}); run a newer iicp-node",
                    MIGRATIONS.last().map_or(0, |(v, _)| *v)
                ),
            })
        })?;
        Ok((
            Self {
                rt,
                config,
                conn: Some(conn),
                password,
            },
            records,
        ))
    }

    fn write(&mut self, op: &Op) -> Result<(), String> {
        let (conn, config) = (&mut self.conn, &self.config);
        let done = self.rt.block_on(async {
            tokio::time::timeout(WRITE_TIMEOUT, Self::write_async(conn, config, op)).await
        });
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
                    self.conn = None;
                }
                Err(self.error(&e))
            }
            Err(_) => {
                // A connection that hangs is dropped; the next write opens one.
                self.conn = None;
                Err(format!(
                    "no answer from PostgreSQL within {} s",
                    WRITE_TIMEOUT.as_secs()
                ))
            }
        }
    }
}

/// Why the database could not be opened.
enum OpenError {
    Db(tokio_postgres::Error),
    Newer(i32),
}

impl From<tokio_postgres::Error> for OpenError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

/// Connects, brings the schema up to date, prepares the writes.
async fn connect_and_migrate(config: &Config) -> Result<Conn, OpenError> {
    let mut client = connect_client(config).await?;
    for version in migrate(&mut client).await? {
        tracing::info!(version, "directory store: PostgreSQL migration applied");
    }
    Ok(prepare(client).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url = PostgresUrl::new("postgres://iicp:s3cr%40t@db.example:5433/dir?sslmode=disable");
        let shown = url.to_string();
        assert_eq!(
            shown,
            "postgres://iicp:***@db.example:5433/dir?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cr"));
        assert_eq!(url.password().as_deref(), Some("s3cr@t"));
        let q = PostgresUrl::new("postgresql://h/db?user=u&password=hunter22");
        assert!(!q.to_string().contains("hunter22"), "{q}");
        assert_eq!(q.password().as_deref(), Some("hunter22"));
        let bad = PostgresUrl::new("postgres://u:pw@[bad");
        assert!(!bad.to_string().contains("pw"), "{bad}");
    }

    #[test]
    fn postgres_urls_are_told_from_paths() {
        assert!(PostgresUrl::is_postgres("postgres://h/db"));
        assert!(PostgresUrl::is_postgres("PostgreSQL://h/db"));
        assert!(!PostgresUrl::is_postgres("postgres.db"));
        assert!(!PostgresUrl::is_postgres("/var/lib/postgres://x"));
        assert!(!PostgresUrl::is_postgres(""));
    }

    #[test]
    fn only_sslmode_disable_is_accepted() {
        assert_eq!(
            PostgresUrl::new("postgres://h/db").unsupported_sslmode(),
            None
        );
        assert_eq!(
            PostgresUrl::new("postgres://h/db?sslmode=disable").unsupported_sslmode(),
            None
        );
        assert_eq!(
            PostgresUrl::new("postgres://h/db?sslmode=require").unsupported_sslmode(),
            Some("require".to_owned())
        );
    }

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
