//! The directory at scale: a release `iicp-node directory` per mesh size,
//! N nodes registered (and heartbeated once) over HTTP, then discover timed
//! for a few typical queries. Driven by `scripts/bench/directory_scale.sh`,
//! which also builds the binary and draws the plot.
//!
//! Environment:
//!   IICP_NODE_BIN      the directory binary (default target/release/iicp-node)
//!   DIRSCALE_SIZES     mesh sizes (default "1000 10000 20000 100000")
//!   DIRSCALE_ITERS     discover requests per query and size (default 200)
//!   DIRSCALE_BUDGET_S  most seconds per query and size (default 6; at least 20 requests)
//!   DIRSCALE_WORKERS   concurrent registrations (default 16)
//!   DIRSCALE_OUT       JSON lines appended here (default: stdout only)
//!   DIRSCALE_PERF      with DIRSCALE_PERF_N: `perf record -g` the directory while the
//!                      discover queries of that size run, into this file
//!
//! Every node is different in a reproducible way (a fixed seed): 1-3 of six
//! intents, 1-4 of twelve models, one of five regions, a CX key on 60 %,
//! current or old SDKs, native endpoints on 20 %, relayed nodes on 10 %; the
//! heartbeat gives each a load, running jobs, completed tasks (some past
//! probation), and hides a few (unavailable, draining, empty health list).

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const INTENTS: [&str; 6] = [
    "urn:iicp:intent:llm:chat:v1",
    "urn:iicp:intent:llm:completion:v1",
    "urn:iicp:intent:llm:embedding:v1",
    "urn:iicp:intent:vision:caption:v1",
    "urn:iicp:intent:audio:transcribe:v1",
    "urn:iicp:intent:code:review:v1",
];
const MODELS: [&str; 12] = [
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
const REGIONS: [&str; 5] = ["eu-central", "us-east", "us-west", "ap-south", "sa-east"];
const SDKS: [&str; 4] = ["0.7.68", "0.7.109", "0.7.35", "0.8.0"];

/// The discover queries timed at every size.
const QUERIES: [(&str, &str); 5] = [
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
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str], n: usize) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    while out.len() < n {
        let x = from[rng.below(from.len())];
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn registration(i: usize, cx_keys: &[Value]) -> Value {
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

fn heartbeat(i: usize, ack: &Value) -> Value {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn rss_kib(pid: u32) -> u64 {
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

struct Directory {
    child: Child,
    base: String,
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_directory(bin: &str, max_nodes: usize, http: &reqwest::Client) -> Directory {
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "directory",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--skip-liveness-check",
            "--register-rate-limit",
            "0",
            "--max-nodes",
            &(max_nodes + 10).to_string(),
            "--enforce-probation",
            "--evict-after-secs",
            "3600",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the directory");
    let base = format!("http://127.0.0.1:{port}/api");
    for _ in 0..100 {
        if http.get(format!("{base}/v1/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Directory { child, base }
}

/// Runs `job(i)` for i in 0..n on `workers` concurrent tasks; returns the seconds taken.
async fn fan_out<F, Fut>(n: usize, workers: usize, job: F) -> f64
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; nothing else is taken from the command line.
    let bin = env_or("IICP_NODE_BIN", "target/release/iicp-node");
    let sizes: Vec<usize> = env_or("DIRSCALE_SIZES", "1000 10000 20000 100000")
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let iters: usize = env_or("DIRSCALE_ITERS", "200").parse().unwrap_or(200);
    let budget = Duration::from_secs_f64(env_or("DIRSCALE_BUDGET_S", "6").parse().unwrap_or(6.0));
    let workers: usize = env_or("DIRSCALE_WORKERS", "16").parse().unwrap_or(16);
    let out = std::env::var("DIRSCALE_OUT").ok();
    let perf_file = std::env::var("DIRSCALE_PERF").ok();
    let perf_n: usize = env_or("DIRSCALE_PERF_N", "0").parse().unwrap_or(0);
    let label = env_or("DIRSCALE_LABEL", "run");

    let cx_keys: Arc<Vec<Value>> = Arc::new(
        (0..64)
            .map(|_| {
                serde_json::to_value(iicp_client::cx::CxKeyPair::generate().advertised())
                    .expect("key")
            })
            .collect(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");

    for &n in &sizes {
        let dir = start_directory(&bin, n, &http).await;
        let pid = dir.child.id();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_idle = rss_kib(pid);

        // Register N nodes.
        let acks: Arc<Vec<std::sync::OnceLock<Value>>> =
            Arc::new((0..n).map(|_| std::sync::OnceLock::new()).collect());
        let failures = Arc::new(AtomicUsize::new(0));
        let register_s = {
            let (http, base, acks, keys, failures) = (
                http.clone(),
                dir.base.clone(),
                acks.clone(),
                cx_keys.clone(),
                failures.clone(),
            );
            fan_out(n, workers, move |i| {
                let (http, base, acks, keys, failures) = (
                    http.clone(),
                    base.clone(),
                    acks.clone(),
                    keys.clone(),
                    failures.clone(),
                );
                async move {
                    let body = registration(i, &keys);
                    let resp = http
                        .post(format!("{base}/v1/register"))
                        .json(&body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().as_u16() == 201 => {
                            let ack: Value = r.json().await.unwrap_or_default();
                            let _ = acks[i].set(ack);
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
            .await
        };
        // One heartbeat each (load, jobs, completed tasks, availability).
        let heartbeat_s = {
            let (http, base, acks, failures) = (
                http.clone(),
                dir.base.clone(),
                acks.clone(),
                failures.clone(),
            );
            fan_out(n, workers, move |i| {
                let (http, base, acks, failures) =
                    (http.clone(), base.clone(), acks.clone(), failures.clone());
                async move {
                    let Some(ack) = acks[i].get() else { return };
                    let token = ack["node_token"].as_str().unwrap_or_default();
                    let ok = http
                        .post(format!("{base}/v1/heartbeat"))
                        .bearer_auth(token)
                        .json(&heartbeat(i, ack))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await
        };
        let rss_loaded = rss_kib(pid);

        let perf = match (&perf_file, perf_n == n) {
            (Some(file), true) => {
                let child = Command::new("perf")
                    .args([
                        "record",
                        "-g",
                        "-F",
                        "999",
                        "-o",
                        file,
                        "-p",
                        &pid.to_string(),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok();
                tokio::time::sleep(Duration::from_millis(500)).await;
                child
            }
            _ => None,
        };

        for (name, q) in QUERIES {
            let url = format!("{}/v1/discover?{q}", dir.base);
            // Warm-up (connection, caches).
            let mut count = 0;
            for _ in 0..3 {
                let body: Value = http
                    .get(&url)
                    .send()
                    .await
                    .expect("discover")
                    .json()
                    .await
                    .unwrap_or_default();
                count = body["count"].as_u64().unwrap_or(0);
            }
            let mut samples = Vec::with_capacity(iters);
            let started = Instant::now();
            while samples.len() < iters && (samples.len() < 20 || started.elapsed() < budget) {
                let t = Instant::now();
                let resp = http.get(&url).send().await.expect("discover");
                let _ = resp.bytes().await.expect("discover body");
                samples.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            samples.sort_by(f64::total_cmp);
            let line = json!({
                "label": label,
                "nodes": n,
                "query": name,
                "returned": count,
                "samples": samples.len(),
                "p50_ms": percentile(&samples, 0.5),
                "p99_ms": percentile(&samples, 0.99),
                "register_per_s": n as f64 / register_s,
                "heartbeat_per_s": n as f64 / heartbeat_s,
                "failures": failures.load(Ordering::Relaxed),
                "rss_idle_kib": rss_idle,
                "rss_kib": rss_loaded,
                "bytes_per_node": (rss_loaded.saturating_sub(rss_idle) * 1024) as f64 / n as f64,
            });
            println!("{line}");
            if let Some(path) = &out {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open DIRSCALE_OUT");
                writeln!(f, "{line}").expect("write DIRSCALE_OUT");
            }
        }
        if let Some(p) = perf {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let mut p = p;
            let _ = p.wait();
        }
        drop(dir);
    }
}
