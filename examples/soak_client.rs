//! The load driver of `scripts/bench/soak.sh`: `C` workers share one [`IicpClient`]
//! (a local directory, loopback nodes allowed, tasks sealed with IICP-CX as the nodes
//! advertise keys) and send chat tasks with `chat()` (for `MODEL`, when given) until
//! `TASKS` were issued. Task `i`
//! carries its own marker (`soak task i`) in its message. Every call is wrapped in an
//! outer timeout `OUTER_GRACE_MS` above the client's own deadline, and every task ends in
//! exactly one of:
//!
//! - `succeeded`: the answer's text is the backend's fixed answer (`EXPECT`), it names
//!   the node that served it, and its task id is not one an earlier answer carried;
//! - `errors`: the client returned an `IicpError`, counted by its code (a protocol error
//!   with its HTTP status, `no_available_node` with the last candidate's code);
//! - `wrong`: an `Ok` answer that is not the fixed answer, names no node, or repeats a
//!   task id (none is expected: each is a finding);
//! - `hung`: the outer timeout fired: the client did not return within its deadline.
//!
//! Every `PROGRESS_S` seconds it prints `SOAK_PROGRESS {json}` (counts so far, with the
//! Unix time in ms), and at the end `SOAK_SUMMARY {json}` with the counts, errors by code
//! (and up to three messages each: an `IicpError` carries no payload or token), latency
//! percentiles, tasks per serving node id, and `accounted`: issued == succeeded + errors +
//! wrong + hung. Exit status 0 when everything is accounted for and nothing hung or came
//! back wrong, 1 otherwise.
//!
//!   cargo run --release --example soak_client -- DIRECTORY_URL TASKS C \
//!       [TIMEOUT_MS] [MODEL] [PROGRESS_S]
//!
//! `SOAK_NATIVE=1` sends the tasks over the native transport (`prefer_native`).

use iicp_client::{
    ChatMessage, ChatOptions, ClientConfig, IicpClient, IicpError, SelectionStrategy,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The text of the backend's fixed chat completion (`scripts/bench/lib.sh`).
const EXPECT: &str = "hello";
/// How far above the client's deadline the outer timeout fires.
const OUTER_GRACE_MS: u64 = 5_000;
/// Messages kept per error code.
const SAMPLES_PER_CODE: usize = 3;

/// Counters the progress line reads while the workers run.
#[derive(Default)]
struct Live {
    next: AtomicU64,
    issued: AtomicU64,
    succeeded: AtomicU64,
    errors: AtomicU64,
    wrong: AtomicU64,
    hung: AtomicU64,
}

/// Latencies in a fixed histogram (the driver's memory should not grow with the tasks):
/// 50 µs buckets up to 1 s, then 10 ms buckets up to 131 s.
struct Histogram(Vec<u64>);

const FINE_US: u64 = 50;
const FINE_UP_TO_US: u64 = 1_000_000;
const COARSE_US: u64 = 10_000;
const BUCKETS: usize = (FINE_UP_TO_US / FINE_US + 130_000_000 / COARSE_US) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Self(vec![0; BUCKETS])
    }
}

