//! Several `iicp-node directory` replicas on one PostgreSQL database
//! behave as one directory (issue 19): any replica answers any request,
//! a change through one reaches the others' caches, a stale node expires
//! once, one replica killed leaves the others serving, and a lost database
//! keeps discover answering while writes are refused with 503 until it is
//! back.
//!
//! The real binary against a real server; nothing here asserts a duration:
//! what must happen "within the staleness bound" is polled for until a
//! generous deadline. Ignored by default (they need PostgreSQL:
//! `IICP_TEST_POSTGRES_URL`, as `directory_postgres.rs`); `.ci/run` runs
//! them with `cargo test --test directory_replicas -- --ignored`.

mod common;

use common::node_bin::{directory_command, free_port};
use common::postgres::{Cable, Cluster, Node, TestDb, db_args, discovered};
use common::watch::Watched;
use common::{get_at, post_at};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Far above the documented staleness bound (two polls of 2 s), so that a
/// slow machine does not fail a test: only the behaviour is asserted.
const DEADLINE: Duration = Duration::from_secs(60);

/// A replica on `url` with `extra` flags, once it listens; its base URL.
fn replica(url: &str, extra: &[&str]) -> (Watched, String) {
    let port = free_port();
    let mut args = db_args(url);
    args.extend_from_slice(extra);
    let mut cmd = directory_command(port, &args);
    cmd.env("RUST_LOG", "info,iicp_client::directory=debug");
    let mut dir = Watched::start(cmd);
    dir.wait_for("listening on", Duration::from_secs(30));
    (dir, format!("http://127.0.0.1:{port}"))
}

