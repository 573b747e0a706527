//! The client's own cost per `submit()`: a local directory and a node that
//! answers at once run in-process; the baseline is a bare HTTP POST of the
//! same task to the same node. A second node advertises a CX key, opens the
//! sealed task and seals its answer, to show what encryption adds end to
//! end. Run: `cargo bench --bench client_overhead`.

use axum::Router;
use axum::routing::{get, post};
use criterion::{Criterion, criterion_group, criterion_main};
use iicp_client::cx::{self, CxKeyPair, IicpConf};
use iicp_client::directory::{Directory, DirectoryConfig};
use iicp_client::{ClientConfig, IicpClient, IntentUrn, TaskRequest};
use serde_json::json;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";
const EMBED: &str = "urn:iicp:intent:llm:embedding:v1";

/// A node that opens sealed tasks with `key` and seals its answers.
fn sealing_node(key: CxKeyPair) -> Router {
    Router::new()
        .route(
            "/v1/task",
            post(move |body: axum::Json<serde_json::Value>| {
                let key = key.clone();
                async move {
                    let task_id = body["task_id"].as_str().unwrap().to_owned();
                    let intent = body["intent"].as_str().unwrap().to_owned();
                    let conf: IicpConf = serde_json::from_value(body["iicp_conf"].clone()).unwrap();
                    let (_payload, ss) = key.open_request(&conf, &task_id, &intent).unwrap();
                    let inner =
                        serde_json::to_vec(&json!({"task_id": task_id, "status": "success",
                                      "result": {"ok": true}, "generated_by_ai": false}))
                        .unwrap();
                    axum::Json(json!({"task_id": task_id, "status": "encrypted",
                                      "iicp_conf_resp": cx::seal_response(&ss, &task_id, &inner)}))
                }
            }),
        )
        .route("/iicp/health", get(|| async { "ok" }))
}

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

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
        let node_addr = serve(node).await;
        let key = CxKeyPair::generate();
        let sealing_addr = serve(sealing_node(key.clone())).await;
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
        // The sealing node serves another intent, so each bench reaches one node.
        reqwest::Client::new()
            .post(format!("{url}/v1/register"))
            .json(&json!({
                "endpoint": format!("http://{sealing_addr}"),
                "capabilities": [{"intent": EMBED, "models": ["m"]}],
                "limits": {"max_concurrent": 64, "tokens_per_min": 100000},
                "cx_public_key": key.advertised(),
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
        .allow_plaintext(true) // the plaintext node has no CX key
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
    g.bench_function("client_submit_cached_discovery_encrypted", |b| {
        b.to_async(&rt).iter(|| async {
            let mut t = task();
            t.intent = IntentUrn::parse(EMBED).unwrap();
            let r = cached.submit(t).await.unwrap();
            assert_eq!(r.result.unwrap()["ok"], true);
        })
    });
    g.bench_function("client_submit_uncached_discovery", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.submit(task()).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
