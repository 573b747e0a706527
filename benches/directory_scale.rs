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
//! The node population and the queries are `directory_load/mod.rs`'s.

#[path = "directory_load/mod.rs"]
mod directory_load;

use directory_load::{
    QUERIES, cx_keys, emit, env_or, fan_out, free_port, heartbeat, percentile, register_all,
    rss_kib, time_discover,
};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

    let cx_keys = cx_keys();
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
        let failures = Arc::new(AtomicUsize::new(0));
        let (acks, register_s) = register_all(
            &http,
            Arc::new(vec![dir.base.clone()]),
            n,
            workers,
            cx_keys.clone(),
            failures.clone(),
        )
        .await;
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
            let (count, samples) = time_discover(&http, &url, budget, iters).await;
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
            emit(out.as_deref(), &line);
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
