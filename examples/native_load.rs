//! A small load generator for the native transport (wrk cannot speak it), used by
//! `scripts/bench/node.sh`: `C` workers each send one chat task after the other to one
//! node over `NativeClient` connections (one per 16 workers), first for a warm-up, then for
//! the measured time, and print one `BENCH_JSON {...}` line in the shape of
//! `scripts/bench/post.lua`'s (latencies in microseconds; a failed call counts as
//! `err_status`).
//!
//!   cargo run --release --example native_load -- HOST:PORT C DURATION_S [WARMUP_S] [MODEL]

use iicp_client::transport::{NativeClient, NativeOptions};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
}

async fn worker(client: NativeClient, model: Arc<str>, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let payload = json!({"model": &*model, "messages": [{"role": "user", "content": "hi"}]});
        let t0 = Instant::now();
        match client.call(CHAT, payload).await {
            Ok(_) => tally.latencies_us.push(t0.elapsed().as_micros() as u64),
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

async fn run(clients: &[NativeClient], c: usize, model: &Arc<str>, secs: f64) -> (Tally, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..c)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            tokio::spawn(worker(client, model.clone(), stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for h in handles {
        let t = h.await.expect("a worker finishes");
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
    }
    (all, started.elapsed())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: native_load HOST:PORT C DURATION_S [WARMUP_S] [MODEL]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let c: usize = args[2].parse().expect("C is a number");
    let secs: f64 = args[3].parse().expect("DURATION_S is a number");
    let warmup: f64 = args.get(4).map_or(2.0, |w| w.parse().expect("WARMUP_S"));
    let model: Arc<str> = args.get(5).map_or("bench-model", String::as_str).into();
    // Two worker threads, like wrk -t2.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let conns = c.div_ceil(16).max(1);
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns {
            clients.push(
                NativeClient::connect(&addr, NativeOptions::default())
                    .await
                    .expect("the node accepts a native connection"),
            );
        }
        if warmup > 0.0 {
            run(&clients, c, &model, warmup).await;
        }
        let (mut t, elapsed) = run(&clients, c, &model, secs).await;
        t.latencies_us.sort_unstable();
        let n = t.latencies_us.len();
        let pct = |p: f64| {
            if n == 0 {
                0
            } else {
                t.latencies_us[((n as f64 * p) as usize).min(n - 1)]
            }
        };
        let mean = t.latencies_us.iter().sum::<u64>() as f64 / n.max(1) as f64;
        let var = t
            .latencies_us
            .iter()
            .map(|&l| (l as f64 - mean).powi(2))
            .sum::<f64>()
            / n.max(1) as f64;
        println!(
            "BENCH_JSON {{\"requests\":{},\"duration_us\":{},\"bytes\":0,\"lat_mean_us\":{:.1},\
             \"lat_stdev_us\":{:.1},\"lat_p50_us\":{},\"lat_p90_us\":{},\"lat_p99_us\":{},\
             \"lat_max_us\":{},\"err_connect\":0,\"err_read\":0,\"err_write\":0,\
             \"err_status\":{},\"err_timeout\":0}}",
            n as u64 + t.errors,
            elapsed.as_micros(),
            mean,
            var.sqrt(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            t.latencies_us.last().copied().unwrap_or(0),
            t.errors
        );
    });
}
