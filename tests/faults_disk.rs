//! Faults of the disk (issue 18): the key files and the directory's SQLite
//! store on a read-only or full file system. At start the binary exits
//! non-zero with one line naming the path and the cause, never a panic.
//! While running, a directory whose disk fills up keeps answering from
//! memory, says so once, and writes the waiting changes when there is room
//! again.
//!
//! The file systems are real (tmpfs and bind mounts in a private mount
//! namespace, `common::mounts`): the tests run as root, whom chmod would
//! not stop.

mod common;

use common::mounts::{Mount, seen_by, with_mount};
use common::node_bin::{directory_process, free_port};
use common::python::wait_for;
use common::watch::{Watched, run_bounded};
use common::{get_at, post_at};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_iicp-node");

/// Runs `iicp-node args` with `mount` made at `dir` (and `IICP_HOME` at
/// `home`), and checks that it refuses to start: a non-zero exit, one
/// `iicp-node:` line naming `path` and `cause`, no panic.
fn refuses_to_start(
    case: &str,
    mount: Mount,
    dir: &Path,
    home: &Path,
    args: &[&str],
    path: &Path,
    cause: &str,
) {
    let mut cmd = with_mount(mount, dir, BIN, args);
    cmd.env("IICP_HOME", home)
        .env("RUST_LOG", "info")
        .env("RUST_BACKTRACE", "1")
        .env_remove("IICP_DIRECTORY_SIGNING_KEY");
    let out = run_bounded(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{case}: it started\n{stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{case}: a plain failure exit\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("iicp-node: "))
        .collect();
    assert_eq!(errors.len(), 1, "{case}: one error line\n{stderr}");
    let line = errors[0];
    assert!(
        line.contains(&path.display().to_string()) && line.contains(cause),
        "{case}: the line names {} and {cause:?}: {line}",
        path.display()
    );
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{case}: {bad} in\n{stderr}");
    }
}

/// `serve` arguments for a node that needs nothing but its key file.
fn serve_args(port: &str) -> Vec<&str> {
    vec![
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--skip-registration",
        "--backend-type",
        "echo",
        "--auto-detect-nat",
        "false",
    ]
}

const READ_ONLY: &str = "Read-only file system";
const NO_SPACE: &str = "No space left on device";

#[test]
fn key_files_on_a_read_only_or_full_disk_refuse_the_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port().to_string();
    let serve = serve_args(&port);
    let listen = format!("127.0.0.1:{}", free_port());
    let key = d.join("cx_x25519.key");
    refuses_to_start(
        "CX key, read-only",
        Mount::ReadOnlyTmpfs,
        d,
        d,
        &serve,
        &key,
        READ_ONLY,
    );
    refuses_to_start(
        "CX key, disk full",
        Mount::FullTmpfs,
        d,
        d,
        &serve,
        &key,
        NO_SPACE,
    );
    let home = d.join("home");
    refuses_to_start(
        "CX key folder, read-only",
        Mount::ReadOnlyTmpfs,
        d,
        &home,
        &serve,
        &home.join("cx_x25519.key"),
        READ_ONLY,
    );
    let signing = d.join("signing.key");
    let signing_arg = signing.display().to_string();
    let directory = [
        "directory",
        "--listen",
        &listen,
        "--signing-key",
        &signing_arg,
    ];
    for (mount, cause) in [
        (Mount::ReadOnlyTmpfs, READ_ONLY),
        (Mount::FullTmpfs, NO_SPACE),
    ] {
        refuses_to_start("signing key", mount, d, d, &directory, &signing, cause);
    }
}

#[test]
fn a_store_that_cannot_be_written_refuses_the_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listen = format!("127.0.0.1:{}", free_port());
    let db = d.join("directory.db");
    let db_arg = db.display().to_string();
    let args = ["directory", "--listen", &listen, "--db", &db_arg];
    refuses_to_start(
        "new db, read-only",
        Mount::ReadOnlyTmpfs,
        d,
        d,
        &args,
        &db,
        READ_ONLY,
    );
    refuses_to_start(
        "new db, disk full",
        Mount::FullTmpfs,
        d,
        d,
        &args,
        &db,
        "database or disk is full",
    );
    // A database from an earlier run, now on a read-only mount: SQLite
    // would open it read-only without a word; the directory refuses.
    let port = free_port();
    let mut earlier = directory_process(port, &["--db", &db_arg]);
    assert_eq!(earlier.terminate(Duration::from_secs(30)), Some(0));
    assert!(db.exists());
    refuses_to_start(
        "old db, read-only",
        Mount::ReadOnlyBind,
        d,
        d,
        &args,
        &db,
        READ_ONLY,
    );
}

