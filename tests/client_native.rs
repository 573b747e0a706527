//! `IicpClient` with `prefer_native` against the real local directory and
//! our node on loopback: tasks go over the native transport to nodes that
//! list an `iicp://` `transport_endpoint` (sealed and plaintext alike), the
//! answer has the shape the HTTP path gives, refusals are judged the same,
//! and the client falls back to HTTP when the native connection cannot be
//! made. Without the option, or for `iicpsec://`, HTTP is used.
//!
//! To tell the transports apart, the directory entries are registered by
//! the test: a "native only" entry lists a dead HTTP endpoint beside the
//! node's real native one, so only a native submit can succeed.

#![cfg(feature = "iicp-tcp")]

mod common;

use common::node::{local_config, start_node};
use common::{CHAT, Harness, dead_endpoint, registration, registration_cx};
use iicp_client::cx::CxKeyPair;
use iicp_client::node::handler_fn;
use iicp_client::wire::TaskStatus;
use iicp_client::{
    ClientConfig, HandlerError, IicpClient, IicpError, NodeConfig, RunningNode, TaskRequest,
};
use serde_json::{Value, json};

/// Our node with CX key `key` (from a key file), echoing its payload.
async fn node(key: Option<&CxKeyPair>) -> (RunningNode, Option<tempfile::TempDir>) {
    let dir = key.map(|k| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cx.key"), hex::encode(k.secret_bytes())).unwrap();
        dir
    });
    let config = NodeConfig {
        confidentiality: key.is_some(),
        cx_key_file: dir.as_ref().map(|d| d.path().join("cx.key")),
        ..local_config()
    };
    let node = start_node(
        config,
        handler_fn(|req, _ctx| async move {
            if req.payload["fail"] == json!(true) {
                return Err(HandlerError::new(400, "bad_input", "this task cannot run"));
            }
            Ok(json!({"echo": req.payload}))
        }),
    )
    .await;
    (node, dir)
}

fn client(h: &Harness, prefer_native: bool, allow_plaintext: bool) -> IicpClient {
    IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        timeout_ms: 10_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(allow_plaintext)
    .prefer_native(prefer_native)
    .retry_base_ms(1)
    .discovery_cache(false)
    .build()
    .unwrap()
}

/// Registers `id` with this HTTP endpoint, native endpoint and CX key.
async fn list(h: &Harness, id: &str, http: &str, native: Option<&str>, key: Option<&CxKeyPair>) {
    let mut body = match key {
        Some(k) => registration_cx(http, &["m"], k),
        None => registration(http, &["m"]),
    };
    body["node_id"] = json!(id);
    if let Some(native) = native {
        body["transport_endpoint"] = json!(native);
    }
    h.register(&body).await;
}

fn task(payload: Value) -> TaskRequest {
    TaskRequest::new(CHAT.parse().unwrap(), payload)
}

fn native_of(node: &RunningNode) -> String {
    format!("iicp://{}", node.local_addr())
}

