//! Directory replicas on one PostgreSQL database under load (issue 19):
//! R release `iicp-node directory --db postgres://…` processes, N nodes
//! registered through them in turn, every node heartbeating on schedule
//! (each heartbeat through the next replica), and meanwhile discover timed
//! on each replica, and how long a registration on the first replica takes
//! to be readable on the others. Driven by
//! `scripts/bench/directory_replicas.sh`, which builds the binary and starts
//! a private PostgreSQL cluster.
//!
//! Environment:
//!   IICP_NODE_BIN        the directory binary (default target/release/iicp-node)
//!   DIRREP_DB            postgres:// URL of a role that may create databases (required);
//!                        the run makes a database of its own there and drops it
//!   DIRREP_REPLICAS      replicas (default 3)
//!   DIRREP_NODES         registered nodes (default 20000)
//!   DIRREP_HEARTBEAT_MS  each node's heartbeat interval (default 30000, the directory's)
//!   DIRREP_BUDGET_S      seconds of discover per query and replica (default 4)
//!   DIRREP_WORKERS       concurrent registrations and heartbeats (default 32)
//!   DIRREP_PROBES        registrations whose arrival on the other replicas is timed (default 20)
//!   DIRREP_OUT           JSON lines appended here (default: stdout only)
//!
//! The node population and the queries are `directory_load/mod.rs`'s.

#[path = "directory_load/mod.rs"]
mod directory_load;

use directory_load::{
    QUERIES, cx_keys, emit, env_or, free_port, heartbeat, percentile, register_all, registration,
    time_discover,
};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A replica: its process and base URL.
struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_replica(bin: &str, db: &str, nodes: usize, hb_ms: u64) -> Replica {
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "directory",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            db,
            "--skip-liveness-check",
            "--register-rate-limit",
            "0",
            "--max-nodes",
            &(nodes + 1000).to_string(),
            "--enforce-probation",
            "--evict-after-secs",
            "3600",
            "--heartbeat-ms",
            &hb_ms.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a replica");
    let base = format!("http://127.0.0.1:{port}/api");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/v1/health")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replica { child, base }
}

/// A registered node: its credentials and the last challenge it got.
struct Registered {
    id: String,
    token: String,
    key: iicp_client::Secret,
    challenge: Mutex<Option<String>>,
    /// Heartbeats sent: the next one goes through replica `(i + beats) % R`.
    beats: AtomicUsize,
}

/// What the heartbeat schedule saw.
#[derive(Default)]
struct Schedule {
    sent: AtomicUsize,
    failed: AtomicUsize,
    /// Sent more than a second after their due time.
    late: AtomicUsize,
    latency_ms: Mutex<Vec<f64>>,
}

async fn beat(http: &reqwest::Client, base: &str, i: usize, node: &Registered) -> bool {
    let ack = json!({"node_id": node.id});
    let mut body = heartbeat(i, &ack);
    let challenge = node
        .challenge
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(c) = challenge {
        body["challenge_response"] = json!(iicp_client::wire::heartbeat::challenge_response(
            &node.key, &c
        ));
    }
    let resp = http
        .post(format!("{base}/v1/heartbeat"))
        .bearer_auth(&node.token)
        .json(&body)
        .send()
        .await;
    let Ok(resp) = resp else { return false };
    if !resp.status().is_success() {
        return false;
    }
    let pong: Value = resp.json().await.unwrap_or_default();
    *node.challenge.lock().unwrap_or_else(|p| p.into_inner()) =
        pong["challenge"].as_str().map(str::to_owned);
    true
}

