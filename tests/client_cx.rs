//! The client's side of IICP-CX (PROTOCOL.md §2.5) against the real local
//! directory and scripted nodes on loopback: payloads are sealed per node,
//! an encrypted answer is always asked for and opened, a plaintext or
//! tampered answer to a sealed request is refused, and keyless nodes get
//! nothing unless plaintext is allowed.

mod common;

use common::test_node::{Reply, TestNode};
use common::{CHAT, Harness, registration, registration_cx};
use iicp_client::cx::CxKeyPair;
use iicp_client::{
    ChatMessage, ClientConfig, IicpClient, IicpError, IicpNode, NodeConfig, TaskContext,
    TaskRequest,
};
use serde_json::{Value, json};

const PROMPT: &str = "PROMPT-secret-4242";

fn client(h: &Harness, allow_plaintext: bool) -> IicpClient {
    IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        timeout_ms: 10_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(allow_plaintext)
    .retry_base_ms(1)
    .build()
    .unwrap()
}

async fn add(h: &Harness, id: &str, body: Value) {
    let mut body = body;
    body["node_id"] = json!(id);
    h.register(&body).await;
}

fn prompt() -> Vec<ChatMessage> {
    vec![ChatMessage::user(PROMPT)]
}

#[tokio::test]
async fn the_payload_is_sealed_to_the_node_and_the_sealed_answer_opened() {
    let h = Harness::without_probe().await;
    let key = CxKeyPair::generate();
    let node = TestNode::start_cx(vec![Reply::Echo], key.clone()).await;
    add(&h, "n1", registration_cx(&node.endpoint(), &["m"], &key)).await;

    let reply = client(&h, false).chat(prompt(), None).await.unwrap();
    assert_eq!(
        reply.choices[0].message.content.text(),
        format!("echo: {PROMPT}")
    );

    let seen = node.seen();
    assert_eq!(seen.len(), 1);
    let body = &seen[0].body;
    assert!(
        !body.to_string().contains(PROMPT),
        "the prompt crossed the wire readable: {body}"
    );
    assert!(body.get("payload").is_none(), "no plaintext payload field");
    assert_eq!(body["cx_response_encryption"], "required");
    let conf = &body["iicp_conf"];
    assert_eq!(conf["version"], 1);
    assert_eq!(conf["recipient_key_id"], key.key_id());
    let conf: iicp_client::cx::IicpConf = serde_json::from_value(conf.clone()).unwrap();
    let (plain, _) = key
        .open_request(&conf, body["task_id"].as_str().unwrap(), CHAT)
        .unwrap();
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(payload["messages"][0]["content"], PROMPT);
    assert_eq!(conf.plaintext_size, plain.len());
}

#[tokio::test]
async fn each_node_gets_its_own_seal() {
    let h = Harness::without_probe().await;
    let (k1, k2) = (CxKeyPair::generate(), CxKeyPair::generate());
    let failing = TestNode::start_cx(
        vec![Reply::Status(
            502,
            json!({"error": {"code": "backend_error", "message": "down"}}),
            None,
        )],
        k1.clone(),
    )
    .await;
    let good = TestNode::start_cx(vec![Reply::Echo], k2.clone()).await;
    add(
        &h,
        "a-failing",
        registration_cx(&failing.endpoint(), &["m"], &k1),
    )
    .await;
    add(&h, "b-good", registration_cx(&good.endpoint(), &["m"], &k2)).await;

    let reply = client(&h, false).chat(prompt(), None).await.unwrap();
    assert_eq!(
        reply.choices[0].message.content.text(),
        format!("echo: {PROMPT}")
    );
    let first = &failing.seen()[0].body["iicp_conf"];
    let second = &good.seen()[0].body["iicp_conf"];
    assert_eq!(first["recipient_key_id"], k1.key_id());
    assert_eq!(second["recipient_key_id"], k2.key_id());
    assert_ne!(first["kem_ciphertext"], second["kem_ciphertext"]);
    assert_ne!(first["nonce"], second["nonce"]);
}

#[tokio::test]
async fn keyless_nodes_are_skipped_by_default_and_nothing_is_sent() {
    let h = Harness::without_probe().await;
    let node = TestNode::start(vec![Reply::Echo]).await;
    add(&h, "n1", registration(&node.endpoint(), &["m"])).await;

    let err = client(&h, false).chat(prompt(), None).await.unwrap_err();
    assert_eq!(err.code(), "IICP-CX-REQUIRED");
    assert!(matches!(err, IicpError::PlaintextRefused { nodes: 1, .. }));
    let text = err.to_string();
    assert!(text.contains("IICP_CX_ALLOW_PLAINTEXT=1"), "{text}");
    assert!(text.contains("allow_plaintext"), "{text}");
    assert!(!err.is_retryable());
    assert_eq!(node.hits(), 0, "a keyless node never sees the task");
}

