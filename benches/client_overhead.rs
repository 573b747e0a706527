//! The client's own cost per `submit()`: a local directory and a node that
//! answers at once run in-process; the baseline is a bare HTTP POST of the
//! same task to the same node. Run: `cargo bench --bench client_overhead`.

use axum::Router;
use axum::routing::{get, post};
use criterion::{Criterion, criterion_group, criterion_main};
use iicp_client::directory::{Directory, DirectoryConfig};
use iicp_client::{ClientConfig, IicpClient, IntentUrn, TaskRequest};
use serde_json::json;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

fn task() -> TaskRequest {
    TaskRequest::new(
        IntentUrn::parse(CHAT).unwrap(),
        json!({"messages": [{"role": "user", "content": "hello"}]}),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (dir_url, node_url) = rt.block_on(async {
        let node = Router::new()
            .route(
                "/v1/task",
                post(|body: axum::Json<serde_json::Value>| async move {
                    axum::Json(json!({"task_id": body["task_id"], "status": "success",
                                      "result": {"ok": true}, "generated_by_ai": false}))
                }),
            )
            .route("/iicp/health", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, node).await.unwrap() });
        let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = dir.url();
        reqwest::Client::new()
            .post(format!("{url}/v1/register"))
            .json(&json!({
                "endpoint": format!("http://{node_addr}"),
                "capabilities": [{"intent": CHAT, "models": ["m"]}],
                "limits": {"max_concurrent": 64, "tokens_per_min": 100000}
            }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        std::mem::forget(dir); // serve for the whole run
        (url, format!("http://{node_addr}/v1/task"))
    });
    let client = |cache: bool| {
        IicpClient::builder(ClientConfig {
            directory_url: dir_url.clone(),
            ..Default::default()
        })
        .allow_private_nodes(true)
        .discovery_cache(cache)
        .build()
        .unwrap()
    };
    let cached = client(true);
    let uncached = client(false);
    let raw = reqwest::Client::new();
    let body = serde_json::to_vec(&json!({
        "task_id": "00000000-0000-4000-8000-000000000000", "intent": CHAT,
        "payload": {"messages": [{"role": "user", "content": "hello"}]}
    }))
    .unwrap();

    let mut g = c.benchmark_group("submit");
    g.bench_function("bare_http_post", |b| {
        b.to_async(&rt).iter(|| async {
            let r = raw
                .post(&node_url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            r.bytes().await.unwrap()
        })
    });
    g.bench_function("client_submit_cached_discovery", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.submit(task()).await.unwrap() })
    });
    g.bench_function("client_submit_uncached_discovery", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.submit(task()).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
