//! Issue #11, directory items, as an attacker on loopback would try them:
//! node takeover by re-registration (1), unbounded directory memory and
//! spoofed forwarding headers (3), SSRF through the liveness probe (7), and
//! heartbeats that skip the challenge or carry oversized fields (8).

mod common;

use common::{CHAT, Harness, health_server, recording_server, registration};
use iicp_client::directory::clock::ManualClock;
use iicp_client::directory::{Directory, DirectoryConfig, parse_cidr};
use iicp_client::{IicpNode, NodeConfig, TaskContext, TaskRequest};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Registers `body` with extra request headers; returns status, body and
/// the `Retry-After` header.
async fn register_with_headers(
    h: &Harness,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let mut req = h.http.post(h.url("/v1/register")).json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = common::read(resp).await;
    (status, body, retry)
}

// ---------------------------------------------------------------------------
// Item 1: node takeover without its token
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reregistering_a_live_node_id_without_its_token_creates_a_new_node() {
    let (victim_addr, _victim) = health_server().await;
    let h = Harness::start(DirectoryConfig::default()).await;
    let key = iicp_client::cx::CxKeyPair::generate();
    let victim_body = common::registration_cx(&format!("http://{victim_addr}"), &["m"], &key);
    let victim = h.register(&victim_body).await;
    let victim_id = victim["node_id"].as_str().unwrap().to_owned();

    // Everything the attacker sends is public: GET /v1/node/{id} and discover.
    let (status, public) = h.get(&format!("/v1/node/{victim_id}")).await;
    assert_eq!(status, 200);
    let mut attack = registration(public["endpoint"].as_str().unwrap(), &["m"]);
    attack["node_id"] = json!(victim_id);
    attack["cx_public_key"] = public["cx_public_key"].clone();
    let stolen = h.register(&attack).await;

    assert_ne!(stolen["node_id"], victim_id, "the id stays with its owner");
    assert_eq!(stolen["recovered"], false);
    assert_eq!(
        h.heartbeat(&victim, json!({})).await.0,
        200,
        "the owner's token still works"
    );
    let (status, _) = h
        .delete(
            "/v1/register",
            &json!({"node_id": victim_id}),
            stolen["node_token"].as_str(),
        )
        .await;
    assert_eq!(
        status, 401,
        "the attacker's token cannot deregister the owner"
    );
    let (status, _) = h
        .post(
            "/v1/consumer-token",
            &json!({"target_node_id": victim_id, "intent": CHAT}),
            stolen["node_token"].as_str(),
        )
        .await;
    assert_eq!(
        status, 201,
        "consumer tokens still come for the attacker's own node only"
    );
    let (_, after) = h.get(&format!("/v1/node/{victim_id}")).await;
    assert_eq!(after["endpoint"], public["endpoint"]);
}

