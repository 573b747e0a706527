//! What the directory benches share (`directory_scale`, `directory_replicas`):
//! the reproducible node population, its heartbeats, the timed discover
//! queries, and small helpers. Included by each bench with `#[path]`.
//!
//! Every node is different in a reproducible way (a fixed seed): 1-3 of six
//! intents, 1-4 of twelve models, one of five regions, a CX key on 60 %,
//! current or old SDKs, native endpoints on 20 %, relayed nodes on 10 %; the
//! heartbeat gives each a load, running jobs, completed tasks (some past
//! probation), and hides a few (unavailable, draining, empty health list).
#![allow(dead_code)]

use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const INTENTS: [&str; 6] = [
    "urn:iicp:intent:llm:chat:v1",
    "urn:iicp:intent:llm:completion:v1",
    "urn:iicp:intent:llm:embedding:v1",
    "urn:iicp:intent:vision:caption:v1",
    "urn:iicp:intent:audio:transcribe:v1",
    "urn:iicp:intent:code:review:v1",
];
pub const MODELS: [&str; 12] = [
    "llama-3.1-8b",
    "llama-3.1-70b",
    "qwen2.5-7b",
    "qwen2.5-32b",
    "mistral-7b",
    "mixtral-8x7b",
    "gemma-2-9b",
    "phi-3-mini",
    "deepseek-v2-lite",
    "nomic-embed",
    "whisper-large",
    "llava-1.6",
];
pub const REGIONS: [&str; 5] = ["eu-central", "us-east", "us-west", "ap-south", "sa-east"];
pub const SDKS: [&str; 4] = ["0.7.68", "0.7.109", "0.7.35", "0.8.0"];

/// The discover queries timed at every size.
pub const QUERIES: [(&str, &str); 5] = [
    ("intent", "intent=urn:iicp:intent:llm:chat:v1"),
    (
        "intent+model",
        "intent=urn:iicp:intent:llm:chat:v1&model=qwen2.5-7b",
    ),
    (
        "intent+region",
        "intent=urn:iicp:intent:llm:chat:v1&region=eu-central",
    ),
    (
        "qos=interactive",
        "intent=urn:iicp:intent:llm:chat:v1&qos=interactive",
    ),
    (
        "limit=50",
        "intent=urn:iicp:intent:llm:completion:v1&limit=50",
    ),
];

/// splitmix64: reproducible variety without a dependency.
pub struct Rng(u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn pick<'a>(rng: &mut Rng, from: &[&'a str], n: usize) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    while out.len() < n {
        let x = from[rng.below(from.len())];
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

pub fn registration(i: usize, cx_keys: &[Value]) -> Value {
    let mut rng = Rng(i as u64 * 7919 + 1);
    let k = 1 + rng.below(3);
    let intents = pick(&mut rng, &INTENTS, k);
    let capabilities: Vec<Value> = intents
        .iter()
        .map(|intent| {
            let n = 1 + rng.below(4);
            json!({"intent": intent, "models": pick(&mut rng, &MODELS, n), "max_tokens": 4096})
        })
        .collect();
    let host = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let mut body = json!({
        "endpoint": format!("http://{host}:9484"),
        "region": REGIONS[rng.below(REGIONS.len())],
        "capabilities": capabilities,
        "limits": {"max_concurrent": 1 + rng.below(16), "tokens_per_min": 100_000},
        "sdk_version": SDKS[rng.below(SDKS.len())],
        "pricing": {"credit_cost_multiplier": 0.5 + rng.below(20) as f64 / 4.0},
    });
    if rng.chance(60) {
        body["cx_public_key"] = cx_keys[rng.below(cx_keys.len())].clone();
    }
    if rng.chance(20) {
        body["transport_endpoint"] = json!(format!("iicp://{host}:9485"));
    }
    if rng.chance(10) {
        body["transport_method"] = json!("turn_relay");
        body["relay_capable"] = json!(true);
    }
    body
}

pub fn heartbeat(i: usize, ack: &Value) -> Value {
    let mut rng = Rng(i as u64 * 104_729 + 3);
    let mut hb = json!({
        "node_id": ack["node_id"],
        "load": (rng.unit() * 100.0).round() / 100.0,
        "active_jobs": rng.below(8),
        "metrics": {"tasks_success": rng.below(300), "tasks_failed": u64::from(rng.chance(10))},
        "metrics_batch_id": format!("b-{i}"),
    });
    if rng.chance(5) {
        hb["available"] = json!(false);
    }
    if rng.chance(2) {
        hb["status"] = json!("draining");
    }
    if rng.chance(10) {
        let k = rng.below(3);
        hb["health_models"] = json!(pick(&mut rng, &MODELS, k));
    }
    hb
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `job(i)` for i in 0..n on `workers` concurrent tasks; returns the seconds taken.
pub async fn fan_out<F, Fut>(n: usize, workers: usize, job: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let next = next.clone();
            let job = job.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    job(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("worker");
    }
    started.elapsed().as_secs_f64()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One discover query timed at the client: three warm-ups (the connection,
/// the directory's caches; the last one's `count` is returned), then one
/// request at a time, HTTP and JSON included, until there are at least 20
/// samples and `budget` has passed, or `max` samples. Latencies in ms, sorted.
pub async fn time_discover(
    http: &reqwest::Client,
    url: &str,
    budget: Duration,
    max: usize,
) -> (u64, Vec<f64>) {
    let mut count = 0;
    for _ in 0..3 {
        let body: Value = http
            .get(url)
            .send()
            .await
            .expect("discover")
            .json()
            .await
            .unwrap_or_default();
        count = body["count"].as_u64().unwrap_or(0);
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < max && (samples.len() < 20 || started.elapsed() < budget) {
        let t = Instant::now();
        let resp = http.get(url).send().await.expect("discover");
        let _ = resp.bytes().await.expect("discover body");
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    (count, samples)
}

/// Prints a result line and appends it to `out` when given.
pub fn emit(out: Option<&str>, line: &Value) {
    println!("{line}");
    if let Some(path) = out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        writeln!(f, "{line}").unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

/// 64 advertised CX keys; a node with a key takes one of them.
pub fn cx_keys() -> Arc<Vec<Value>> {
    Arc::new(
        (0..64)
            .map(|_| {
                serde_json::to_value(iicp_client::cx::CxKeyPair::generate().advertised())
                    .expect("key")
            })
            .collect(),
    )
}

/// Registers nodes `0..n` of the population, node `i` through
/// `bases[i % bases.len()]`, `workers` at a time: each node's ack (unset
/// where the directory did not answer 201, which counts in `failures`) and
/// the seconds it took.
pub async fn register_all(
    http: &reqwest::Client,
    bases: Arc<Vec<String>>,
    n: usize,
    workers: usize,
    keys: Arc<Vec<Value>>,
    failures: Arc<AtomicUsize>,
) -> (Arc<Vec<OnceLock<Value>>>, f64) {
    let acks: Arc<Vec<OnceLock<Value>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let http = http.clone();
    let seconds = {
        let acks = acks.clone();
        fan_out(n, workers, move |i| {
            let (http, bases, acks, keys, failures) = (
                http.clone(),
                bases.clone(),
                acks.clone(),
                keys.clone(),
                failures.clone(),
            );
            async move {
                let resp = http
                    .post(format!("{}/v1/register", bases[i % bases.len()]))
                    .json(&registration(i, &keys))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = acks[i].set(r.json().await.unwrap_or_default());
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .await
    };
    (acks, seconds)
}
