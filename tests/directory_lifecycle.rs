//! Register, heartbeat, token rotation, ownership and deregistration against
//! a real directory over HTTP on loopback.

mod common;

use common::{CHAT, Harness, dead_endpoint, health_server, registration};
use iicp_client::Secret;
use iicp_client::directory::DirectoryConfig;
use iicp_client::wire::heartbeat::challenge_response;
use serde_json::json;

#[tokio::test]
async fn full_lifecycle_with_liveness_probe_on_both_prefixes() {
    let (node_addr, _node) = health_server().await;
    let h = Harness::start(DirectoryConfig::default()).await;
    let ack = h
        .register(&registration(&format!("http://{node_addr}"), &["m1"]))
        .await;
    assert_eq!(ack["message_type"], "ACK");
    assert_eq!(ack["public_reachable"], true, "the probe ran and passed");
    assert_eq!(ack["node_hmac_key"].as_str().unwrap().len(), 32);
    assert_eq!(ack["observed_source_ip"], "127.0.0.1");
    assert_eq!(ack["recovered"], false);
    let id = ack["node_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "assigned ids are UUIDs");

    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}")).await,
        vec![id.clone()]
    );

    let (status, pong) = h
        .heartbeat(&ack, json!({"load": 0.25, "active_jobs": 1}))
        .await;
    assert_eq!(status, 200, "{pong}");
    assert_eq!(pong["ok"], true);
    assert_eq!(pong["next_heartbeat_ms"], 30_000);
    assert_eq!(pong["challenge"].as_str().unwrap().len(), 32);

    // The same routes answer without the /api prefix.
    let bare = h.base.trim_end_matches("/api");
    let resp = h
        .http
        .delete(format!("{bare}/v1/register"))
        .bearer_auth(ack["node_token"].as_str().unwrap())
        .json(&json!({"node_id": id}))
        .send()
        .await
        .unwrap();
    let (status, body) = common::read(resp).await;
    assert_eq!((status, body), (200, json!({"deregistered": true})));
    assert!(h.discover_ids(&format!("intent={CHAT}")).await.is_empty());
    let (status, body) = h.heartbeat(&ack, json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "IICP-E003");
}

#[tokio::test]
async fn unreachable_endpoint_is_refused_with_e036_when_liveness_is_required() {
    let h = Harness::start(DirectoryConfig {
        require_local_liveness: true,
        ..DirectoryConfig::default()
    })
    .await;
    let (status, body) = h
        .post(
            "/v1/register",
            &registration(&dead_endpoint().await, &["m"]),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "IICP-E036");
}

#[tokio::test]
async fn a_local_node_that_registers_before_listening_is_listed_after_its_first_heartbeat() {
    // The Python SDK registers first and serves afterwards (PROTOCOL.md §1.9 item 3).
    let h = Harness::start(DirectoryConfig::default()).await;
    let ack = h
        .register(&registration(&dead_endpoint().await, &["m"]))
        .await;
    assert_eq!(
        ack["public_reachable"], false,
        "the probe ran and got no answer"
    );
    assert!(
        h.discover_ids(&format!("intent={CHAT}")).await.is_empty(),
        "unproven nodes are not offered"
    );
    let (status, _) = h.heartbeat(&ack, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}")).await,
        vec![ack["node_id"].as_str().unwrap().to_owned()]
    );
}

#[tokio::test]
async fn reregistering_with_the_token_rotates_it() {
    let h = Harness::without_probe().await;
    let first = h
        .register(&registration("http://10.1.2.3:9484", &["m"]))
        .await;
    let mut again = registration("http://10.1.2.3:9484", &["m"]);
    again["node_id"] = first["node_id"].clone();
    again["current_node_token"] = first["node_token"].clone();
    let second = h.register(&again).await;
    assert_eq!(second["node_id"], first["node_id"]);
    assert_ne!(second["node_token"], first["node_token"]);
    let (status, body) = h.heartbeat(&first, json!({})).await;
    assert_eq!(status, 401, "old token must stop working");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(h.heartbeat(&second, json!({})).await.0, 200);
}

