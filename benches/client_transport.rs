//! `IicpClient::submit` over HTTP and over the native transport
//! (`prefer_native`) against one local node on its one port: latency at
//! c = 1 and throughput at c = 64 (criterion). A local directory lists the
//! node with its CX key and `transport_endpoint`; the discovery cache is on,
//! so the directory is asked once. Both the sealed default (IICP-CX) and
//! plaintext tasks are measured. Run: `cargo bench --bench client_transport`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iicp_client::directory::{Directory, DirectoryConfig};
use iicp_client::node::handler_fn;
use iicp_client::{ClientConfig, IicpClient, IicpNode, NodeConfig, TaskRequest};
use serde_json::json;
use std::time::Duration;
use tokio::task::JoinSet;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

fn task() -> TaskRequest {
    TaskRequest::new(
        CHAT.parse().unwrap(),
        json!({"messages": [{"role": "user", "content": "hello"}]}),
    )
}

async fn burst(client: &IicpClient, n: usize) {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        set.spawn(async move { client.submit(task()).await.expect("submit") });
    }
    while set.join_next().await.is_some() {}
}

/// A local directory listing one node (with a CX key when `cx`); returns
/// the directory URL. Both serve until the process ends.
async fn mesh(cx: bool) -> String {
    let dir = Directory::start(
        DirectoryConfig {
            local_mode: true,
            skip_liveness_check: true,
            ..DirectoryConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = dir.url();
    let node = IicpNode::new(NodeConfig {
        max_concurrent: 256,
        models: vec!["m".into()],
        confidentiality: cx,
        // Every task has a fresh id; a run sends far more than the default
        // window's 100 000 within its 300 s.
        replay_window_entries: 50_000_000,
        ..NodeConfig::local(base.clone())
    })
    .start(handler_fn(|_req, _ctx| async { Ok(json!({"ok": true})) }))
    .await
    .unwrap();
    node.registered().await.expect("the node registers");
    std::mem::forget((dir, node));
    base
}

fn client(base: &str, native: bool) -> IicpClient {
    IicpClient::builder(ClientConfig {
        directory_url: base.to_owned(),
        timeout_ms: 60_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .prefer_native(native)
    .build()
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients = rt.block_on(async {
        let (sealed, plain) = (mesh(true).await, mesh(false).await);
        vec![
            ("http_cx", client(&sealed, false)),
            ("native_cx", client(&sealed, true)),
            ("http_plain", client(&plain, false)),
            ("native_plain", client(&plain, true)),
        ]
    });
    let mut g = c.benchmark_group("client_transport");
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    for n in [1usize, 64] {
        g.throughput(Throughput::Elements(n as u64));
        for (name, client) in &clients {
            rt.block_on(burst(client, 64)); // warm up: connections, cache
            g.bench_with_input(BenchmarkId::new(*name, n), &n, |b, &n| {
                b.to_async(&rt).iter(|| burst(client, n))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
