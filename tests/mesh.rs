//! Mesh gossip / peer exchange (PROTOCOL.md §8) between in-process nodes on
//! loopback: nodes learn of each other (bootstrap from our directory, then
//! signed exchanges), and `POST /v1/peers` holds up against hostile input
//! (signatures, sizes, entry counts, endpoints, rate, cache bounds, own id).
//!
//! Every request a test sends comes from its own loopback source address
//! (127.1.x.y) so the per-source rate limit only bites where a test wants it.

mod common;

use common::Harness;
use common::node::start_node;
use hmac::{Hmac, KeyInit, Mac};
use iicp_client::node::handler_fn;
use iicp_client::{NodeConfig, RunningNode, Secret};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A fresh loopback source address for the next request.
fn source() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    IpAddr::V4(Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8))
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// An answer: status, `Retry-After`, body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

/// POSTs raw `body` to `{node}/v1/peers` from `from`, with `signature`.
async fn post_from(
    node: &RunningNode,
    from: IpAddr,
    body: Vec<u8>,
    signature: Option<&str>,
) -> Answer {
    let client = reqwest::Client::builder()
        .local_address(from)
        .no_proxy()
        .build()
        .unwrap();
    let mut req = client
        .post(format!("http://{}/v1/peers", node.local_addr()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(sig) = signature {
        req = req.header("X-IICP-Signature", sig);
    }
    let resp = req.send().await.expect("the node answers");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer: {text:?}"));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// POSTs `body` (unsigned) from a fresh source.
async fn post(node: &RunningNode, body: &Value) -> Answer {
    post_from(node, source(), serde_json::to_vec(body).unwrap(), None).await
}

fn entry(id: &str, endpoint: &str) -> Value {
    json!({"node_id": id, "endpoint": endpoint, "region": "eu", "relay_capable": false})
}

fn ids(node: &RunningNode) -> Vec<String> {
    node.peers().into_iter().map(|p| p.node_id).collect()
}

/// A mesh node that does not register, with its directory at `directory`.
fn mesh_config(directory: &str) -> NodeConfig {
    NodeConfig {
        enable_mesh: true,
        skip_registration: true,
        models: vec!["m".into()],
        ..NodeConfig::local(directory)
    }
}

async fn start(config: NodeConfig) -> RunningNode {
    start_node(config, handler_fn(|_req, _ctx| async { Ok(json!({})) })).await
}

/// A mesh node of a local mesh (private endpoints allowed).
async fn local_mesh_node() -> RunningNode {
    start(mesh_config("http://127.0.0.1:9/api")).await
}

/// A mesh node whose directory is public: peers must have public endpoints.
async fn public_mesh_node() -> RunningNode {
    let mut config = mesh_config("http://directory.invalid/api");
    config.reachability.auto_detect = false;
    start(config).await
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn nodes_learn_each_other_through_bootstrap_and_signed_exchanges() {
    let dir = Harness::start(Default::default()).await;
    let node = |id: &str, region: &str, relay: Option<u16>| NodeConfig {
        node_id: Some(id.into()),
        region: Some(region.into()),
        relay_capable: relay.is_some(),
        relay_accept_port: relay.unwrap_or(9485),
        node_hmac_key: Some(Secret::new("fleet-key")),
        mesh_interval: Duration::from_secs(1),
        skip_registration: false,
        ..mesh_config(&dir.base)
    };
    let specs = [
        ("mesh-a", "eu", Some(19001)),
        ("mesh-b", "us", None),
        ("mesh-c", "ap", Some(19003)),
    ];
    let mut nodes = Vec::new();
    for (id, region, relay) in specs {
        let n = start(node(id, region, relay)).await;
        n.registered_within(Duration::from_secs(10)).await.unwrap();
        nodes.push(n);
    }
    // Relay fields travel only in exchanges (the bootstrap list has none),
    // so a peer known with its relay port and load was heard in one.
    wait_until(
        "every node to know the others' relay fields",
        Duration::from_secs(30),
        || {
            nodes.iter().zip(specs).all(|(n, (me, _, _))| {
                let peers = n.peers();
                specs
                    .iter()
                    .filter(|(id, _, _)| *id != me)
                    .all(|(id, region, relay)| {
                        peers.iter().any(|p| {
                            p.node_id == *id
                                && p.region == *region
                                && p.relay_capable == relay.is_some()
                                && p.relay_accept_port == *relay
                                && p.relay_load.is_some()
                                && p.endpoint.starts_with("http://127.0.0.1:")
                        })
                    })
            })
        },
    )
    .await;
    for (n, (me, _, _)) in nodes.iter().zip(specs) {
        assert!(!ids(n).contains(&me.to_owned()), "{me} never caches itself");
    }
    // A node without the fleet's key is refused by every one of them.
    let a = &nodes[0];
    let refused = post(
        a,
        &json!({"known_peers": [entry("intruder", "http://127.0.0.1:9")]}),
    )
    .await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (401, Some("IICP-E012"))
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn signatures_are_checked_when_the_node_has_a_key() {
    let node = start(NodeConfig {
        node_hmac_key: Some(Secret::new("shared")),
        ..mesh_config("http://127.0.0.1:9/api")
    })
    .await;
    let body =
        serde_json::to_vec(&json!({"known_peers": [entry("signed-1", "http://127.0.0.1:7001")]}))
            .unwrap();
    let good = hmac_hex("shared", &body);
    for (sig, status) in [
        (None, 401),
        (Some(hmac_hex("other", &body)), 401),
        (Some("not hex".to_owned()), 401),
        (Some(good[..40].to_owned()), 401),
        (Some(hmac_hex("shared", b"{}")), 401),
    ] {
        let a = post_from(&node, source(), body.clone(), sig.as_deref()).await;
        assert_eq!(a.status, status, "{sig:?}");
        assert_eq!(a.body["error"]["code"], "IICP-E012");
    }
    assert!(node.peers().is_empty(), "nothing refused was cached");
    let a = post_from(&node, source(), body.clone(), Some(&good)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = post_from(&node, source(), body, Some(&good.to_uppercase())).await;
    assert_eq!(a.status, 200, "hex in either case");
    assert_eq!(ids(&node), ["signed-1"]);

    // Without a key every exchange is accepted, signed or not.
    let open = local_mesh_node().await;
    let body =
        serde_json::to_vec(&json!({"known_peers": [entry("any-1", "http://127.0.0.1:7002")]}))
            .unwrap();
    assert_eq!(
        post_from(&open, source(), body.clone(), None).await.status,
        200
    );
    assert_eq!(
        post_from(&open, source(), body, Some("deadbeef"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_answer_is_the_node_and_its_freshest_peers() {
    let node = start(NodeConfig {
        node_id: Some("self-node".into()),
        region: Some("eu-west".into()),
        relay_capable: true,
        relay_accept_port: 19485,
        ..mesh_config("http://127.0.0.1:9/api")
    })
    .await;
    let own = node.endpoint().to_owned();
    // The running SDKs' form, with our own id and our own endpoint in it.
    let a = post(
        &node,
        &json!({"known_peers": [
            entry("self-node", "http://127.0.0.1:7003"),
            entry("not-me", &own),
            {"node_id": "p-1", "endpoint": "http://127.0.0.1:7004/", "region": "us",
             "last_seen": "2001-01-01T00:00:00Z", "relay_capable": true, "relay_accept_port": 9485,
             "relay_load": 0.5, "last_contact": 12.5},
            {"node_id": "p-2", "endpoint": "http://127.0.0.1:7005"},
        ]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        ids(&node).len(),
        1,
        "p-1 is older than 90 s, so only p-2: {:?}",
        ids(&node)
    );
    assert_eq!(ids(&node), ["p-2"], "never ourselves, by id or by endpoint");
    let peers = a.body["peers"].as_array().unwrap();
    assert_eq!(
        peers[0]["node_id"], "self-node",
        "the answer starts with the node itself"
    );
    assert_eq!(peers[0]["endpoint"], own.as_str());
    assert_eq!(peers[0]["region"], "eu-west");
    assert_eq!(peers[0]["relay_capable"], true);
    assert_eq!(peers[0]["relay_accept_port"], 19485);
    assert_eq!(peers[0]["relay_load"], 0.0);
    assert!(peers[0]["last_seen"].as_str().unwrap().ends_with('Z'));
    assert_eq!(peers[1]["node_id"], "p-2");
    assert_eq!(peers[1]["region"], "");
    assert!(
        peers[1].get("relay_accept_port").is_none(),
        "absent, not null: {}",
        peers[1]
    );
    assert_eq!(peers.len(), 2);

    // S's form: bare ids carry no endpoint, so nothing is cached from them.
    let a = post(&node, &json!({"sender_id": "s-node", "known_peers": ["x-1", "x-2"], "timestamp_ms": 1, "ttl_s": 90})).await;
    assert_eq!(a.status, 200);
    assert_eq!(ids(&node), ["p-2"]);
    // An empty exchange is an exchange.
    assert_eq!(post(&node, &json!({})).await.status, 200);
}

#[tokio::test]
async fn oversize_and_malformed_bodies_are_refused() {
    let node = local_mesh_node().await;
    let padding = "x".repeat(64 * 1024);
    let big = serde_json::to_vec(&json!({"known_peers": [], "pad": padding})).unwrap();
    let a = post_from(&node, source(), big, None).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Just under the limit is fine.
    let fits =
        serde_json::to_vec(&json!({"known_peers": [], "pad": "x".repeat(60 * 1024)})).unwrap();
    assert_eq!(post_from(&node, source(), fits, None).await.status, 200);
    let a = post_from(&node, source(), b"{not json".to_vec(), None).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (400, Some("validation_error"))
    );
    let a = post(&node, &json!({"known_peers": 5})).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (422, Some("validation_error"))
    );
    let a = post(&node, &json!([1, 2])).await;
    assert_eq!(a.status, 422);
}

#[tokio::test]
async fn entries_past_the_first_hundred_are_ignored() {
    let node = local_mesh_node().await;
    // 100 unusable entries, then 50 good ones that are never read.
    let mut list: Vec<Value> = (0..100)
        .map(|i| json!({"node_id": format!("bad-{i}")}))
        .collect();
    list.extend((0..50).map(|i| entry(&format!("late-{i}"), "http://127.0.0.1:7006")));
    let a = post(&node, &json!({"known_peers": list})).await;
    assert_eq!(a.status, 200, "extra entries are ignored, not refused");
    assert!(node.peers().is_empty(), "{:?}", ids(&node));
    // One exchange adds at most 50 new peers.
    let list: Vec<Value> = (0..100)
        .map(|i| entry(&format!("new-{i}"), "http://127.0.0.1:7007"))
        .collect();
    assert_eq!(post(&node, &json!({"known_peers": list})).await.status, 200);
    assert_eq!(node.peers().len(), 50);
}

/// Endpoints no node may be sent to, whatever the directory.
const ALWAYS_BAD: &[&str] = &[
    "ftp://node.example.com",
    "file:///etc/passwd",
    "http://user:pw@node.example.com",
    "http://node.example.com/?x=1",
    "http://node.example.com/#frag",
    "http://node.example.com/a b",
    "not a url",
    "",
];
/// Endpoints only a local mesh may use.
const PRIVATE: &[&str] = &[
    "http://127.0.0.1:9484",
    "http://[::1]:9484",
    "http://10.1.2.3:9484",
    "http://192.168.0.10",
    "http://169.254.169.254/latest",
    "http://[fe80::1]:9484",
    "http://localhost:9484",
    "http://ollama:11434",
    "http://0.0.0.0:9484",
    "http://100.64.0.1:9484",
];

#[tokio::test]
async fn hostile_endpoints_are_dropped() {
    let public = public_mesh_node().await;
    let local = local_mesh_node().await;
    let mut list: Vec<Value> = ALWAYS_BAD
        .iter()
        .chain(PRIVATE)
        .enumerate()
        .map(|(i, e)| entry(&format!("h-{i}"), e))
        .collect();
    list.push(json!({"node_id": "bad id!", "endpoint": "https://ok.example.com"}));
    list.push(json!({"node_id": "x".repeat(37), "endpoint": "https://ok.example.com"}));
    list.push(json!({"node_id": 7, "endpoint": "https://ok.example.com"}));
    list.push(json!({"node_id": "long-ep", "endpoint": format!("https://ok.example.com/{}", "p".repeat(2100))}));
    list.push(
        json!({"node_id": "odd-fields", "endpoint": "https://odd.example.com", "region": "r\u{0}x",
        "relay_capable": "true", "relay_accept_port": 99999, "relay_load": "high"}),
    );
    list.push(entry("good", "https://node.example.com/base"));
    let body = json!({"known_peers": list});

    assert_eq!(post(&public, &body).await.status, 200);
    let mut got = ids(&public);
    got.sort();
    assert_eq!(
        got,
        ["good", "odd-fields"],
        "public mode keeps only public endpoints"
    );
    let odd = public
        .peers()
        .into_iter()
        .find(|p| p.node_id == "odd-fields")
        .unwrap();
    assert_eq!(
        (
            odd.region.as_str(),
            odd.relay_capable,
            odd.relay_accept_port,
            odd.relay_load
        ),
        ("", false, None, None)
    );
    let good = public
        .peers()
        .into_iter()
        .find(|p| p.node_id == "good")
        .unwrap();
    assert_eq!(good.endpoint, "https://node.example.com/base");

    assert_eq!(post(&local, &body).await.status, 200);
    let got = ids(&local);
    assert_eq!(
        got.len(),
        2 + PRIVATE.len(),
        "a local mesh also takes private endpoints: {got:?}"
    );
    for (i, bad) in ALWAYS_BAD.iter().enumerate() {
        assert!(!got.contains(&format!("h-{i}")), "{bad} is never taken");
    }
}

#[tokio::test]
async fn exchanges_are_rate_limited_per_source() {
    let node = local_mesh_node().await;
    let from = source();
    let body = || serde_json::to_vec(&json!({"known_peers": []})).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post_from(&node, from, body(), None).await);
    }
    assert!(
        statuses[..5].iter().all(|a| a.status == 200),
        "a small burst passes"
    );
    let limited = &statuses[5];
    assert_eq!(
        (limited.status, limited.body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let wait: u64 = limited
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    // The limit is per source; a refused exchange is not read or merged.
    assert_eq!(post_from(&node, source(), body(), None).await.status, 200);
    let more =
        serde_json::to_vec(&json!({"known_peers": [entry("late", "http://127.0.0.1:7008")]}))
            .unwrap();
    assert_eq!(post_from(&node, from, more, None).await.status, 429);
    assert!(node.peers().is_empty());
}

#[tokio::test]
async fn the_route_is_absent_when_the_mesh_is_off() {
    let node = start(NodeConfig {
        enable_mesh: false,
        ..mesh_config("http://127.0.0.1:9/api")
    })
    .await;
    let a = post(&node, &json!({"known_peers": []})).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(node.peers().is_empty());
}

#[tokio::test]
async fn the_cache_stays_bounded_under_ten_thousand_fake_peers() {
    let node = local_mesh_node().await;
    let dead = common::dead_endpoint().await;
    let mut sent = 0;
    for batch in 0..100 {
        let list: Vec<Value> = (0..100)
            .map(|i| entry(&format!("fake-{batch}-{i}"), &format!("{dead}/{batch}/{i}")))
            .collect();
        sent += list.len();
        let a = post(&node, &json!({"known_peers": list})).await;
        assert_eq!(a.status, 200);
        assert!(
            a.body["peers"].as_array().unwrap().len() <= 50,
            "answers stay bounded"
        );
        assert!(node.peers().len() <= 512);
    }
    assert_eq!(sent, 10_000);
    assert_eq!(node.peers().len(), 512, "full, and no more");
    // The newest stayed.
    assert!(ids(&node).contains(&"fake-99-0".to_owned()));
}

#[tokio::test]
async fn a_captured_python_sdk_exchange_is_accepted() {
    let vector: Value =
        serde_json::from_str(include_str!("vectors/python_mesh_exchange.json")).unwrap();
    let node = start(NodeConfig {
        node_hmac_key: Some(Secret::new(vector["key"].as_str().unwrap())),
        ..mesh_config("http://127.0.0.1:9/api")
    })
    .await;
    let body = vector["body"].as_str().unwrap().as_bytes().to_vec();
    let signature = vector["signature"].as_str().unwrap();
    let a = post_from(&node, source(), body, Some(signature)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut peers = node.peers();
    peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let got: Vec<_> = peers
        .iter()
        .map(|p| {
            (
                p.node_id.as_str(),
                p.endpoint.as_str(),
                p.region.as_str(),
                p.relay_capable,
                p.relay_accept_port,
                p.relay_load,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "0b5c3f2e-6a51-4c1e-9d0a-2f7e8c9b1a34",
                "http://127.0.0.1:18484",
                "",
                true,
                Some(9485),
                Some(0.0)
            ),
            (
                "5d1e2c3b-4a59-4f6e-8d7c-0b1a2e3f4c5d",
                "http://127.0.0.1:18485",
                "local",
                false,
                Some(9485),
                Some(0.0)
            ),
            (
                "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
                "http://127.0.0.1:18486",
                "eu",
                true,
                Some(19485),
                Some(0.25)
            ),
        ]
    );
    // The same bytes with one changed are refused.
    let mut tampered = vector["body"].as_str().unwrap().as_bytes().to_vec();
    tampered[20] ^= 1;
    let a = post_from(&node, source(), tampered, Some(signature)).await;
    assert_eq!(a.status, 401);
}

// Multi-threaded: reading the child's output blocks a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_route_only_with_enable_mesh_and_never_logs_the_key() {
    use common::node_bin::NodeProcess;
    let key = "binary-gossip-key-5f2a";
    let base = [
        "--backend-type",
        "echo",
        "--skip-registration",
        "--directory-url",
        "http://127.0.0.1:9/api",
    ];
    let post = |port: u16, sig: Option<String>| async move {
        let body = br#"{"known_peers":[]}"#.to_vec();
        let mut req = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/peers"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = sig {
            req = req.header("X-IICP-Signature", sig);
        }
        req.send().await.unwrap().status().as_u16()
    };
    let node =
        NodeProcess::start(&[&base[..], &["--enable-mesh", "--node-hmac-key", key]].concat());
    assert_eq!(post(node.port, None).await, 401);
    let sig = hmac_hex(key, br#"{"known_peers":[]}"#);
    assert_eq!(post(node.port, Some(sig)).await, 200);
    let (code, lines) = node.terminate();
    assert_eq!(code, Some(0));
    assert!(
        lines.iter().any(|l| l.contains("mesh gossip on")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(key)),
        "the key is never logged"
    );

    let plain = NodeProcess::start(&base);
    assert_eq!(post(plain.port, None).await, 404, "off by default");
    plain.terminate();
}