#[tokio::test]
async fn heartbeat_challenge_is_verified() {
    let h = Harness::without_probe().await;
    let ack = h
        .register(&registration("http://10.1.2.3:9484", &["m"]))
        .await;
    let key = Secret::new(ack["node_hmac_key"].as_str().unwrap());

    let (_, p1) = h.heartbeat(&ack, json!({})).await;
    let c1 = p1["challenge"].as_str().unwrap().to_owned();
    let (status, p2) = h
        .heartbeat(
            &ack,
            json!({"challenge_response": challenge_response(&key, &c1)}),
        )
        .await;
    assert_eq!(status, 200, "{p2}");
    let c2 = p2["challenge"].as_str().unwrap().to_owned();
    assert_ne!(c1, c2, "every PONG carries a fresh challenge");

    // A node whose last PONG was lost answers the challenge before it.
    let (status, p3) = h
        .heartbeat(
            &ack,
            json!({"challenge_response": challenge_response(&key, &c1)}),
        )
        .await;
    assert_eq!(status, 200, "{p3}");

    let (status, body) = h
        .heartbeat(
            &ack,
            json!({"challenge_response": challenge_response(&Secret::new("wrong"), &c2)}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "challenge_failed");
}

#[tokio::test]
async fn heartbeat_rejects_missing_or_wrong_credentials_in_json() {
    let h = Harness::without_probe().await;
    let ack = h
        .register(&registration("http://10.1.2.3:9484", &["m"]))
        .await;
    let (status, body) = h
        .post("/v1/heartbeat", &json!({"node_id": ack["node_id"]}), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = h
        .post(
            "/v1/heartbeat",
            &json!({"node_id": ack["node_id"]}),
            Some("not-the-token"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = h
        .post(
            "/v1/heartbeat",
            &json!({"node_id": "no-such-node"}),
            ack["node_token"].as_str(),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = h
        .post("/v1/heartbeat", &json!({}), ack["node_token"].as_str())
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("node_id")
    );
    let (status, _) = h
        .delete(
            "/v1/register",
            &json!({"node_id": ack["node_id"]}),
            Some("x"),
        )
        .await;
    assert_eq!(status, 401, "deregister needs the node's own token");
}

#[tokio::test]
async fn metrics_batches_move_reputation_once() {
    let h = Harness::without_probe().await;
    let ack = h
        .register(&registration("http://10.1.2.3:9484", &["m"]))
        .await;
    let batch =
        json!({"metrics": {"tasks_success": 5, "tasks_failed": 0}, "metrics_batch_id": "b1"});
    let (_, p) = h.heartbeat(&ack, batch.clone()).await;
    assert_eq!(p["metrics_batch_accepted"], "b1");
    let after_first = p["reputation_score"].as_f64().unwrap();
    assert!(
        (after_first - 0.55).abs() < 1e-9,
        "5 successes add 0.05: {after_first}"
    );
    let (_, p) = h.heartbeat(&ack, batch).await;
    assert_eq!(p["metrics_batch_accepted"], "b1");
    assert_eq!(
        p["reputation_score"].as_f64().unwrap(),
        after_first,
        "a resent batch counts once"
    );
    let (_, p) = h
        .heartbeat(
            &ack,
            json!({"metrics": {"tasks_success": 500, "tasks_failed": 0}, "metrics_batch_id": "b2"}),
        )
        .await;
    assert!(
        (p["reputation_score"].as_f64().unwrap() - 0.65).abs() < 1e-9,
        "gain capped at 0.10 per heartbeat"
    );
    let (_, p) = h
        .heartbeat(
            &ack,
            json!({"metrics": {"tasks_success": 0, "tasks_failed": 2}, "metrics_batch_id": "b3"}),
        )
        .await;
    assert!(
        (p["reputation_score"].as_f64().unwrap() - 0.55).abs() < 1e-9,
        "each failure costs 0.05"
    );
}

#[tokio::test]
async fn an_existing_node_id_is_kept_only_with_its_current_token() {
    let (alive, _node) = health_server().await;
    let (other, _other_node) = health_server().await;
    let h = Harness::start(DirectoryConfig::default()).await;
    let mut body = registration(&format!("http://{alive}"), &["m"]);
    body["node_id"] = json!("node-a");
    let first = h.register(&body).await;
    assert_eq!(first["node_id"], "node-a");
    assert_eq!(
        first["recovered"], true,
        "an unregistered id is taken as asked"
    );

    // Without the token (same body, a new CX key, another endpoint, a wrong
    // token), naming the id registers a new node and leaves node-a alone.
    let mut key_change = body.clone();
    key_change["cx_public_key"] =
        json!({"algorithm": "X25519", "encoding": "base64url", "key": "AAAA", "key_id": "cx-x"});
    let mut moved = body.clone();
    moved["endpoint"] = json!(format!("http://{other}"));
    let mut wrong_token = body.clone();
    wrong_token["current_node_token"] = json!("0".repeat(64));
    for (case, attempt) in [
        ("same body", &body),
        ("new key", &key_change),
        ("moved", &moved),
        ("wrong token", &wrong_token),
    ] {
        let ack = h.register(attempt).await;
        assert_ne!(ack["node_id"], "node-a", "{case}");
        assert!(
            uuid::Uuid::parse_str(ack["node_id"].as_str().unwrap()).is_ok(),
            "{case}"
        );
        assert_eq!(ack["recovered"], false, "{case}");
        assert_eq!(
            h.heartbeat(&first, json!({})).await.0,
            200,
            "{case}: node-a keeps its token"
        );
    }

    // With the token, the id is kept, anything may change, and the old token
    // is revoked.
    let mut owned = moved.clone();
    owned["current_node_token"] = first["node_token"].clone();
    let recovered = h.register(&owned).await;
    assert_eq!(recovered["node_id"], "node-a");
    assert_eq!(recovered["recovered"], true);
    assert_eq!(h.heartbeat(&first, json!({})).await.0, 401);
    assert_eq!(h.heartbeat(&recovered, json!({})).await.0, 200);
    let (_, node) = h.get("/v1/node/node-a").await;
    assert_eq!(node["endpoint"], format!("http://{other}"));
}

#[tokio::test]
async fn register_rate_limit_answers_flat_e034() {
    let h = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        register_rate_limit: 2,
        ..DirectoryConfig::default()
    })
    .await;
    for _ in 0..2 {
        h.register(&registration("http://10.0.0.9:1", &["m"])).await;
    }
    let resp = h
        .http
        .post(h.url("/v1/register"))
        .json(&registration("http://10.0.0.9:1", &["m"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "60");
    let (status, body) = common::read(resp).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], "IICP-E034");
    assert_eq!(body["retry_after"], 60);
}

#[tokio::test]
async fn heartbeat_interval_is_configurable() {
    let h = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        heartbeat_interval: std::time::Duration::from_millis(250),
        ..DirectoryConfig::default()
    })
    .await;
    let ack = h.register(&registration("http://10.0.0.9:1", &[])).await;
    let (_, pong) = h.heartbeat(&ack, json!({})).await;
    assert_eq!(pong["next_heartbeat_ms"], 250);
    assert!(
        h.discover_ids(&format!("intent={CHAT}"))
            .await
            .contains(&ack["node_id"].as_str().unwrap().to_owned())
    );
}
