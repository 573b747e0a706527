//! The client's own cost per `submit()` (issue 17), with the node and the
//! directory in another process so that only the client is measured.
//!
//! `client_cost serve` starts, on loopback, a stand-in directory whose
//! discover answer lists one node and is cacheable for an hour, and that node,
//! which answers every task with a fixed success envelope for its `task_id`;
//! it prints `DIR=<url> NODE=<url>` and serves until its standard input
//! closes. `client_cost measure MODE N DIR NODE` runs, on one thread, N
//! requests after a warm-up and prints one JSON line: CPU time (user + system,
//! from `getrusage`) and wall time per request. MODE is `bare` (one reqwest
//! POST of the same task JSON, body read as bytes: the baseline) or `submit`
//! (`IicpClient::submit` with the discover answer cached: policy check, task
//! id, traceparent, candidate filtering and selection, the POST, status check
//! and envelope parsing).
//!
//! `scripts/bench/client_cost.sh` runs both modes side by side, plain and
//! under callgrind (instructions per request: the difference of two runs of
//! different lengths, so start-up cancels out).

use axum::Router;
use axum::routing::{get, post};
use iicp_client::{ClientConfig, IicpClient, IntentUrn, TaskRequest};
use serde_json::{Value, json};
use std::io::Read;
use std::time::{Duration, Instant};

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";
const WARM_UP: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(),
        Some("measure") if args.len() == 5 => {
            let n = args[2].parse().expect("N is a number");
            measure(&args[1], n, &args[3], &args[4]);
        }
        // `cargo bench` runs every bench with `--bench`: nothing to do alone.
        _ => eprintln!("usage: client_cost serve | client_cost measure bare|submit N DIR NODE"),
    }
}

fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let node = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_url = format!("http://{}", node.local_addr().unwrap());
        let node_app = Router::new()
            .route(
                "/v1/task",
                post(|body: axum::body::Bytes| async move {
                    let task: Value = serde_json::from_slice(&body).unwrap_or_default();
                    axum::Json(json!({
                        "task_id": task["task_id"], "status": "success",
                        "result": {"choices": [{"message": {"role": "assistant", "content": "hello"},
                                                "finish_reason": "stop"}]},
                        "generated_by_ai": true
                    }))
                }),
            )
            .route("/iicp/health", get(|| async { "ok" }));
        let listed = json!({"nodes": [{
            "node_id": "a1b2c3d4-0000-4000-8000-000000000001",
            "endpoint": node_url,
            "capabilities": [{"intent": CHAT, "models": ["m"]}],
            "score": 0.9, "available": true, "region": "local", "load": 0.1,
        }], "total": 1});
        let dir = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dir_url = format!("http://{}", dir.local_addr().unwrap());
        let dir_app = Router::new().route(
            "/v1/discover",
            get(move || {
                let listed = listed.clone();
                async move { ([("cache-control", "public, max-age=3600")], axum::Json(listed)) }
            }),
        );
        tokio::spawn(async move { axum::serve(node, node_app).await });
        tokio::spawn(async move { axum::serve(dir, dir_app).await });
        println!("DIR={dir_url} NODE={node_url}");
        // Serve until the parent closes our standard input.
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .unwrap();
    });
}

fn measure(mode: &str, n: usize, dir_url: &str, node_url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = IicpClient::builder(ClientConfig {
        directory_url: dir_url.to_owned(),
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .build()
    .expect("client");
    let raw = reqwest::Client::new();
    let task_url = format!("{node_url}/v1/task");
    let task = || {
        TaskRequest::new(
            IntentUrn::parse(CHAT).unwrap(),
            json!({"messages": [{"role": "user", "content": "hello"}]}),
        )
    };
    let body = serde_json::to_vec(&json!({
        "task_id": "00000000-0000-4000-8000-000000000000", "intent": CHAT,
        "payload": {"messages": [{"role": "user", "content": "hello"}]}
    }))
    .unwrap();
    let one = || async {
        match mode {
            "bare" => {
                let r = raw
                    .post(&task_url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("bare POST");
                assert!(r.status().is_success());
                let _ = r.bytes().await.expect("answer");
            }
            "submit" => {
                let r = client.submit(task()).await.expect("submit");
                assert!(r.result.is_some());
            }
            other => panic!("unknown mode {other}"),
        }
    };
    rt.block_on(async {
        for _ in 0..WARM_UP {
            one().await;
        }
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        for _ in 0..n {
            one().await;
        }
        let wall = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        println!(
            "{}",
            json!({
                "mode": mode, "n": n,
                "cpu_us_per_request": cpu.as_secs_f64() * 1e6 / n as f64,
                "wall_us_per_request": wall.as_secs_f64() * 1e6 / n as f64,
            })
        );
    });
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    let text = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = &text[text.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Clock ticks of 10 ms (USER_HZ is 100 on Linux): measure long runs.
    Duration::from_millis(ticks * 10)
}