#[tokio::main]
async fn main() {
    let bin = env_or("IICP_NODE_BIN", "target/release/iicp-node");
    let server = std::env::var("DIRREP_DB").expect("DIRREP_DB: a postgres:// URL");
    let r: usize = env_or("DIRREP_REPLICAS", "3").parse().unwrap_or(3).max(2);
    let n: usize = env_or("DIRREP_NODES", "20000").parse().unwrap_or(20_000);
    let hb_ms: u64 = env_or("DIRREP_HEARTBEAT_MS", "30000")
        .parse()
        .unwrap_or(30_000);
    let budget = Duration::from_secs_f64(env_or("DIRREP_BUDGET_S", "4").parse().unwrap_or(4.0));
    let workers: usize = env_or("DIRREP_WORKERS", "32").parse().unwrap_or(32);
    let probes: usize = env_or("DIRREP_PROBES", "20").parse().unwrap_or(20);
    let out = std::env::var("DIRREP_OUT").ok();

    // A database of this run's own.
    let name = format!("iicp_bench_{}", uuid::Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .expect("connect to DIRREP_DB");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the bench database");
    let mut db = url::Url::parse(&server).expect("DIRREP_DB is a URL");
    db.set_path(&name);

    let mut replicas = Vec::new();
    for _ in 0..r {
        replicas.push(start_replica(&bin, db.as_str(), n, hb_ms).await);
    }
    let bases: Arc<Vec<String>> = Arc::new(replicas.iter().map(|x| x.base.clone()).collect());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let cx_keys = cx_keys();

    // Register N nodes, node i through replica i % R.
    let failures = Arc::new(AtomicUsize::new(0));
    let (acks, register_s) = register_all(
        &http,
        bases.clone(),
        n,
        workers,
        cx_keys.clone(),
        failures.clone(),
    )
    .await;
    let nodes: Arc<Vec<Option<Registered>>> = Arc::new(
        acks.iter()
            .map(|ack| {
                ack.get().map(|ack| Registered {
                    id: ack["node_id"].as_str().unwrap_or_default().to_owned(),
                    token: ack["node_token"].as_str().unwrap_or_default().to_owned(),
                    key: iicp_client::Secret::new(
                        ack["node_hmac_key"].as_str().unwrap_or_default(),
                    ),
                    challenge: Mutex::new(None),
                    beats: AtomicUsize::new(1),
                })
            })
            .collect(),
    );
    eprintln!(
        "[dirrep] {n} nodes registered through {r} replicas in {register_s:.1} s ({} failed)",
        failures.load(Ordering::Relaxed)
    );

    // The schedule: node i heartbeats at i/N of every interval, through the
    // next replica each time.
    let schedule = Arc::new(Schedule::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::mpsc::channel::<(usize, Instant)>(workers * 4);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut beaters = Vec::new();
    for _ in 0..workers {
        let (rx, http, bases, nodes, schedule) = (
            rx.clone(),
            http.clone(),
            bases.clone(),
            nodes.clone(),
            schedule.clone(),
        );
        beaters.push(tokio::spawn(async move {
            loop {
                let Some((i, due)) = rx.lock().await.recv().await else {
                    return;
                };
                let Some(node) = &nodes[i] else { continue };
                if due.elapsed() > Duration::from_secs(1) {
                    schedule.late.fetch_add(1, Ordering::Relaxed);
                }
                let k = node.beats.fetch_add(1, Ordering::Relaxed);
                let base = &bases[(i + k) % bases.len()];
                let t = Instant::now();
                let ok = beat(&http, base, i, node).await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                schedule.sent.fetch_add(1, Ordering::Relaxed);
                if ok {
                    schedule
                        .latency_ms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(ms);
                } else {
                    schedule.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let ticker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let period = Duration::from_millis(hb_ms);
            for round in 0u32.. {
                for i in 0..n {
                    let due = start + period * round + period.mul_f64(i as f64 / n as f64);
                    tokio::time::sleep_until(due).await;
                    if stop.load(Ordering::Relaxed) || tx.send((i, due.into_std())).await.is_err() {
                        return;
                    }
                }
            }
        })
    };
    // The first beats of every node land before the measurement: a tenth of
    // an interval, and at least 3 s.
    let warm = Duration::from_millis(hb_ms / 10).max(Duration::from_secs(3));
    tokio::time::sleep(warm).await;

    let started = Instant::now();
    for (ri, base) in bases.iter().enumerate() {
        for (query, q) in QUERIES {
            let url = format!("{base}/v1/discover?{q}");
            let (count, samples) = time_discover(&http, &url, budget, usize::MAX).await;
            emit(
                out.as_deref(),
                &json!({
                    "kind": "discover", "replica": ri, "replicas": r, "nodes": n,
                    "query": query, "returned": count, "samples": samples.len(),
                    "p50_ms": percentile(&samples, 0.5), "p99_ms": percentile(&samples, 0.99),
                }),
            );
        }
    }

    // A registration on replica 0: how long until the others read it.
    let mut arrival = Vec::new();
    for p in 0..probes {
        let resp = http
            .post(format!("{}/v1/register", bases[0]))
            .json(&registration(n + p, &cx_keys))
            .send()
            .await
            .expect("register a probe");
        let registered = Instant::now();
        let ack: Value = resp.json().await.unwrap_or_default();
        let id = ack["node_id"].as_str().unwrap_or_default().to_owned();
        for base in bases.iter().skip(1) {
            let url = format!("{base}/v1/node/{id}");
            loop {
                let seen = http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if seen {
                    break;
                }
                assert!(
                    registered.elapsed() < Duration::from_secs(60),
                    "a probe never arrived"
                );
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        arrival.push(registered.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    arrival.sort_by(f64::total_cmp);
    let measured_s = started.elapsed().as_secs_f64() + warm.as_secs_f64();

    stop.store(true, Ordering::Relaxed);
    ticker.abort();
    for b in beaters {
        b.abort();
    }
    let mut lat = schedule
        .latency_ms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    lat.sort_by(f64::total_cmp);
    let sent = schedule.sent.load(Ordering::Relaxed);
    emit(
        out.as_deref(),
        &json!({
            "kind": "load", "replicas": r, "nodes": n, "heartbeat_ms": hb_ms,
            "register_per_s": n as f64 / register_s,
            "register_failed": failures.load(Ordering::Relaxed),
            "heartbeats_sent": sent,
            "heartbeats_per_s": sent as f64 / measured_s,
            "heartbeats_failed": schedule.failed.load(Ordering::Relaxed),
            "heartbeats_late": schedule.late.load(Ordering::Relaxed),
            "heartbeat_p50_ms": if lat.is_empty() { 0.0 } else { percentile(&lat, 0.5) },
            "heartbeat_p99_ms": if lat.is_empty() { 0.0 } else { percentile(&lat, 0.99) },
            "arrival_p50_ms": if arrival.is_empty() { 0.0 } else { percentile(&arrival, 0.5) },
            "arrival_max_ms": arrival.last().copied().unwrap_or(0.0),
        }),
    );
    drop(replicas);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
