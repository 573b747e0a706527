//! The node's own cost per task. Two servers on loopback answer the same task
//! POST: a bare axum route that parses the JSON and returns a fixed envelope
//! (the HTTP stack alone), and an `IicpNode` with a no-op handler (stack +
//! pipeline: intent and policy checks, admission, replay windows, deadline,
//! spawned handler, envelope). Each iteration sends `c` tasks at once
//! (c = 1, 16, 64), every task with a fresh id. Run:
//! `cargo bench --bench node_overhead`.

use axum::Router;
use axum::routing::post;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iicp_client::{IicpNode, NodeConfig, TaskContext, TaskRequest};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::task::JoinSet;

fn body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "task_id": uuid::Uuid::new_v4().to_string(),
        "intent": "urn:iicp:intent:llm:chat:v1",
        "payload": {"messages": [{"role": "user", "content": "hello"}]}
    }))
    .unwrap()
}

async fn burst(http: &reqwest::Client, url: &Arc<String>, n: usize) {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let http = http.clone();
        let url = url.clone();
        set.spawn(async move {
            let r = http
                .post(url.as_str())
                .header("content-type", "application/json")
                .body(body())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap()
        });
    }
    while set.join_next().await.is_some() {}
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (bare_url, node_url) = rt.block_on(async {
        let bare = Router::new().route(
            "/v1/task",
            post(|body: axum::Json<Value>| async move {
                axum::Json(json!({"task_id": body["task_id"], "status": "success",
                                  "result": {"ok": true}, "generated_by_ai": true}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, bare).await.unwrap() });
        let node = IicpNode::new(NodeConfig {
            host: "127.0.0.1".into(),
            port: 0,
            skip_registration: true,
            max_concurrent: 256,
            // Every task has a fresh id; a full run sends far more than the
            // default window's 100 000 within its 300 s (then: 503s).
            replay_window_entries: 50_000_000,
            ..NodeConfig::default()
        })
        .start(|_req: TaskRequest, _ctx: TaskContext| async { Ok(json!({"ok": true})) })
        .await
        .unwrap();
        let node_url = format!("{}/v1/task", node.endpoint());
        std::mem::forget(node); // serve for the whole run
        (
            Arc::new(format!("http://{bare_addr}/v1/task")),
            Arc::new(node_url),
        )
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("task");
    for n in [1usize, 16, 64] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("bare_http", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| burst(&http, &bare_url, n))
        });
        g.bench_with_input(BenchmarkId::new("iicp_node", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| burst(&http, &node_url, n))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