/// Polls `check` until it holds, panicking with `what` after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status_of(root: &str, path: &str) -> u16 {
    reqwest::get(format!("{root}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn deregister(base: &str, id: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .delete(format!("{base}/v1/register"))
        .bearer_auth(token)
        .json(&json!({"node_id": id}))
        .send()
        .await
        .unwrap();
    common::read(resp).await
}

/// The sum of `evicted=N` over a replica's "forgot nodes" lines.
fn evicted(dir: &mut Watched) -> usize {
    dir.lines()
        .iter()
        .filter(|l| l.contains("forgot nodes unseen"))
        .filter_map(|l| {
            let rest = &l[l.find("evicted=")? + "evicted=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

fn no_panics(dir: &mut Watched) {
    let lines = dir.lines().join("\n");
    assert!(!lines.contains("panicked"), "{lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn any_replica_answers_any_request() {
    let db = TestDb::new().await;
    let url = db.url.to_string();
    let (mut a, root_a) = replica(&url, &[]);
    let (mut b, root_b) = replica(&url, &[]);
    let (base_a, base_b) = (format!("{root_a}/api"), format!("{root_b}/api"));

    // Registered through A: discoverable through B within the bound.
    let mut node = Node::register(&base_a).await;
    eventually("a node registered on A is discovered on B", || async {
        discovered(&base_b).await == [node.id.clone()]
    })
    .await;
    // Heartbeats through either, each answering the challenge the other
    // replica issued.
    for base in [&base_b, &base_a, &base_b, &base_b, &base_a] {
        assert_eq!(node.beat(base).await, 200, "heartbeat through {base}");
    }
    assert_eq!(discovered(&base_a).await, [node.id.clone()]);

    // A metrics batch counts once, whichever replica it is sent through
    // again (a retry after a lost PONG).
    let batch = json!({"metrics": {"tasks_success": 40, "tasks_failed": 0},
                       "metrics_batch_id": "batch-1"});
    let (status, first) = node.beat_with(&base_a, batch.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["metrics_batch_accepted"], "batch-1");
    let (status, again) = node.beat_with(&base_b, batch).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["metrics_batch_accepted"], "batch-1");
    assert_eq!(
        again["reputation_score"], first["reputation_score"],
        "the same batch through B changes nothing"
    );
    let raised = first["reputation_score"].as_f64().unwrap();
    assert!(raised > 0.5, "{first}");

    // Token rotation through B (a proven re-registration): the new token
    // works through A at once, the old one no longer anywhere.
    let mut again = common::registration("http://127.0.0.1:9", &["m"]);
    again["node_id"] = json!(node.id);
    again["current_node_token"] = json!(node.token);
    let (status, ack) = post_at(&base_b, "/v1/register", &again, None).await;
    assert_eq!(status, 201, "{ack}");
    assert_eq!(ack["node_id"], json!(node.id));
    assert_eq!(ack["recovered"], true);
    let old = std::mem::replace(
        &mut node,
        Node {
            id: ack["node_id"].as_str().unwrap().to_owned(),
            token: ack["node_token"].as_str().unwrap().to_owned(),
            key: iicp_client::Secret::new(ack["node_hmac_key"].as_str().unwrap()),
            challenge: None,
        },
    );
    for base in [&base_a, &base_b] {
        let beat = json!({"node_id": old.id});
        let (status, body) = post_at(base, "/v1/heartbeat", &beat, Some(&old.token)).await;
        assert_eq!(status, 401, "the rotated token through {base}: {body}");
    }
    assert_eq!(node.beat(&base_a).await, 200, "the new token through A");
    assert_eq!(node.beat(&base_b).await, 200, "the new token through B");

    // One signing key: a consumer token signed by A verifies with B's key.
    let key_a = get_at(&base_a, "/v1/directory-key").await;
    let key_b = get_at(&base_b, "/v1/directory-key").await;
    assert_eq!(key_a["public_key"], key_b["public_key"]);
    let peer = Node::register(&base_b).await;
    eventually("the peer registered on B is known to A", || async {
        status_of(&base_a, &format!("/v1/node/{}", peer.id)).await == 200
    })
    .await;
    let resp = reqwest::Client::new()
        .post(format!("{base_a}/v1/consumer-token"))
        .bearer_auth(&peer.token)
        .json(&json!({"target_node_id": node.id, "intent": common::CHAT}))
        .send()
        .await
        .unwrap();
    let (status, token) = common::read(resp).await;
    assert_eq!(status, 201, "{token}");
    let public =
        iicp_client::token::DirectoryPublicKey::from_hex(key_b["public_key"].as_str().unwrap())
            .unwrap();
    let claims = public
        .verify_consumer_token(token["token"].as_str().unwrap())
        .expect("a token signed by A verifies with B's key");
    assert_eq!((claims.sub, claims.aud), (peer.id.clone(), node.id.clone()));

    // Deregistered through A: B answers 404 to its heartbeat at once, and
    // drops it from discover within the bound.
    let (status, body) = deregister(&base_a, &node.id, &node.token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(node.beat(&base_b).await, 404);
    eventually("a node deregistered on A leaves B's discover", || async {
        !discovered(&base_b).await.contains(&node.id)
    })
    .await;
    let (status, _) = deregister(&base_b, &peer.id, &peer.token).await;
    assert_eq!(
        status, 200,
        "deregistered through the replica it registered on"
    );
    assert_eq!(db.node_ids().await, Vec::<String>::new());
    for dir in [&mut a, &mut b] {
        assert_eq!(dir.terminate(Duration::from_secs(30)), Some(0));
        no_panics(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn a_change_without_a_notification_arrives_by_the_poll() {
    let db = TestDb::new().await;
    let url = db.url.to_string();
    let (mut a, root_a) = replica(&url, &[]);
    let (mut b, root_b) = replica(&url, &[]);
    let (base_a, base_b) = (format!("{root_a}/api"), format!("{root_b}/api"));
    let mut node = Node::register(&base_a).await;
    assert_eq!(node.beat(&base_a).await, 200);
    // Both caches listen and have loaded the table (so the copy below
    // cannot come by that first read).
    for dir in [&mut a, &mut b] {
        dir.wait_for("directory cache reloaded", DEADLINE);
    }
    // A copy of the node under another id, written with the trigger off:
    // numbered like any change, but nobody is notified.
    let sql = db.client().await;
    sql.batch_execute(&format!(
        "ALTER TABLE nodes DISABLE TRIGGER nodes_changed;
         INSERT INTO nodes (node_id, record, last_seen_ms, change_seq)
             SELECT 'polled-node', (record::jsonb || '{{\"node_id\":\"polled-node\"}}')::text,
                    last_seen_ms, nextval('node_change_seq')
             FROM nodes WHERE node_id = '{}';
         ALTER TABLE nodes ENABLE TRIGGER nodes_changed;",
        node.id
    ))
    .await
    .unwrap();
    for base in [&base_a, &base_b] {
        eventually(
            "the silent change reaches the cache by the poll",
            || async { discovered(base).await.contains(&"polled-node".to_owned()) },
        )
        .await;
    }
    for dir in [&mut a, &mut b] {
        assert!(
            dir.count("the poll found changes not yet applied") >= 1,
            "{:#?}",
            dir.lines()
        );
        assert_eq!(dir.terminate(Duration::from_secs(30)), Some(0));
        no_panics(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn a_replica_cut_from_the_database_catches_up_when_it_is_back() {
    let db = TestDb::new().await;
    let cable = Cable::to(db.server_addr()).await;
    let (mut a, root_a) = replica(db.url.as_str(), &[]);
    let (mut b, root_b) = replica(&db.via(cable.addr), &[]);
    let (base_a, base_b) = (format!("{root_a}/api"), format!("{root_b}/api"));
    let mut first = Node::register(&base_a).await;
    assert_eq!(first.beat(&base_a).await, 200);
    eventually("B sees the first node", || async {
        discovered(&base_b).await == [first.id.clone()]
    })
    .await;

    cable.cut();
    // Changes through A while B cannot hear of them.
    let (status, _) = deregister(&base_a, &first.id, &first.token).await;
    assert_eq!(status, 200);
    let mut second = Node::register(&base_a).await;
    assert_eq!(second.beat(&base_a).await, 200);
    b.wait_for("directory cache lost the database", DEADLINE);

    cable.restore();
    eventually(
        "B's cache reloads: the second node, not the first",
        || async { discovered(&base_b).await == [second.id.clone()] },
    )
    .await;
    b.wait_for("directory cache reconnected", DEADLINE);
    assert_eq!(second.beat(&base_b).await, 200);
    for dir in [&mut a, &mut b] {
        assert_eq!(dir.terminate(Duration::from_secs(30)), Some(0));
        no_panics(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn a_node_that_stops_heartbeating_expires_once() {
    let db = TestDb::new().await;
    let url = db.url.to_string();
    // Both replicas sweep every second, so they race for each stale node.
    let fast = ["--evict-after-secs", "3", "--eviction-sweep-secs", "1"];
    let (mut a, root_a) = replica(&url, &fast);
    let (mut b, root_b) = replica(&url, &fast);
    let (base_a, base_b) = (format!("{root_a}/api"), format!("{root_b}/api"));
    let mut stale = Node::register(&base_a).await;
    assert_eq!(stale.beat(&base_b).await, 200);
    let mut live = Node::register(&base_b).await;

    // `live` keeps heartbeating (through both) until `stale` is gone from
    // the database.
    let deadline = Instant::now() + DEADLINE;
    let mut through_a = true;
    while db.node_ids().await.contains(&stale.id) {
        assert!(Instant::now() < deadline, "the stale node never expired");
        let base = if through_a { &base_a } else { &base_b };
        through_a = !through_a;
        assert_eq!(live.beat(base).await, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(db.node_ids().await, [live.id.clone()]);
    for base in [&base_a, &base_b] {
        eventually("the expired node leaves every cache", || async {
            status_of(base, &format!("/v1/node/{}", stale.id)).await == 404
        })
        .await;
    }
    // Once: the evictions logged by the two replicas add up to one node.
    a.terminate(Duration::from_secs(30));
    b.terminate(Duration::from_secs(30));
    assert_eq!(
        evicted(&mut a) + evicted(&mut b),
        1,
        "A: {:#?}\nB: {:#?}",
        a.lines(),
        b.lines()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn with_one_replica_killed_the_other_serves() {
    let db = TestDb::new().await;
    let url = db.url.to_string();
    let (mut a, root_a) = replica(&url, &[]);
    let (mut b, root_b) = replica(&url, &[]);
    let (base_a, base_b) = (format!("{root_a}/api"), format!("{root_b}/api"));
    let mut node = Node::register(&base_a).await;
    assert_eq!(node.beat(&base_a).await, 200);

    a.kill();
    assert_eq!(
        node.beat(&base_b).await,
        200,
        "B takes A's node's heartbeat"
    );
    eventually("B discovers A's node", || async {
        discovered(&base_b).await == [node.id.clone()]
    })
    .await;
    let mut other = Node::register(&base_b).await;
    assert_eq!(other.beat(&base_b).await, 200);
    let mut listed = discovered(&base_b).await;
    listed.sort();
    let mut both = vec![node.id.clone(), other.id.clone()];
    both.sort();
    assert_eq!(listed, both);
    assert_eq!(b.terminate(Duration::from_secs(30)), Some(0));
    no_panics(&mut b);
}

/// A heartbeat's answer through `base`: its status and error code.
async fn beat_answer(node: &Node, base: &str) -> (u16, Value) {
    let beat = json!({"node_id": node.id});
    let (status, body) = post_at(base, "/v1/heartbeat", &beat, Some(&node.token)).await;
    (status, body["error"]["code"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn the_database_stopped_and_started_again() {
    // A cluster of this test's own: it is stopped, which the shared server
    // must not be.
    let cluster = Cluster::start();
    let (mut a, root_a) = replica(&cluster.url, &[]);
    let (mut b, root_b) = replica(&cluster.url, &[]);
    let (base_a, base_b) = (format!("{root_a}/api"), format!("{root_b}/api"));
    let mut node = Node::register(&base_a).await;
    assert_eq!(node.beat(&base_b).await, 200);
    eventually("both replicas discover the node", || async {
        discovered(&base_a).await == [node.id.clone()]
            && discovered(&base_b).await == [node.id.clone()]
    })
    .await;

    cluster.pause();
    let unavailable = (503, json!("database_unavailable"));
    for base in [&base_a, &base_b] {
        assert_eq!(
            beat_answer(&node, base).await,
            unavailable,
            "heartbeat via {base}"
        );
        let (status, body) = post_at(
            base,
            "/v1/register",
            &common::registration("http://127.0.0.1:9", &["m"]),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            unavailable,
            "{body}"
        );
        assert_eq!(body["error"]["retry_after"], 5, "{body}");
        let (status, body) = deregister(base, &node.id, &node.token).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            unavailable,
            "{body}"
        );
        assert_eq!(
            discovered(base).await,
            [node.id.clone()],
            "discover answers from the cache via {base}"
        );
    }
    for root in [&root_a, &root_b] {
        eventually("health tells the database is unreachable", || async {
            get_at(root, "/iicp/health").await["persistence"]
                .as_str()
                .is_some_and(|p| p.starts_with("postgres (database unreachable"))
        })
        .await;
    }

    cluster.resume();
    // They recover by themselves: the refused heartbeat is taken again.
    for base in [&base_a, &base_b] {
        let deadline = Instant::now() + DEADLINE;
        while node.beat(base).await != 200 {
            assert!(
                Instant::now() < deadline,
                "writes accepted again via {base}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for root in [&root_a, &root_b] {
        eventually("health is back to postgres", || async {
            get_at(root, "/iicp/health").await["persistence"] == "postgres"
        })
        .await;
    }
    let added = Node::register(&base_b).await;
    eventually("a node registered after the return reaches A", || async {
        discovered(&base_a).await.contains(&added.id)
    })
    .await;
    for dir in [&mut a, &mut b] {
        assert_eq!(dir.count("directory database unreachable"), 1, "said once");
        dir.wait_for("directory database reachable again", DEADLINE);
        assert_eq!(dir.terminate(Duration::from_secs(30)), Some(0));
        no_panics(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn the_first_replica_s_signing_key_is_every_replica_s() {
    let db = TestDb::new().await;
    let url = db.url.to_string();
    let keys = tempfile::tempdir().unwrap();
    let (first_file, other_file) = (keys.path().join("a.key"), keys.path().join("b.key"));
    let first_key = iicp_client::token::DirectorySigningKey::load_or_create(&first_file)
        .unwrap()
        .public_key()
        .to_hex();
    iicp_client::token::DirectorySigningKey::load_or_create(&other_file).unwrap();
    let (mut a, root_a) = replica(&url, &["--signing-key", first_file.to_str().unwrap()]);
    // B has a key file of its own, and C none: both sign with A's.
    let (mut b, root_b) = replica(&url, &["--signing-key", other_file.to_str().unwrap()]);
    let (mut c, root_c) = replica(&url, &[]);
    for root in [&root_a, &root_b, &root_c] {
        let key = get_at(&format!("{root}/api"), "/v1/directory-key").await;
        assert_eq!(key["public_key"], json!(first_key), "{root}");
    }
    assert_eq!(b.count("the key of --signing-key is not used"), 1);
    assert_eq!(a.count("the key of --signing-key is not used"), 0);
    for dir in [&mut a, &mut b, &mut c] {
        assert!(dir.wait_for("listening on", DEADLINE).contains(&first_key));
        assert_eq!(dir.terminate(Duration::from_secs(30)), Some(0));
        no_panics(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn a_row_that_does_not_read_as_a_node_keeps_its_id_but_blocks_nothing() {
    let db = TestDb::new().await;
    let (mut a, root_a) = replica(db.url.as_str(), &[]);
    let base_a = format!("{root_a}/api");
    db.client()
        .await
        .batch_execute(
            "INSERT INTO nodes (node_id, record, last_seen_ms)
             VALUES ('broken-node', '{\"not\": 1}', (extract(epoch FROM now()) * 1000)::bigint)",
        )
        .await
        .unwrap();
    // (Seen now, so that the start's expiry sweep leaves it.)
    let mut asked = common::registration("http://127.0.0.1:9", &["m"]);
    asked["node_id"] = json!("broken-node");
    let (status, ack) = post_at(&base_a, "/v1/register", &asked, None).await;
    assert_eq!(status, 201, "{ack}");
    assert_ne!(ack["node_id"], "broken-node", "a fresh id: {ack}");
    assert_eq!(ack["recovered"], false);
    let beat = json!({"node_id": "broken-node"});
    let (status, _) = post_at(&base_a, "/v1/heartbeat", &beat, Some("0123456789abcdef")).await;
    assert_eq!(status, 404);
    a.wait_for("skipping unreadable stored node", DEADLINE);
    assert_eq!(a.terminate(Duration::from_secs(30)), Some(0));
    no_panics(&mut a);
}