/// Fills the file system holding `dir` (as `pid` sees it) until a write
/// fails; returns the filler's path.
fn fill(pid: u32, dir: &Path) -> std::path::PathBuf {
    let path = seen_by(pid, &dir.join("fill"));
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    // At most 1 MiB of tmpfs: a bounded loop.
    for _ in 0..64 {
        if file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_err()
        {
            return path;
        }
    }
    panic!("the tmpfs did not fill up");
}

#[tokio::test]
async fn a_disk_that_fills_up_under_a_running_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let db = d.join("directory.db");
    let listen = format!("127.0.0.1:{port}");
    let db_arg = db.display().to_string();
    let args = [
        "directory",
        "--listen",
        &listen,
        "--db",
        &db_arg,
        "--skip-liveness-check",
    ];
    let mut cmd = with_mount(Mount::SmallTmpfs, d, BIN, &args);
    cmd.env("RUST_LOG", "info,iicp_client::directory::store=debug")
        .env_remove("IICP_DIRECTORY_SIGNING_KEY");
    let mut directory = Watched::start(cmd);
    directory.wait_for("listening on", Duration::from_secs(30));
    let root = format!("http://{listen}");
    let base = format!("{root}/api");
    assert_eq!(get_at(&root, "/iicp/health").await["persistence"], "sqlite");

    let filler = fill(directory.pid(), d);
    let (status, ack) = post_at(
        &base,
        "/v1/register",
        &common::registration("http://127.0.0.1:9", &["m"]),
        None,
    )
    .await;
    assert_eq!(status, 201, "the directory registers from memory: {ack}");
    let node_id = ack["node_id"].as_str().unwrap().to_owned();
    let token = ack["node_token"].as_str().unwrap();
    let key = iicp_client::Secret::new(ack["node_hmac_key"].as_str().unwrap_or_default());
    let mut challenge: Option<String> = None;
    for _ in 0..3 {
        let mut beat = json!({"node_id": node_id});
        if let Some(c) = &challenge {
            beat["challenge_response"] =
                json!(iicp_client::wire::heartbeat::challenge_response(&key, c));
        }
        let (status, pong) = post_at(&base, "/v1/heartbeat", &beat, Some(token)).await;
        assert_eq!(status, 200, "heartbeats are answered: {pong}");
        challenge = pong["challenge"].as_str().map(str::to_owned);
    }
    let listed = get_at(&base, &format!("/v1/discover?intent={}", common::CHAT)).await;
    assert_eq!(listed["nodes"][0]["node_id"], node_id.as_str(), "{listed}");
    assert_eq!(
        get_at(&root, "/iicp/health").await["persistence"],
        "memory (sqlite writes failing)"
    );
    // Retries go on, at debug; the failure was said once.
    directory.wait_for(
        "directory store write failed again",
        Duration::from_secs(30),
    );
    assert_eq!(
        directory.count("directory store write failed;"),
        1,
        "{:#?}",
        directory.lines()
    );

    // Room again: the waiting change is written and the file catches up.
    std::fs::remove_file(&filler).unwrap();
    directory.wait_for(
        "directory store writes succeed again",
        Duration::from_secs(30),
    );
    assert_eq!(get_at(&root, "/iicp/health").await["persistence"], "sqlite");
    // SQLite resolves /proc/<pid>/root to "/", so it reads a copy of the
    // database and its write-ahead log.
    let copy = tempfile::tempdir().unwrap();
    let stored = wait_for(
        "the node in the file",
        Duration::from_secs(10),
        String::new,
        async || {
            for name in ["directory.db", "directory.db-wal"] {
                let from = seen_by(directory.pid(), &d.join(name));
                std::fs::copy(from, copy.path().join(name)).ok()?;
            }
            let conn = rusqlite::Connection::open(copy.path().join("directory.db")).ok()?;
            let ids: Vec<String> = conn
                .prepare("SELECT node_id FROM nodes")
                .ok()?
                .query_map([], |r| r.get(0))
                .ok()?
                .collect::<Result<_, _>>()
                .ok()?;
            ids.contains(&node_id).then_some(ids)
        },
    )
    .await;
    assert_eq!(stored, [node_id]);
    assert_eq!(directory.terminate(Duration::from_secs(30)), Some(0));
    let lines = directory.lines().join("\n");
    assert!(!lines.contains("panicked"), "{lines}");
}