impl Histogram {
    fn add(&mut self, us: u64) {
        let i = if us < FINE_UP_TO_US {
            us / FINE_US
        } else {
            FINE_UP_TO_US / FINE_US + (us - FINE_UP_TO_US) / COARSE_US
        };
        self.0[(i as usize).min(BUCKETS - 1)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// The upper edge of the bucket holding the `p` quantile, in µs.
    fn quantile(&self, p: f64) -> u64 {
        let n: u64 = self.0.iter().sum();
        if n == 0 {
            return 0;
        }
        let rank = ((n as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let i = i as u64;
                let fine = FINE_UP_TO_US / FINE_US;
                return if i < fine {
                    (i + 1) * FINE_US
                } else {
                    FINE_UP_TO_US + (i - fine + 1) * COARSE_US
                };
            }
        }
        0
    }
}

/// What one worker saw, merged at the end.
#[derive(Default)]
struct Tally {
    ok_latency: Histogram,
    max_ok_latency_us: u64,
    max_latency_us: u64,
    task_id_hashes: Vec<u64>,
    per_node: HashMap<String, u64>,
    errors: BTreeMap<String, u64>,
    samples: BTreeMap<String, Vec<String>>,
    wrong: Vec<String>,
    hung_tasks: Vec<u64>,
}

/// The key an error is counted under.
fn error_key(e: &IicpError) -> String {
    match e {
        IicpError::Protocol { code, status, .. } => format!("{code} (HTTP {status})"),
        IicpError::NoAvailableNode {
            last: Some(last), ..
        } => format!("no_available_node (last: {})", error_key(last)),
        other => other.code().to_owned(),
    }
}

fn hash_of(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn worker(
    client: IicpClient,
    total: u64,
    model: Option<String>,
    outer: Duration,
    live: Arc<Live>,
) -> Tally {
    let mut t = Tally::default();
    loop {
        let i = live.next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return t;
        }
        live.issued.fetch_add(1, Ordering::Relaxed);
        let messages = vec![ChatMessage::user(format!("soak task {i}"))];
        let t0 = Instant::now();
        let options = ChatOptions {
            model: model.clone(),
            ..ChatOptions::default()
        };
        let outcome = tokio::time::timeout(outer, client.chat(messages, Some(options))).await;
        let us = t0.elapsed().as_micros() as u64;
        t.max_latency_us = t.max_latency_us.max(us);
        match outcome {
            Ok(Ok(reply)) => {
                let text = reply.text();
                match &reply.node_id {
                    Some(node) if text == EXPECT => {
                        live.succeeded.fetch_add(1, Ordering::Relaxed);
                        t.ok_latency.add(us);
                        t.max_ok_latency_us = t.max_ok_latency_us.max(us);
                        t.task_id_hashes.push(hash_of(&reply.task_id));
                        *t.per_node.entry(node.clone()).or_default() += 1;
                    }
                    _ => {
                        live.wrong.fetch_add(1, Ordering::Relaxed);
                        if t.wrong.len() < SAMPLES_PER_CODE {
                            t.wrong.push(format!(
                                "task {i}: {} characters of text, node {:?}",
                                text.len(),
                                reply.node_id
                            ));
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                live.errors.fetch_add(1, Ordering::Relaxed);
                let key = error_key(&e);
                *t.errors.entry(key.clone()).or_default() += 1;
                let samples = t.samples.entry(key).or_default();
                if samples.len() < SAMPLES_PER_CODE {
                    samples.push(e.to_string());
                }
            }
            Err(_elapsed) => {
                live.hung.fetch_add(1, Ordering::Relaxed);
                t.hung_tasks.push(i);
            }
        }
    }
}

fn progress(live: &Live, started: Instant) -> Value {
    let (s, e, w, h) = (
        live.succeeded.load(Ordering::Relaxed),
        live.errors.load(Ordering::Relaxed),
        live.wrong.load(Ordering::Relaxed),
        live.hung.load(Ordering::Relaxed),
    );
    let issued = live.issued.load(Ordering::Relaxed);
    json!({
        "unix_ms": unix_ms(),
        "elapsed_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "issued": issued,
        "done": s + e + w + h,
        "succeeded": s,
        "errors": e,
        "wrong": w,
        "hung": h,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: soak_client DIRECTORY_URL TASKS C [TIMEOUT_MS] [MODEL] [PROGRESS_S]");
        std::process::exit(2);
    }
    let directory_url = args[1].clone();
    let total: u64 = args[2].parse().expect("TASKS is a number");
    let c: usize = args[3].parse().expect("C is a number");
    let timeout_ms: u64 = args
        .get(4)
        .map_or(10_000, |s| s.parse().expect("TIMEOUT_MS"));
    let model = args.get(5).cloned();
    let progress_s: f64 = args.get(6).map_or(10.0, |s| s.parse().expect("PROGRESS_S"));
    let native = std::env::var("SOAK_NATIVE").is_ok_and(|v| v == "1");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let summary = runtime.block_on(async move {
        let config = ClientConfig {
            directory_url,
            timeout_ms,
            ..ClientConfig::default()
        };
        // The three nodes spread the load: weighted_v1 draws the first of the top 3.
        let client = IicpClient::builder(config)
            .allow_private_nodes(true)
            .selection(SelectionStrategy::WeightedV1 { top_k: 3 })
            .prefer_native(native)
            .build()
            .expect("a client");
        let live = Arc::new(Live::default());
        let started = Instant::now();
        let outer = Duration::from_millis(timeout_ms + OUTER_GRACE_MS);
        let handles: Vec<_> = (0..c)
            .map(|_| {
                tokio::spawn(worker(
                    client.clone(),
                    total,
                    model.clone(),
                    outer,
                    live.clone(),
                ))
            })
            .collect();

        let reporter = {
            let live = live.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(progress_s));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    println!("SOAK_PROGRESS {}", progress(&live, started));
                }
            })
        };

        let mut all = Tally::default();
        let mut panics = 0u64;
        for h in handles {
            match h.await {
                Ok(t) => {
                    all.ok_latency.merge(&t.ok_latency);
                    all.max_ok_latency_us = all.max_ok_latency_us.max(t.max_ok_latency_us);
                    all.max_latency_us = all.max_latency_us.max(t.max_latency_us);
                    all.task_id_hashes.extend(t.task_id_hashes);
                    for (k, v) in t.per_node {
                        *all.per_node.entry(k).or_default() += v;
                    }
                    for (k, v) in t.errors {
                        *all.errors.entry(k).or_default() += v;
                    }
                    for (k, v) in t.samples {
                        let kept = all.samples.entry(k).or_default();
                        kept.extend(v);
                        kept.truncate(SAMPLES_PER_CODE);
                    }
                    all.wrong.extend(t.wrong);
                    all.hung_tasks.extend(t.hung_tasks);
                }
                Err(_) => panics += 1,
            }
        }
        reporter.abort();
        let wall = started.elapsed();
        println!("SOAK_PROGRESS {}", progress(&live, started));

        let ids = all.task_id_hashes.len();
        all.task_id_hashes.sort_unstable();
        all.task_id_hashes.dedup();
        let repeated_task_ids = (ids - all.task_id_hashes.len()) as u64;
        all.hung_tasks.sort_unstable();
        all.hung_tasks.truncate(20);
        let issued = live.issued.load(Ordering::Relaxed);
        let succeeded = live.succeeded.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let wrong = live.wrong.load(Ordering::Relaxed);
        let hung = live.hung.load(Ordering::Relaxed);
        let per_node: BTreeMap<_, _> = all.per_node.into_iter().collect();
        json!({
            "tasks": total,
            "concurrency": c,
            "transport": if native { "native" } else { "http" },
            "client_timeout_ms": timeout_ms,
            "outer_timeout_ms": timeout_ms + OUTER_GRACE_MS,
            "wall_s": (wall.as_secs_f64() * 10.0).round() / 10.0,
            "tasks_per_s": (issued as f64 / wall.as_secs_f64()).round(),
            "issued": issued,
            "succeeded": succeeded,
            "errors": errors,
            "errors_by_code": all.errors,
            "error_samples": all.samples,
            "wrong": wrong,
            "wrong_samples": all.wrong,
            "hung": hung,
            "hung_tasks": all.hung_tasks,
            "worker_panics": panics,
            "repeated_task_ids": repeated_task_ids,
            "accounted": issued == total && issued == succeeded + errors + wrong + hung,
            "latency_ok_us": {
                "p50": all.ok_latency.quantile(0.50),
                "p99": all.ok_latency.quantile(0.99),
                "p999": all.ok_latency.quantile(0.999),
                "max": all.max_ok_latency_us,
            },
            "latency_max_any_us": all.max_latency_us,
            "succeeded_per_node_id": per_node,
        })
    });
    println!("SOAK_SUMMARY {summary}");
    let clean = summary["accounted"] == json!(true)
        && summary["hung"] == json!(0)
        && summary["wrong"] == json!(0)
        && summary["repeated_task_ids"] == json!(0)
        && summary["worker_panics"] == json!(0);
    std::process::exit(if clean { 0 } else { 1 });
}