#[tokio::test]
async fn our_node_publishes_the_id_of_the_ack_when_its_configured_id_is_taken() {
    let dir = Directory::start(
        DirectoryConfig {
            heartbeat_interval: Duration::from_millis(100),
            ..DirectoryConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let h = Harness {
        http: reqwest::Client::new(),
        base: dir.url(),
        dir,
    };
    let mut squatter = registration("http://127.0.0.1:9", &["m"]);
    squatter["node_id"] = json!("taken-id");
    h.register(&squatter).await;

    let node = IicpNode::new(NodeConfig {
        directory_url: h.base.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        models: vec!["test-model".into()],
        node_id: Some("taken-id".into()),
        ..NodeConfig::default()
    })
    .start(|_: TaskRequest, _: TaskContext| async { Ok(json!({"answer": 1})) })
    .await
    .unwrap();
    let mut id = None;
    for _ in 0..200 {
        id = node.node_id().filter(|i| i != "taken-id");
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let id = id.expect("the node takes the id the directory assigned");
    // Its heartbeats (answering challenges) keep it listed under that id.
    for _ in 0..200 {
        let (_, n) = h.get(&format!("/v1/node/{id}")).await;
        if n["available"] == true && n["health_label"] == "healthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        h.discover_ids(&format!("intent={CHAT}"))
            .await
            .contains(&id)
    );
    node.shutdown().await;
    h.dir.shutdown().await;
}

// ---------------------------------------------------------------------------
// Item 3: directory memory without bound
// ---------------------------------------------------------------------------

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let h = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        register_rate_limit: 2,
        ..DirectoryConfig::default()
    })
    .await;
    let body = registration("http://10.0.0.9:1", &["m"]);
    let spoofs: [&[(&str, &str)]; 3] = [
        &[("x-forwarded-for", "198.51.100.1")],
        &[("cf-connecting-ip", "198.51.100.2")],
        &[("x-real-ip", "198.51.100.3")],
    ];
    let mut statuses = Vec::new();
    for headers in spoofs {
        let (status, ack, _) = register_with_headers(&h, &body, headers).await;
        if status == 201 {
            assert_eq!(ack["observed_source_ip"], "127.0.0.1", "{headers:?}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [201, 201, 429], "one budget for one peer");
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_rightmost_untrusted_address() {
    let h = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        register_rate_limit: 1,
        trusted_proxies: vec![
            parse_cidr("127.0.0.1").unwrap(),
            parse_cidr("10.0.0.0/8").unwrap(),
        ],
        ..DirectoryConfig::default()
    })
    .await;
    let body = registration("http://10.0.0.9:1", &["m"]);
    for (chain, observed) in [
        ("203.0.113.50, 198.51.100.7, 10.1.1.1", "198.51.100.7"),
        ("203.0.113.51, 198.51.100.8", "198.51.100.8"),
    ] {
        let (status, ack, _) =
            register_with_headers(&h, &body, &[("x-forwarded-for", chain)]).await;
        assert_eq!(status, 201, "{chain}: {ack}");
        assert_eq!(ack["observed_source_ip"], observed, "{chain}");
    }
    // The spoofable left part does not buy a fresh budget.
    let (status, _, _) = register_with_headers(
        &h,
        &body,
        &[("x-forwarded-for", "203.0.113.99, 198.51.100.7")],
    )
    .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn registration_bodies_and_what_a_node_stores_are_bounded() {
    let h = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        max_node_bytes: 4096,
        ..DirectoryConfig::default()
    })
    .await;
    // 40 KB: under the general body limit, over the register limit.
    let mut big = registration("http://10.0.0.1:9484", &["m"]);
    big["padding"] = json!("x".repeat(40 * 1024));
    let (status, resp) = h.post("/v1/register", &big, None).await;
    assert_eq!(
        (status, resp["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );

    // 6 KB: under the register limit, over this directory's node budget.
    let mut over = registration("http://10.0.0.1:9484", &["m"]);
    over["padding"] = json!("x".repeat(6 * 1024));
    let (status, resp) = h.post("/v1/register", &over, None).await;
    assert_eq!(
        (status, resp["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );

    // A heartbeat may not grow the node past its budget either.
    let ack = h
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    let models: Vec<String> = (0..60)
        .map(|i| format!("{i:02}-{}", "m".repeat(100)))
        .collect();
    let (status, resp) = h.heartbeat(&ack, json!({"health_models": models})).await;
    assert_eq!(
        (status, resp["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );
    let (status, _) = h.heartbeat(&ack, json!({"health_models": ["small"]})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_full_directory_evicts_expired_nodes_then_answers_503() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let h = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        max_nodes: 2,
        evict_after: Duration::from_secs(600),
        eviction_sweep_interval: Duration::from_secs(3600),
        clock: clock.clone(),
        ..DirectoryConfig::default()
    })
    .await;
    let body = registration("http://10.0.0.1:9484", &["m"]);
    let old = h.register(&body).await;
    clock.advance_ms(300_000);
    let kept = h.register(&body).await;

    let (status, err, retry) = register_with_headers(&h, &body, &[]).await;
    assert_eq!(status, 503);
    assert_eq!(err["error"]["code"], "directory_full");
    assert_eq!(retry.as_deref(), Some("60"));

    // A proven re-registration needs no new record.
    let mut again = body.clone();
    again["node_id"] = kept["node_id"].clone();
    again["current_node_token"] = kept["node_token"].clone();
    let kept = h.register(&again).await;

    clock.advance_ms(301_000); // `old` is now unseen for 601 s
    let new = h.register(&body).await;
    let (status, _) = h
        .get(&format!("/v1/node/{}", old["node_id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 404, "the expired node is gone");
    assert_eq!(h.heartbeat(&old, json!({})).await.0, 404);
    assert_eq!(h.heartbeat(&kept, json!({})).await.0, 200);
    assert_eq!(h.heartbeat(&new, json!({})).await.0, 200);
}

#[tokio::test]
async fn expired_nodes_are_swept_from_memory_and_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = DirectoryConfig {
        skip_liveness_check: true,
        db: Some(iicp_client::directory::Database::Sqlite(
            tmp.path().join("directory.db"),
        )),
        evict_after: Duration::from_secs(600),
        eviction_sweep_interval: Duration::from_millis(20),
        clock: clock.clone(),
        ..DirectoryConfig::default()
    };
    let h = Harness::start(config.clone()).await;
    let ack = h
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    let path = format!("/v1/node/{}", ack["node_id"].as_str().unwrap());
    clock.advance_ms(599_000);
    assert_eq!(h.get(&path).await.0, 200, "offline, not yet evicted");
    clock.advance_ms(2_000);
    let mut status = 200;
    for _ in 0..250 {
        status = h.get(&path).await.0;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 404, "the sweep forgot the node");
    h.dir.shutdown().await;
    let h = Harness::start(config).await;
    assert_eq!(h.dir.restored_nodes(), 0, "and the database forgot it too");
    h.dir.shutdown().await;
}

// ---------------------------------------------------------------------------
// Item 7: SSRF through the liveness probe
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_probe_sends_no_query_and_keeps_its_path() {
    let (addr, seen, _server) = recording_server().await;
    let h = Harness::start(DirectoryConfig::default()).await;
    for endpoint in [
        format!("http://{addr}/admin/delete_all?confirm=yes#"),
        format!("http://{addr}/admin?x=1"),
        format!("http://{addr}/admin#frag"),
        format!("http://user:pw@{addr}/admin"),
    ] {
        let (status, err) = h
            .post("/v1/register", &registration(&endpoint, &["m"]), None)
            .await;
        assert_eq!(status, 422, "{endpoint}: {err}");
        assert_eq!(err["error"]["code"], "validation_error", "{endpoint}");
        assert!(err["public_reachable"].is_null());
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request was made: {:?}",
        seen.lock().unwrap()
    );

    let ack = h
        .register(&registration(&format!("http://{addr}/base/"), &["m"]))
        .await;
    assert_eq!(ack["public_reachable"], true);
    assert_eq!(*seen.lock().unwrap(), ["GET /base/iicp/health"]);

    let mut native = registration(&format!("http://{addr}"), &["m"]);
    native["transport_endpoint"] = json!(format!("iicp://{addr}?x=1"));
    let (status, _) = h.post("/v1/register", &native, None).await;
    assert_eq!(status, 422, "transport endpoints follow the same form");
}

/// endpoint-security-v1 `redirect_vectors` at the liveness probe, which is
/// stricter than the client's policy: it follows no redirect at all, 307 and
/// 308 on the same origin included, so a health answer cannot send the
/// probe anywhere the endpoint check did not judge. Each redirect is a
/// failed probe (422 `IICP-E036` with `require_local_liveness`), and neither
/// the same-origin landing page nor the other origin gets a request.
#[tokio::test]
async fn the_probe_follows_no_redirect() {
    use axum::extract::Path;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (elsewhere, seen, _recorder) = recording_server().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let landed = Arc::new(AtomicUsize::new(0));
    let counter = landed.clone();
    let app = axum::Router::new()
        .route(
            "/{case}/iicp/health",
            axum::routing::get(move |Path(case): Path<String>| async move {
                let (status, to) = match case.as_str() {
                    "direct" => return axum::Json(json!({"status": "ok"})).into_response(),
                    "same-307" => (
                        StatusCode::TEMPORARY_REDIRECT,
                        format!("http://{addr}/landing"),
                    ),
                    "same-308" => (
                        StatusCode::PERMANENT_REDIRECT,
                        format!("http://{addr}/landing"),
                    ),
                    "found-302" => (StatusCode::FOUND, format!("http://{addr}/landing")),
                    _ => (
                        StatusCode::TEMPORARY_REDIRECT,
                        format!("http://{elsewhere}/iicp/health"),
                    ),
                };
                (status, [(header::LOCATION, to)]).into_response()
            }),
        )
        .route(
            "/landing",
            axum::routing::get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"status": "ok"}))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let h = Harness::start(DirectoryConfig {
        require_local_liveness: true,
        ..DirectoryConfig::default()
    })
    .await;
    for case in ["same-307", "same-308", "found-302", "cross-307"] {
        let endpoint = format!("http://{addr}/{case}");
        let (status, err) = h
            .post("/v1/register", &registration(&endpoint, &["m"]), None)
            .await;
        assert_eq!(status, 422, "{case}: {err}");
        assert_eq!(err["error"]["code"], "IICP-E036", "{case}");
    }
    assert_eq!(
        landed.load(Ordering::SeqCst),
        0,
        "a same-origin redirect was followed"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "a cross-origin redirect was followed: {:?}",
        seen.lock().unwrap()
    );
    // The same server without a redirect passes the probe.
    let ack = h
        .register(&registration(&format!("http://{addr}/direct"), &["m"]))
        .await;
    assert_eq!(ack["public_reachable"], true);
}

// ---------------------------------------------------------------------------
// Item 8: heartbeat checks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_heartbeat_must_answer_a_challenge_once_one_was_issued() {
    let h = Harness::without_probe().await;
    let body = registration("http://10.1.2.3:9484", &["m"]);
    let ack = h.register(&body).await;
    let hb = json!({"node_id": ack["node_id"]});
    let token = ack["node_token"].as_str();
    let (status, pong) = h.post("/v1/heartbeat", &hb, token).await;
    assert_eq!(status, 200, "nothing to answer before the first PONG");
    assert!(pong["challenge"].is_string());

    let (status, err) = h.post("/v1/heartbeat", &hb, token).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error"]["code"], "challenge_failed");

    // Registering again (with the token) starts over without a challenge;
    // a stale answer to the old one (the Python SDK sends it) is ignored.
    let stale = iicp_client::wire::heartbeat::challenge_response(
        &iicp_client::Secret::new(ack["node_hmac_key"].as_str().unwrap()),
        pong["challenge"].as_str().unwrap(),
    );
    let mut again = body.clone();
    again["node_id"] = ack["node_id"].clone();
    again["current_node_token"] = ack["node_token"].clone();
    let ack = h.register(&again).await;
    let token = ack["node_token"].as_str();
    let mut stale_hb = hb.clone();
    stale_hb["challenge_response"] = json!(stale);
    let (status, pong) = h.post("/v1/heartbeat", &stale_hb, token).await;
    assert_eq!(status, 200);
    let (status, err) = h.post("/v1/heartbeat", &stale_hb, token).await;
    assert_eq!(
        status, 401,
        "once a challenge is out, the stale answer fails: {err}"
    );
    let fresh = iicp_client::wire::heartbeat::challenge_response(
        &iicp_client::Secret::new(ack["node_hmac_key"].as_str().unwrap()),
        pong["challenge"].as_str().unwrap(),
    );
    let (status, _) = h
        .post(
            "/v1/heartbeat",
            &json!({"node_id": ack["node_id"], "challenge_response": fresh}),
            token,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn heartbeat_fields_follow_the_registration_rules() {
    let h = Harness::without_probe().await;
    let ack = h
        .register(&registration("http://10.1.2.3:9484", &["m"]))
        .await;
    let many: Vec<String> = (0..65).map(|i| format!("m{i}")).collect();
    let huge: Vec<String> = (0..20_000).map(|i| format!("m{i}")).collect();
    for (case, fields) in [
        ("65 models", json!({"health_models": many})),
        ("20 000 models", json!({"health_models": huge})),
        ("duplicate model", json!({"health_models": ["a", "a"]})),
        ("empty model", json!({"health_models": [""]})),
        ("long model", json!({"health_models": ["x".repeat(256)]})),
        ("empty batch id", json!({"metrics_batch_id": ""})),
        ("long batch id", json!({"metrics_batch_id": "b".repeat(65)})),
        ("control batch id", json!({"metrics_batch_id": "b\n1"})),
        (
            "long backend state",
            json!({"backend_state": "s".repeat(65)}),
        ),
    ] {
        let (status, err) = h.heartbeat(&ack, fields).await;
        assert_eq!(status, 422, "{case}: {err}");
        assert_eq!(err["error"]["code"], "validation_error", "{case}");
    }
    let (status, _) = h
        .heartbeat(
            &ack,
            json!({"health_models": ["m"], "metrics_batch_id": "b-1"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, node) = h
        .get(&format!("/v1/node/{}", ack["node_id"].as_str().unwrap()))
        .await;
    assert_eq!(node["models"], json!(["m"]));
}
