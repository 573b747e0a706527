//! What a node adds in front of a model server. A fixed-answer
//! OpenAI-compatible responder stands in for the model (so the backend is
//! never the bottleneck); `direct` POSTs the chat straight to it, `via_node`
//! sends the same chat as an IICP task to an `IicpNode` whose `llamacpp`
//! backend calls the responder. Each iteration sends `c` requests at once
//! (c = 1, 16, 64). Run: `cargo bench --bench backend_overhead`.

use axum::Router;
use axum::routing::post;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iicp_client::backends::{self, BackendKind, BackendOptions};
use iicp_client::{IicpNode, NodeConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::task::JoinSet;

fn chat() -> Value {
    json!({"model": "fixed", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8})
}

async fn burst(http: &reqwest::Client, url: &Arc<String>, task: bool, n: usize) {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let (http, url) = (http.clone(), url.clone());
        set.spawn(async move {
            let body = if task {
                json!({"task_id": uuid::Uuid::new_v4().to_string(),
                       "intent": "urn:iicp:intent:llm:chat:v1", "payload": chat()})
            } else {
                chat()
            };
            let r = http.post(url.as_str()).json(&body).send().await.unwrap();
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
    let (direct, via_node) = rt.block_on(async {
        let responder = Router::new().route(
            "/v1/chat/completions",
            post(|| async {
                axum::Json(json!({"id": "c", "object": "chat.completion", "created": 0, "model": "fixed",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fixed answer"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, responder).await.unwrap() });
        let backend = backends::build(
            BackendKind::Llamacpp,
            BackendOptions { base_url: Some(format!("http://{addr}/v1")), model: Some("fixed".into()), ..Default::default() },
        );
        let node = IicpNode::new(NodeConfig {
            host: "127.0.0.1".into(),
            port: 0,
            skip_registration: true,
            max_concurrent: 256,
            models: vec!["fixed".into()],
            ..NodeConfig::default()
        })
        .start_backend(backend)
        .await
        .unwrap();
        let via = format!("{}/v1/task", node.endpoint());
        std::mem::forget(node);
        (Arc::new(format!("http://{addr}/v1/chat/completions")), Arc::new(via))
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("chat");
    for n in [1usize, 16, 64] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("direct", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| burst(&http, &direct, false, n))
        });
        g.bench_with_input(BenchmarkId::new("via_node", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| burst(&http, &via_node, true, n))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
