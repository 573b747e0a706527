//! Discover, bootstrap, node look-ups and the routes the directory answers
//! without serving them, over real HTTP.

mod common;

use common::{CHAT, Harness, registration};
use iicp_client::directory::DirectoryConfig;
use iicp_client::directory::clock::ManualClock;
use serde_json::json;
use std::sync::Arc;

fn with_clock(clock: Arc<ManualClock>) -> DirectoryConfig {
    DirectoryConfig {
        skip_liveness_check: true,
        clock,
        ..DirectoryConfig::default()
    }
}

#[tokio::test]
async fn discover_answers_with_headers_and_spec_fields() {
    let h = Harness::without_probe().await;
    let ack = h
        .register(&registration("http://10.0.0.1:9484", &["m1"]))
        .await;
    let resp = h
        .http
        .get(h.url(&format!("/v1/discover?intent={CHAT}")))
        .send()
        .await
        .unwrap();
    let headers = resp.headers().clone();
    assert_eq!(
        headers["cache-control"],
        "public, max-age=5, s-maxage=10, stale-while-revalidate=5"
    );
    assert_eq!(headers["x-iicp-discover-data-class"], "route_dispatch");
    assert!(
        headers["server-timing"]
            .to_str()
            .unwrap()
            .starts_with("discover;dur=")
    );
    let (_, body) = common::read(resp).await;
    assert_eq!(body["count"], 1);
    assert_eq!(body["view"], "dispatch");
    assert_eq!(body["route_fields_present"], true);
    let node = &body["nodes"][0];
    assert_eq!(node["node_id"], ack["node_id"]);
    for field in [
        "endpoint",
        "score",
        "available",
        "region",
        "models",
        "cx_public_key",
        "capabilities",
    ] {
        assert!(node.get(field).is_some(), "node lacks {field}: {node}");
    }
    let score = node["score"].as_f64().unwrap();
    assert!((0.1..=1.0).contains(&score));
}

#[tokio::test]
async fn public_view_strips_route_fields() {
    let h = Harness::without_probe().await;
    h.register(&registration("http://10.0.0.1:9484", &["m1"]))
        .await;
    let (_, body) = h
        .get(&format!("/v1/discover?intent={CHAT}&view=public"))
        .await;
    assert_eq!(body["data_class"], "public_presentation");
    assert_eq!(body["route_fields_present"], false);
    let node = &body["nodes"][0];
    assert!(node.get("endpoint").is_none() && node.get("node_id").is_none());
    assert_eq!(node["node_id_prefix"].as_str().unwrap().len(), 8);
}

#[tokio::test]
async fn region_and_reputation_order_and_limit_clamps() {
    let h = Harness::without_probe().await;
    let mut ids = vec![];
    for region in ["us-east", "eu-central", "ap-south"] {
        let mut body = registration("http://10.0.0.1:9484", &["m1"]);
        body["region"] = json!(region);
        ids.push(
            h.register(&body).await["node_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let first = h
        .discover_ids(&format!("intent={CHAT}&region=eu-central"))
        .await;
    assert_eq!(first[0], ids[1], "the region match ranks first");
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}&limit=2"))
            .await
            .len(),
        2
    );
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}&limit=0"))
            .await
            .len(),
        1
    );
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}&limit=999"))
            .await
            .len(),
        3
    );
    // Same score everywhere without a region: ties are broken by node_id.
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(h.discover_ids(&format!("intent={CHAT}")).await, sorted);
    // Other intents see nothing.
    assert!(
        h.discover_ids("intent=urn:iicp:intent:llm:embedding:v1")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn model_filter_and_empty_health_models() {
    let h = Harness::without_probe().await;
    let a = h
        .register(&registration("http://10.0.0.1:9484", &["phi3:mini"]))
        .await;
    let b = h
        .register(&registration("http://10.0.0.2:9484", &["llama3"]))
        .await;
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}&model=phi3:mini"))
            .await,
        vec![a["node_id"].as_str().unwrap()]
    );
    // health_models overrides the registered models, and [] hides the node.
    h.heartbeat(&b, json!({"health_models": ["phi3:mini"]}))
        .await;
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}&model=phi3:mini"))
            .await
            .len(),
        2
    );
    h.heartbeat(&b, json!({"health_models": []})).await;
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}")).await,
        vec![a["node_id"].as_str().unwrap()]
    );
    // available:false and a draining backend hide it too.
    h.heartbeat(&b, json!({"health_models": ["llama3"], "available": false}))
        .await;
    assert_eq!(h.discover_ids(&format!("intent={CHAT}")).await.len(), 1);
    h.heartbeat(&b, json!({"backend_stability": {"state": "draining"}}))
        .await;
    assert_eq!(h.discover_ids(&format!("intent={CHAT}")).await.len(), 1);
    h.heartbeat(&b, json!({})).await;
    assert_eq!(h.discover_ids(&format!("intent={CHAT}")).await.len(), 2);
}