#[tokio::test]
async fn a_keyed_node_serves_even_when_a_keyless_one_is_listed_first() {
    let h = Harness::without_probe().await;
    let keyless = TestNode::start(vec![Reply::Echo]).await;
    let key = CxKeyPair::generate();
    let keyed = TestNode::start_cx(vec![Reply::Echo], key.clone()).await;
    add(&h, "a-keyless", registration(&keyless.endpoint(), &["m"])).await;
    add(
        &h,
        "b-keyed",
        registration_cx(&keyed.endpoint(), &["m"], &key),
    )
    .await;

    let reply = client(&h, false).chat(prompt(), None).await.unwrap();
    assert_eq!(reply.node_id.as_deref(), Some("b-keyed"));
    assert_eq!(keyless.hits(), 0);
    assert_eq!(keyed.hits(), 1);
}

#[tokio::test]
async fn with_plaintext_allowed_a_keyless_node_gets_the_payload_and_keyed_ones_still_a_seal() {
    let h = Harness::without_probe().await;
    let keyless = TestNode::start(vec![Reply::Echo]).await;
    add(&h, "n1", registration(&keyless.endpoint(), &["m"])).await;
    let reply = client(&h, true).chat(prompt(), None).await.unwrap();
    assert_eq!(
        reply.choices[0].message.content.text(),
        format!("echo: {PROMPT}")
    );
    let body = &keyless.seen()[0].body;
    assert_eq!(body["payload"]["messages"][0]["content"], PROMPT);
    assert!(body.get("iicp_conf").is_none());
    assert!(body.get("cx_response_encryption").is_none());

    let h2 = Harness::without_probe().await;
    let key = CxKeyPair::generate();
    let keyed = TestNode::start_cx(vec![Reply::Echo], key.clone()).await;
    add(&h2, "n2", registration_cx(&keyed.endpoint(), &["m"], &key)).await;
    client(&h2, true).chat(prompt(), None).await.unwrap();
    let body = &keyed.seen()[0].body;
    assert!(body.get("payload").is_none(), "opt-in never downgrades");
    assert_eq!(body["cx_response_encryption"], "required");
}

#[tokio::test]
async fn a_plaintext_answer_to_a_sealed_request_is_refused() {
    let h = Harness::without_probe().await;
    let key = CxKeyPair::generate();
    let node = TestNode::start_cx(vec![Reply::EchoPlain], key.clone()).await;
    add(&h, "n1", registration_cx(&node.endpoint(), &["m"], &key)).await;

    let err = client(&h, false).chat(prompt(), None).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("IICP-CX-RESP-REQUIRED"), "{text}");
    assert!(!text.contains(PROMPT), "{text}");
    assert_eq!(node.hits(), 1, "refused, not retried on the same node");
}

#[tokio::test]
async fn a_tampered_sealed_answer_is_refused_and_the_next_node_serves() {
    let h = Harness::without_probe().await;
    let (k1, k2) = (CxKeyPair::generate(), CxKeyPair::generate());
    let tampering = TestNode::start_cx(vec![Reply::EchoTampered], k1.clone()).await;
    let good = TestNode::start_cx(vec![Reply::Echo], k2.clone()).await;
    add(
        &h,
        "a-tamper",
        registration_cx(&tampering.endpoint(), &["m"], &k1),
    )
    .await;

    let err = client(&h, false).chat(prompt(), None).await.unwrap_err();
    assert!(err.to_string().contains("IICP-CX-02"), "{err}");

    add(&h, "b-good", registration_cx(&good.endpoint(), &["m"], &k2)).await;
    let reply = client(&h, false).chat(prompt(), None).await.unwrap();
    assert_eq!(reply.node_id.as_deref(), Some("b-good"));
}

#[tokio::test]
async fn our_client_and_our_node_talk_sealed_end_to_end() {
    let h = Harness::without_probe().await;
    let running = IicpNode::new(NodeConfig {
        directory_url: h.base.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        models: vec!["m".into()],
        ..Default::default()
    })
    .start(|req: TaskRequest, _ctx: TaskContext| async move {
        // The handler sees the opened payload.
        Ok(json!({"seen": req.payload["messages"][0]["content"]}))
    })
    .await
    .unwrap();
    running.registered().await.unwrap();
    let task = TaskRequest::new(
        CHAT.parse().unwrap(),
        json!({"messages": [{"role": "user", "content": PROMPT}]}),
    );
    let response = client(&h, false).submit(task).await.unwrap();
    assert_eq!(response.result.unwrap()["seen"], PROMPT);
    assert!(
        response.iicp_conf_resp.is_none(),
        "the opened envelope is returned"
    );
    running.shutdown().await;
}
