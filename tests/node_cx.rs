//! IICP-CX at the node: encrypted tasks are opened in the one pipeline, an
//! encrypted answer is sealed when asked for, every failure is a JSON error
//! with its code, and the key is advertised and kept across restarts.

mod common;

use base64::Engine;
use common::CHAT;
use iicp_client::cx::{self, IicpConfResp};
use iicp_client::{IicpNode, NodeConfig, RunningNode, TaskContext, TaskRequest};
use serde_json::{Value, json};

async fn node(cfg: NodeConfig) -> RunningNode {
    IicpNode::new(NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..cfg
    })
    .start(|req: TaskRequest, _ctx: TaskContext| async move {
        Ok(json!({"seen": req.payload["messages"][0]["content"]}))
    })
    .await
    .unwrap()
}

/// The node's advertised public key, read back from its registration.
async fn advertised_key(
    dir: &common::Harness,
    node: &RunningNode,
) -> iicp_client::wire::CxPublicKey {
    let (_, info) = dir
        .get(&format!("/v1/node/{}", node.registered().await.unwrap()))
        .await;
    serde_json::from_value(info["cx_public_key"].clone()).expect("a CX key is advertised")
}

async fn post(node: &RunningNode, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/task", node.endpoint()))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn encrypted_task_and_encrypted_answer() {
    let dir = common::Harness::without_probe().await;
    let n = node(NodeConfig {
        directory_url: dir.base.clone(),
        ..Default::default()
    })
    .await;
    let key = advertised_key(&dir, &n).await;
    assert_eq!(key.algorithm, "X25519");
    assert_eq!(key.features, vec!["response_encryption_v1"]);
    assert!(key.key_id.starts_with("cx-"));
    let public = cx::public_key_bytes(&key).unwrap();

    let task_id = uuid::Uuid::new_v4().to_string();
    let payload = json!({"messages": [{"role": "user", "content": "secret question"}]});
    let (conf, ss) = cx::seal_request(&public, &task_id, CHAT, payload.to_string().as_bytes());
    let body = json!({"task_id": task_id, "intent": CHAT, "iicp_conf": conf, "cx_response_encryption": "required"});
    let (status, answer) = post(&n, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "encrypted");
    assert!(
        answer.get("result").is_none(),
        "no plaintext result beside the sealed one"
    );
    assert!(!answer.to_string().contains("secret question"));
    let sealed: IicpConfResp = serde_json::from_value(answer["iicp_conf_resp"].clone()).unwrap();
    let opened: Value =
        serde_json::from_slice(&cx::open_response(&ss, &task_id, &sealed).unwrap()).unwrap();
    assert_eq!(opened["status"], "success");
    assert_eq!(opened["task_id"], task_id);
    assert_eq!(
        opened["result"]["seen"], "secret question",
        "the handler saw the decrypted payload"
    );

    // Encrypted request, plaintext answer allowed when not asked for.
    let task_id = uuid::Uuid::new_v4().to_string();
    let (conf, _) = cx::seal_request(&public, &task_id, CHAT, payload.to_string().as_bytes());
    let (status, answer) = post(
        &n,
        &json!({"task_id": task_id, "intent": CHAT, "iicp_conf": conf}),
    )
    .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("success")));
    assert_eq!(answer["result"]["seen"], "secret question");
    n.shutdown().await;
}

#[tokio::test]
async fn cx_failures_are_json_errors_with_codes() {
    let dir = common::Harness::without_probe().await;
    let n = node(NodeConfig {
        directory_url: dir.base.clone(),
        ..Default::default()
    })
    .await;
    let public = cx::public_key_bytes(&advertised_key(&dir, &n).await).unwrap();
    let payload = br#"{"messages":[{"role":"user","content":"x"}]}"#;
    let sealed = |task_id: &str| {
        serde_json::to_value(cx::seal_request(&public, task_id, CHAT, payload).0).unwrap()
    };
    let fresh = || uuid::Uuid::new_v4().to_string();

    let id = fresh();
    let mut conf = sealed(&id);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut ct = b64
        .decode(conf["encrypted_body"].as_str().unwrap())
        .unwrap();
    ct[0] ^= 1;
    conf["encrypted_body"] = b64.encode(ct).into();
    let (status, body) = post(
        &n,
        &json!({"task_id": id, "intent": CHAT, "iicp_conf": conf}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("IICP-CX-02")),
        "tampered body"
    );

    let id = fresh();
    let mut conf = sealed(&id);
    conf["recipient_key_id"] = "cx-0000000000000000".into();
    let (status, body) = post(
        &n,
        &json!({"task_id": id, "intent": CHAT, "iicp_conf": conf}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("IICP-E060")),
        "unknown key id"
    );

    let (status, body) = post(
        &n,
        &json!({"task_id": fresh(), "intent": CHAT, "iicp_conf": sealed(&fresh())}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("IICP-CX-02")),
        "AAD of another task"
    );

    let id = fresh();
    let mut conf = sealed(&id);
    conf.as_object_mut().unwrap().remove("nonce");
    let (status, body) = post(
        &n,
        &json!({"task_id": id, "intent": CHAT, "iicp_conf": conf}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("IICP-CX-02")),
        "missing field"
    );

    let plain = json!({"task_id": fresh(), "intent": CHAT, "payload": {"messages": []}, "cx_response_encryption": "required"});
    let (status, body) = post(&n, &plain).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("IICP-CX-03")),
        "plaintext where encryption was required"
    );
    n.shutdown().await;

    let keyless = node(NodeConfig {
        confidentiality: false,
        skip_registration: true,
        ..Default::default()
    })
    .await;
    let (status, body) = post(
        &keyless,
        &json!({"task_id": fresh(), "intent": CHAT, "iicp_conf": sealed(&fresh())}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("IICP-CX-02")),
        "a node without a key"
    );
    keyless.shutdown().await;
}

#[tokio::test]
async fn the_key_file_keeps_the_key_id_across_restarts() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("cx_x25519.key");
    let dir = common::Harness::without_probe().await;
    let cfg = NodeConfig {
        directory_url: dir.base.clone(),
        cx_key_file: Some(path.clone()),
        ..Default::default()
    };
    let first = node(cfg.clone()).await;
    let id1 = advertised_key(&dir, &first).await.key_id;
    first.shutdown().await;
    let second = node(cfg).await;
    assert_eq!(advertised_key(&dir, &second).await.key_id, id1);
    second.shutdown().await;
    assert!(path.exists());
}