#[tokio::test]
async fn nodes_unseen_for_90s_drop_out_until_they_beat_again() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let h = Harness::start(with_clock(clock.clone())).await;
    let ack = h
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    clock.advance_ms(90_000);
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}")).await.len(),
        1,
        "90 s is still fresh"
    );
    clock.advance_ms(1_001);
    assert!(h.discover_ids(&format!("intent={CHAT}")).await.is_empty());
    assert_eq!(
        h.get(&format!(
            "/v1/registry/nodes/{}",
            ack["node_id"].as_str().unwrap()
        ))
        .await
        .0,
        404
    );
    h.heartbeat(&ack, json!({})).await;
    assert_eq!(h.discover_ids(&format!("intent={CHAT}")).await.len(), 1);
}

#[tokio::test]
async fn probation_applies_only_when_enforced() {
    let h = Harness::without_probe().await;
    h.register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}&qos=interactive"))
            .await
            .len(),
        1
    );

    let strict = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        enforce_probation: true,
        ..DirectoryConfig::default()
    })
    .await;
    let ack = strict
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    assert!(
        strict
            .discover_ids(&format!("intent={CHAT}&qos=interactive"))
            .await
            .is_empty()
    );
    assert_eq!(
        strict
            .discover_ids(&format!("intent={CHAT}&qos=batch"))
            .await
            .len(),
        1
    );
    for i in 0..10 {
        let batch = json!({"metrics": {"tasks_success": 10, "tasks_failed": 0}, "metrics_batch_id": format!("b{i}")});
        strict.heartbeat(&ack, batch).await;
    }
    assert_eq!(
        strict
            .discover_ids(&format!("intent={CHAT}&qos=interactive"))
            .await
            .len(),
        1,
        "100 tasks end probation"
    );
    assert!(
        strict
            .discover_ids(&format!("intent={CHAT}&qos=realtime"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn discover_rejects_bad_queries_with_json() {
    let h = Harness::without_probe().await;
    for (query, code) in [
        ("", "validation_error"),
        (
            &format!("intent={CHAT}&min_reputation=2.0") as &str,
            "validation_error",
        ),
        (
            &format!("intent={CHAT}&min_reputation=abc"),
            "validation_error",
        ),
        (&format!("intent={CHAT}&qos=fastest"), "validation_error"),
        (&format!("intent={CHAT}&limit=ten"), "validation_error"),
        (
            "intent=urn:iicp:intent:credit:decision:v1",
            "IICP-POLICY-001",
        ),
        (
            "intent=urn:iicp:intent:llm:chat:v1%2Bstream",
            "validation_error",
        ),
        ("intent=not-an-intent", "validation_error"),
    ] {
        let (status, body) = h.get(&format!("/v1/discover?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}");
    }
    // Percent-encoded and raw intents are the same query.
    h.register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    assert_eq!(
        h.discover_ids("intent=urn%3Aiicp%3Aintent%3Allm%3Achat%3Av1")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn bootstrap_node_lookups_and_me() {
    let h = Harness::without_probe().await;
    let a = h
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    let b = h
        .register(&registration("http://10.0.0.2:9484", &["m"]))
        .await;
    let (status, boot) = h.get("/v1/bootstrap?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(boot["count"], 1);
    h.heartbeat(&a, json!({})).await;
    let (_, boot) = h.get("/v1/bootstrap").await;
    assert_eq!(boot["count"], 2);
    assert!(boot["peers"][0]["endpoint"].is_string());

    let id = a["node_id"].as_str().unwrap();
    let (status, node) = h.get(&format!("/v1/node/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(node["capabilities"][0]["intent"], CHAT);
    let (status, body) = h.get("/v1/node/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (status, reg) = h.get(&format!("/v1/registry/nodes/{}", &id[..8])).await;
    assert_eq!(status, 200, "8-character prefixes resolve");
    assert_eq!(reg["node"]["node_id"], id);
    assert_eq!(h.get("/v1/registry/nodes/zzzzzzzz").await.0, 404);

    let resp = h
        .http
        .get(h.url("/v1/me"))
        .bearer_auth(b["node_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (status, me) = common::read(resp).await;
    assert_eq!(status, 200);
    assert_eq!(me["node_id"], b["node_id"]);
    assert_eq!(me["observed_source_ip"], "127.0.0.1");
    assert_eq!(h.get("/v1/me").await.0, 401);
}

#[tokio::test]
async fn unserved_routes_answer_in_json() {
    let h = Harness::without_probe().await;
    let (status, body) = h
        .post("/v1/dispatch/ticket", &json!({"intent": CHAT}), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("not_configured"))
    );
    let (status, body) = h.get("/v1/does-not-exist").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let resp = h.http.put(h.url("/v1/register")).send().await.unwrap();
    let (status, body) = common::read(resp).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    for path in ["/v1/credits/balance", "/v1/credits/transactions"] {
        assert_eq!(h.get(path).await.0, 401, "{path}");
    }
    assert_eq!(h.post("/v1/credits/award", &json!({}), None).await.0, 401);
    let (status, body) = h.post("/v1/telemetry", &json!({}), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("IICP-E032"))
    );
    let ack = h
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    let (status, body) = h
        .post("/v1/credits/award", &json!({}), ack["node_token"].as_str())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (501, Some("not_implemented"))
    );
    let (status, health) = common::read(
        h.http
            .get(h.base.replace("/api", "/iicp/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, health["ok"].as_bool()), (200, Some(true)));
}

#[tokio::test]
async fn probe_refuses_private_targets_even_in_local_mode() {
    let h = Harness::without_probe().await;
    for host in [
        "127.0.0.1",
        "10.0.0.1",
        "::1",
        "localhost",
        "169.254.169.254",
    ] {
        let (status, body) = h.get(&format!("/v1/probe?host={host}&port=9484")).await;
        assert_eq!(status, 422, "{host}");
        assert_eq!(body["error"]["code"], "IICP-E035", "{host}");
    }
    assert_eq!(h.get("/v1/probe?port=9484").await.0, 422);
}

#[tokio::test]
async fn registrations_survive_a_restart_with_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("directory.db");
    let clock = Arc::new(ManualClock::new(5_000_000));
    let config = DirectoryConfig {
        db: Some(iicp_client::directory::Database::Sqlite(db.clone())),
        ..with_clock(clock.clone())
    };
    let h = Harness::start(config.clone()).await;
    let ack = h
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    let gone = h
        .register(&registration("http://10.0.0.2:9484", &["m"]))
        .await;
    h.delete(
        "/v1/register",
        &json!({"node_id": gone["node_id"]}),
        gone["node_token"].as_str(),
    )
    .await;
    h.heartbeat(
        &ack,
        json!({"metrics": {"tasks_success": 3}, "metrics_batch_id": "x"}),
    )
    .await;
    h.dir.shutdown().await;

    let h = Harness::start(config.clone()).await;
    assert_eq!(
        h.dir.restored_nodes(),
        1,
        "the deregistered node stays gone"
    );
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}")).await,
        vec![ack["node_id"].as_str().unwrap()]
    );
    let (status, pong) = h.heartbeat(&ack, json!({})).await;
    assert_eq!(status, 200, "the token is still valid after a restart");
    assert!((pong["reputation_score"].as_f64().unwrap() - 0.53).abs() < 1e-9);
    h.dir.shutdown().await;

    clock.advance_ms(120_000);
    let h = Harness::start(config).await;
    assert!(
        h.discover_ids(&format!("intent={CHAT}")).await.is_empty(),
        "stale nodes still expire"
    );
}
