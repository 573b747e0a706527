//! The same task to the same node over HTTP and over the native transport,
//! on its one port: latency at c = 1 and throughput at c = 64 (criterion),
//! then CPU time per task for each transport (user + system time of this
//! process, which runs both the node and the load generator, over 2 000
//! tasks at c = 64; printed once before the timed runs). HTTP goes through
//! one pooled reqwest client; native through one multiplexed
//! `NativeClient` connection. Run: `cargo bench --bench native_vs_http`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iicp_client::node::handler_fn;
use iicp_client::transport::{NativeClient, NativeOptions};
use iicp_client::{IicpNode, NodeConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

fn payload() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": "hello"}]})
}

#[derive(Clone)]
enum Transport {
    Http(reqwest::Client, Arc<String>),
    Native(NativeClient),
}

impl Transport {
    async fn one(&self) {
        match self {
            Self::Http(http, url) => {
                let body = json!({"task_id": uuid::Uuid::new_v4().to_string(),
                                  "intent": CHAT, "payload": payload()});
                let r = http.post(url.as_str()).json(&body).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
            Self::Native(client) => {
                client.call(CHAT, payload()).await.unwrap();
            }
        }
    }

    async fn burst(&self, n: usize) {
        let mut set = JoinSet::new();
        for _ in 0..n {
            let t = self.clone();
            set.spawn(async move { t.one().await });
        }
        while set.join_next().await.is_some() {}
    }
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (http, native) = rt.block_on(async {
        let node = IicpNode::new(NodeConfig {
            skip_registration: true,
            max_concurrent: 256,
            confidentiality: false,
            // Every task has a fresh id; a full run sends far more than the
            // default window's 100 000 within its 300 s.
            replay_window_entries: 50_000_000,
            ..NodeConfig::local("")
        })
        .start(handler_fn(|_req, _ctx| async { Ok(json!({"ok": true})) }))
        .await
        .unwrap();
        let addr = node.local_addr();
        std::mem::forget(node); // serve for the whole run
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .unwrap();
        let native = NativeClient::connect(&addr.to_string(), NativeOptions::default())
            .await
            .unwrap();
        (
            Transport::Http(http, Arc::new(format!("http://{addr}/v1/task"))),
            Transport::Native(native),
        )
    });
    for (name, t) in [("http", &http), ("native", &native)] {
        rt.block_on(t.burst(64)); // warm up
        let before = cpu_time();
        rt.block_on(async {
            for _ in 0..(2_000 / 64) {
                t.burst(64).await;
            }
        });
        let per_task = (cpu_time() - before).as_secs_f64() * 1e6 / f64::from(2_000 / 64 * 64);
        eprintln!("cpu per task over {name}: {per_task:.1} µs (node and client together)");
    }
    let mut g = c.benchmark_group("transport");
    for n in [1usize, 64] {
        g.throughput(Throughput::Elements(n as u64));
        for (name, t) in [("http", &http), ("native", &native)] {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.to_async(&rt).iter(|| t.burst(n))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
