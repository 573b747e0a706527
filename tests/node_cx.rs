//! IICP-CX at the node: encrypted tasks are opened in the one pipeline, an
//! encrypted answer is sealed when asked for, every failure is a JSON error
//! with its code, and the key is advertised and kept across restarts.

mod common;

use base64::Engine;
use common::CHAT;
use common::node::{Transport, start_node};
use iicp_client::cx::{self, IicpConfResp};
use iicp_client::{NodeConfig, RunningNode, TaskContext, TaskRequest};
use serde_json::{Value, json};

async fn node(cfg: NodeConfig) -> RunningNode {
    start_node(cfg, |req: TaskRequest, _ctx: TaskContext| async move {
        Ok(json!({"seen": req.payload["messages"][0]["content"]}))
    })
    .await
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

    for &transport in Transport::ALL {
        let task_id = uuid::Uuid::new_v4().to_string();
        let payload = json!({"messages": [{"role": "user", "content": "secret question"}]});
        let (conf, ss) = cx::seal_request(&public, &task_id, CHAT, payload.to_string().as_bytes());
        let body = json!({"task_id": task_id, "intent": CHAT, "iicp_conf": conf, "cx_response_encryption": "required"});
        let reply = transport.send(n.local_addr(), body, &[]).await;
        let answer = &reply.body;
        reply.assert_ok(format!("{transport:?}"));
        assert_eq!(answer["status"], "encrypted", "{transport:?}: {answer}");
        assert!(
            answer.get("result").is_none(),
            "no plaintext result beside the sealed one"
        );
        assert!(!reply.text.contains("secret question"));
        let sealed: IicpConfResp =
            serde_json::from_value(answer["iicp_conf_resp"].clone()).unwrap();
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
        let body = json!({"task_id": task_id, "intent": CHAT, "iicp_conf": conf});
        let reply = transport.send(n.local_addr(), body, &[]).await;
        reply.assert_ok(format!("{transport:?}"));
        assert_eq!(reply.body["status"], "success", "{transport:?}");
        assert_eq!(reply.body["result"]["seen"], "secret question");
    }
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
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // A sealed task whose `iicp_conf` was changed by `spoil`.
    let spoiled = |spoil: &dyn Fn(&mut Value)| {
        let id = fresh();
        let mut conf = sealed(&id);
        spoil(&mut conf);
        json!({"task_id": id, "intent": CHAT, "iicp_conf": conf})
    };
    for &transport in Transport::ALL {
        // Built per transport: every case has a fresh task id (the replay
        // window is checked before the payload is opened).
        let cases = [
            (
                "tampered body",
                spoiled(&|conf| {
                    let mut ct = b64
                        .decode(conf["encrypted_body"].as_str().unwrap())
                        .unwrap();
                    ct[0] ^= 1;
                    conf["encrypted_body"] = b64.encode(ct).into();
                }),
                "IICP-CX-02",
            ),
            (
                "unknown key id",
                spoiled(&|conf| conf["recipient_key_id"] = "cx-0000000000000000".into()),
                "IICP-E060",
            ),
            (
                "AAD of another task",
                json!({"task_id": fresh(), "intent": CHAT, "iicp_conf": sealed(&fresh())}),
                "IICP-CX-02",
            ),
            (
                "missing field",
                spoiled(&|conf| {
                    conf.as_object_mut().unwrap().remove("nonce");
                }),
                "IICP-CX-02",
            ),
            (
                "plaintext where encryption was required",
                json!({"task_id": fresh(), "intent": CHAT, "payload": {"messages": []}, "cx_response_encryption": "required"}),
                "IICP-CX-03",
            ),
        ];
        for (why, task, code) in cases {
            let reply = transport.send(n.local_addr(), task, &[]).await;
            reply.assert_is(400, Some(code), format!("{transport:?}: {why}"));
        }
    }
    n.shutdown().await;

    let keyless = node(NodeConfig {
        confidentiality: false,
        skip_registration: true,
        ..Default::default()
    })
    .await;
    for &transport in Transport::ALL {
        let task = json!({"task_id": fresh(), "intent": CHAT, "iicp_conf": sealed(&fresh())});
        transport
            .send(keyless.local_addr(), task, &[])
            .await
            .assert_is(
                400,
                Some("IICP-CX-02"),
                format!("{transport:?}: a node without a key"),
            );
    }
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