#[tokio::test]
async fn a_sealed_task_goes_native_and_its_answer_is_the_http_shape() {
    let key = CxKeyPair::generate();
    let (node, _keys) = node(Some(&key)).await;
    let native_only = Harness::without_probe().await;
    let dead = dead_endpoint().await;
    list(
        &native_only,
        "n-native",
        &dead,
        Some(&native_of(&node)),
        Some(&key),
    )
    .await;
    let over_http = Harness::without_probe().await;
    list(&over_http, "n-http", node.endpoint(), None, Some(&key)).await;

    let mut t = task(json!({"text": "sealed hello"}));
    t.task_id = "task-native-cx-1".into();
    let native = client(&native_only, true, false).submit(t).await.unwrap();
    let mut t = task(json!({"text": "sealed hello"}));
    t.task_id = "task-http-cx-1".into();
    let http = client(&over_http, true, false).submit(t).await.unwrap();

    assert_eq!(native.task_id, "task-native-cx-1");
    assert_eq!(native.status, TaskStatus::Success);
    assert_eq!(
        native.result,
        Some(json!({"echo": {"text": "sealed hello"}}))
    );
    // The sealed answer is the node's whole envelope: the same fields as
    // over HTTP, metrics included.
    assert_eq!((native.status, &native.result), (http.status, &http.result));
    assert_eq!(native.generated_by_ai, http.generated_by_ai);
    let (nm, hm) = (native.metrics.unwrap(), http.metrics.unwrap());
    assert!(nm.latency_ms.is_some() && hm.latency_ms.is_some());
    assert_eq!(nm.node_id.is_some(), hm.node_id.is_some());

    // Without prefer_native the same entry is reached over HTTP only: dead.
    let err = client(&native_only, false, false)
        .submit(task(json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IicpError::NoAvailableNode { .. } | IicpError::Transport { .. }
        ),
        "{err:?}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_plaintext_task_goes_native_and_refusals_are_judged_as_over_http() {
    let (node, _) = node(None).await;
    let native_only = Harness::without_probe().await;
    let dead = dead_endpoint().await;
    list(
        &native_only,
        "n-native",
        &dead,
        Some(&native_of(&node)),
        None,
    )
    .await;
    let over_http = Harness::without_probe().await;
    list(&over_http, "n-http", node.endpoint(), None, None).await;
    let native = client(&native_only, true, true);
    let http = client(&over_http, true, true);

    let mut t = task(json!({"n": 1}));
    t.task_id = "task-native-plain-1".into();
    let answer = native.submit(t).await.unwrap();
    assert_eq!(answer.task_id, "task-native-plain-1");
    assert_eq!(answer.status, TaskStatus::Success);
    assert_eq!(answer.result, Some(json!({"echo": {"n": 1}})));
    assert_eq!(
        answer.metrics.and_then(|m| m.node_id).as_deref(),
        Some("n-native")
    );

    // The handler's refusal: the same status and code either way, and no
    // failover (a 400 fails fast).
    let failing = json!({"fail": true});
    let over_native = native.submit(task(failing.clone())).await.unwrap_err();
    let over_http = http.submit(task(failing)).await.unwrap_err();
    assert_eq!(
        (over_native.status(), over_native.code()),
        (over_http.status(), over_http.code()),
        "native {over_native:?} / http {over_http:?}"
    );
    assert_eq!(over_native.code(), "bad_input");

    // Two submits of one task id: the node knows the repeat over native as
    // it does over HTTP (409, the task is already there), and moves on.
    let mut again = task(json!({"n": 2}));
    again.task_id = "task-native-plain-1".into();
    let repeat = native.submit(again).await.unwrap_err();
    assert_eq!(repeat.status(), Some(409), "{repeat:?}");
    node.shutdown().await;
}

#[tokio::test]
async fn the_client_falls_back_to_http_when_native_does_not_connect() {
    let key = CxKeyPair::generate();
    let (node, _keys) = node(Some(&key)).await;
    let h = Harness::without_probe().await;
    let dead_native = dead_endpoint().await.replace("http://", "iicp://");
    list(&h, "n1", node.endpoint(), Some(&dead_native), Some(&key)).await;
    let answer = client(&h, true, false)
        .submit(task(json!({"via": "fallback"})))
        .await
        .unwrap();
    assert_eq!(answer.result, Some(json!({"echo": {"via": "fallback"}})));
    node.shutdown().await;
}

#[tokio::test]
async fn iicpsec_endpoints_are_reached_over_http_not_native_without_tls() {
    let (node, _) = node(None).await;
    let h = Harness::without_probe().await;
    // The listed TLS endpoint is the node's own port: were it used natively
    // without TLS, the task would reach the node in the clear.
    let tls = format!("iicpsec://{}", node.local_addr());
    list(&h, "n1", node.endpoint(), Some(&tls), None).await;
    let answer = client(&h, true, true)
        .submit(task(json!({"n": 3})))
        .await
        .unwrap();
    assert_eq!(answer.result, Some(json!({"echo": {"n": 3}})));
    // Proof it went over HTTP: the HTTP envelope carries the node's metrics.
    assert!(answer.metrics.and_then(|m| m.latency_ms).is_some());
    node.shutdown().await;
}
