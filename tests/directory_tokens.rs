//! The directory's signing key and consumer tokens (PROTOCOL.md §1.7) over
//! real HTTP on loopback: `GET /v1/directory-key` and
//! `POST /v1/consumer-token`, on both prefixes.

mod common;

use common::{CHAT, Harness, registration};
use iicp_client::directory::DirectoryConfig;
use iicp_client::directory::clock::ManualClock;
use iicp_client::token::{
    CONSUMER_TOKEN_TTL_SECS, DEFAULT_ISSUER, DirectoryPublicKey, DirectorySigningKey,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// 2023-11-14T22:13:43.456Z: the seconds part is what `iat` must hold.
const NOW_MS: u64 = 1_700_000_023_456;
const NOW_S: u64 = 1_700_000_023;

fn config() -> DirectoryConfig {
    DirectoryConfig {
        skip_liveness_check: true,
        clock: Arc::new(ManualClock::new(NOW_MS)),
        ..DirectoryConfig::default()
    }
}

/// Two registered nodes: (caller ACK, target ACK).
async fn two_nodes(h: &Harness) -> (Value, Value) {
    let a = h
        .register(&registration("http://10.0.0.1:9484", &["m"]))
        .await;
    let b = h
        .register(&registration("http://10.0.0.2:9484", &["m"]))
        .await;
    (a, b)
}

fn id(ack: &Value) -> &str {
    ack["node_id"].as_str().unwrap()
}

fn node_token(ack: &Value) -> &str {
    ack["node_token"].as_str().unwrap()
}

/// `base` is `h.base` (`…/api`) or the bare origin; `body` is sent as is.
async fn request_token(
    h: &Harness,
    base: &str,
    bearer: Option<&str>,
    node_id: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = h
        .http
        .post(format!("{base}/v1/consumer-token"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(n) = node_id {
        req = req.header("X-Node-Id", n);
    }
    common::read(req.send().await.unwrap()).await
}

fn bare(h: &Harness) -> String {
    h.base.trim_end_matches("/api").to_owned()
}

async fn served_key(h: &Harness, base: &str) -> (u16, Value) {
    common::read(
        h.http
            .get(format!("{base}/v1/directory-key"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn directory_key_is_the_configured_key_on_both_prefixes() {
    let key = DirectorySigningKey::from_seed([42; 32]);
    let expected = key.public_key().to_hex();
    let h = Harness::start(DirectoryConfig {
        signing_key: Some(key),
        ..config()
    })
    .await;
    assert_eq!(h.dir.public_key().unwrap().to_hex(), expected);
    for base in [h.base.clone(), bare(&h)] {
        let (status, body) = served_key(&h, &base).await;
        assert_eq!(status, 200, "{base}: {body}");
        assert_eq!(
            body,
            json!({"public_key": expected, "algorithm": "ed25519"}),
            "{base}"
        );
    }
}

#[tokio::test]
async fn the_default_config_generates_a_key_and_serves_it() {
    let h = Harness::start(config()).await;
    let (status, body) = served_key(&h, &h.base).await;
    assert_eq!(status, 200, "{body}");
    let served = DirectoryPublicKey::from_hex(body["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(Some(served), h.dir.public_key());
    let other = Harness::start(config()).await;
    assert_ne!(
        other.dir.public_key(),
        h.dir.public_key(),
        "each default config gets a fresh key"
    );
}

#[tokio::test]
async fn a_registered_node_gets_a_signed_token_for_another_node() {
    let h = Harness::start(config()).await;
    let (a, b) = two_nodes(&h).await;
    let body = json!({"target_node_id": id(&b), "intent": CHAT}).to_string();
    let (status, resp) =
        request_token(&h, &h.base, Some(node_token(&a)), Some(id(&a)), &body).await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["caller_node_id"], id(&a));
    assert_eq!(resp["target_node_id"], id(&b));
    assert_eq!(resp["intent"], CHAT);
    let token = resp["token"].as_str().unwrap();
    assert!(
        !token.contains(node_token(&a)),
        "the node token is not inside the token"
    );

    let (_, key) = served_key(&h, &h.base).await;
    let key = DirectoryPublicKey::from_hex(key["public_key"].as_str().unwrap()).unwrap();
    let claims = key.verify_consumer_token(token).expect("verifies");
    assert_eq!(claims.v, 1);
    assert_eq!(claims.iss, DEFAULT_ISSUER);
    assert_eq!(claims.sub, id(&a));
    assert_eq!(claims.aud, id(&b));
    assert_eq!(claims.intent, CHAT);
    assert_eq!(claims.iat, NOW_S, "iat is the directory clock in seconds");
    assert_eq!(claims.exp, NOW_S + CONSUMER_TOKEN_TTL_SECS);
    assert_eq!(claims.exp, claims.iat + 300);
    assert_eq!(resp["expires_at"], claims.exp);
    assert_eq!(claims.check(id(&b), CHAT, NOW_S), Ok(()));
    assert!(
        claims.check(id(&a), CHAT, NOW_S).is_err(),
        "not valid for the caller itself"
    );

    let stranger = DirectorySigningKey::from_seed([1; 32]).public_key();
    assert!(
        stranger.verify_consumer_token(token).is_err(),
        "signed with the directory's key, not any key"
    );
}

#[tokio::test]
async fn bearer_alone_and_both_prefixes_are_accepted() {
    let h = Harness::start(config()).await;
    let (a, b) = two_nodes(&h).await;
    let key = h.dir.public_key().unwrap();
    for base in [h.base.clone(), bare(&h)] {
        for node_id in [Some(id(&a)), None] {
            let body = json!({"target_node_id": id(&b), "intent": "*"}).to_string();
            let (status, resp) =
                request_token(&h, &base, Some(node_token(&a)), node_id, &body).await;
            assert_eq!(status, 201, "{base} X-Node-Id {node_id:?}: {resp}");
            assert_eq!(
                resp["caller_node_id"],
                id(&a),
                "the token's holder is the caller"
            );
            let claims = key
                .verify_consumer_token(resp["token"].as_str().unwrap())
                .unwrap();
            assert_eq!(claims.sub, id(&a));
            assert_eq!(claims.aud, id(&b));
            assert_eq!(claims.intent, "*");
            assert_eq!(
                claims.check(id(&b), "urn:iicp:intent:llm:embedding:v1", NOW_S),
                Ok(()),
                "a wildcard token covers any intent"
            );
        }
    }
}

#[tokio::test]
async fn the_configured_issuer_is_written_to_iss() {
    let h = Harness::start(DirectoryConfig {
        issuer: "http://127.0.0.1:8020".into(),
        ..config()
    })
    .await;
    let (a, b) = two_nodes(&h).await;
    let body = json!({"target_node_id": id(&b), "intent": CHAT}).to_string();
    let (status, resp) = request_token(&h, &h.base, Some(node_token(&a)), None, &body).await;
    assert_eq!(status, 201, "{resp}");
    let claims = h
        .dir
        .public_key()
        .unwrap()
        .verify_consumer_token(resp["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.iss, "http://127.0.0.1:8020");
}

#[tokio::test]
async fn callers_without_a_valid_node_token_for_that_node_get_401() {
    let h = Harness::start(config()).await;
    let (a, b) = two_nodes(&h).await;
    let good = json!({"target_node_id": id(&b), "intent": CHAT}).to_string();
    let wrong = "00".repeat(32);
    let proxy = a["proxy_token"]
        .as_str()
        .expect("the ACK has a proxy token");
    let cases: [(&str, Option<&str>, Option<&str>, &str); 7] = [
        ("no bearer", None, None, &good),
        ("no bearer, X-Node-Id only", None, Some(id(&a)), &good),
        ("unknown token", Some(&wrong), None, &good),
        (
            "unknown token with X-Node-Id",
            Some(&wrong),
            Some(id(&a)),
            &good,
        ),
        (
            "X-Node-Id of another node",
            Some(node_token(&a)),
            Some(id(&b)),
            &good,
        ),
        (
            "X-Node-Id unknown",
            Some(node_token(&a)),
            Some("nobody"),
            &good,
        ),
        (
            "a proxy token is not a node token",
            Some(proxy),
            None,
            &good,
        ),
    ];
    for (what, bearer, node_id, body) in cases {
        let (status, resp) = request_token(&h, &h.base, bearer, node_id, body).await;
        assert_eq!(status, 401, "{what}: {resp}");
        assert_eq!(resp["error"]["code"], "unauthorized", "{what}");
        assert!(resp.get("token").is_none(), "{what}");
    }
    // Authentication comes before the body is read.
    let (status, resp) = request_token(&h, &h.base, None, None, "{not json").await;
    assert_eq!(status, 401, "{resp}");
    let (status, resp) = request_token(&h, &h.base, Some(&wrong), None, "{}").await;
    assert_eq!(status, 401, "{resp}");
}

#[tokio::test]
async fn a_rotated_node_token_stops_getting_tokens() {
    let h = Harness::start(config()).await;
    let (a, b) = two_nodes(&h).await;
    let mut again = registration("http://10.0.0.1:9484", &["m"]);
    again["node_id"] = a["node_id"].clone();
    again["current_node_token"] = a["node_token"].clone();
    let rotated = h.register(&again).await;
    let body = json!({"target_node_id": id(&b), "intent": CHAT}).to_string();
    let (status, _) = request_token(&h, &h.base, Some(node_token(&a)), None, &body).await;
    assert_eq!(status, 401, "the old token no longer identifies the node");
    let (status, resp) =
        request_token(&h, &h.base, Some(node_token(&rotated)), Some(id(&a)), &body).await;
    assert_eq!(status, 201, "{resp}");
}

#[tokio::test]
async fn an_unknown_target_is_404() {
    let h = Harness::start(config()).await;
    let (a, _) = two_nodes(&h).await;
    let body = json!({"target_node_id": "no-such-node", "intent": CHAT}).to_string();
    let (status, resp) =
        request_token(&h, &h.base, Some(node_token(&a)), Some(id(&a)), &body).await;
    assert_eq!(status, 404, "{resp}");
    assert_eq!(resp["error"]["code"], "not_found");
}

#[tokio::test]
async fn invalid_bodies_are_422_validation_errors() {
    let h = Harness::start(config()).await;
    let (a, b) = two_nodes(&h).await;
    let target = id(&b);
    let cases = [
        (
            "missing target_node_id",
            json!({"intent": CHAT}).to_string(),
        ),
        (
            "missing intent",
            json!({"target_node_id": target}).to_string(),
        ),
        (
            "empty target_node_id",
            json!({"target_node_id": "", "intent": CHAT}).to_string(),
        ),
        (
            "target_node_id not a string",
            json!({"target_node_id": 7, "intent": CHAT}).to_string(),
        ),
        (
            "intent not a URN",
            json!({"target_node_id": target, "intent": "llm:chat"}).to_string(),
        ),
        (
            "intent with a modifier",
            json!({"target_node_id": target, "intent": "urn:iicp:intent:llm:chat:v1+fast"})
                .to_string(),
        ),
        (
            "empty intent",
            json!({"target_node_id": target, "intent": ""}).to_string(),
        ),
        ("malformed JSON", "{\"target_node_id\": ".to_owned()),
        ("not an object", json!([target, CHAT]).to_string()),
    ];
    for (what, body) in cases {
        let (status, resp) =
            request_token(&h, &h.base, Some(node_token(&a)), Some(id(&a)), &body).await;
        assert_eq!(status, 422, "{what}: {resp}");
        assert_eq!(resp["error"]["code"], "validation_error", "{what}");
    }
}

#[tokio::test]
async fn without_a_signing_key_both_routes_are_503_not_configured() {
    let h = Harness::start(DirectoryConfig {
        signing_key: None,
        ..config()
    })
    .await;
    assert!(h.dir.public_key().is_none());
    let (a, b) = two_nodes(&h).await;
    let body = json!({"target_node_id": id(&b), "intent": CHAT}).to_string();
    for base in [h.base.clone(), bare(&h)] {
        let (status, resp) = served_key(&h, &base).await;
        assert_eq!(status, 503, "{base}: {resp}");
        assert_eq!(resp["error"]["code"], "not_configured");
        let (status, resp) =
            request_token(&h, &base, Some(node_token(&a)), Some(id(&a)), &body).await;
        assert_eq!(status, 503, "{base}: {resp}");
        assert_eq!(resp["error"]["code"], "not_configured");
    }
}

async fn request_ticket(h: &Harness, bearer: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = h
        .http
        .post(format!("{}/v1/relay/ticket", h.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    common::read(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_registered_node_gets_single_use_relay_tickets() {
    let h = Harness::start(config()).await;
    let (a, b) = two_nodes(&h).await;
    let key = DirectoryPublicKey::from_hex(&h.dir.public_key().unwrap().to_hex()).unwrap();
    let mut jtis = std::collections::HashSet::new();
    for (body, aud) in [
        ("", "*"),
        ("{}", "*"),
        (r#"{"relay_node_id":null}"#, "*"),
        (&*json!({"relay_node_id": id(&b)}).to_string(), id(&b)),
    ] {
        let (status, resp) = request_ticket(&h, Some(node_token(&a)), body).await;
        assert_eq!(status, 201, "{body}: {resp}");
        assert_eq!(resp["worker_node_id"], id(&a));
        assert_eq!(resp["relay_node_id"], aud);
        assert_eq!(resp["algorithm"], "ed25519");
        assert_eq!(resp["expires_at"], NOW_S + 120);
        let claims = key
            .verify_relay_ticket(resp["ticket"].as_str().unwrap())
            .unwrap();
        assert_eq!((claims.sub.as_str(), claims.aud.as_str()), (id(&a), aud));
        assert_eq!(claims.iat, NOW_S);
        assert_eq!(claims.check(id(&a), id(&b), NOW_S), Ok(()));
        assert!(jtis.insert(claims.jti), "every ticket has its own jti");
        // Not a consumer token.
        assert!(
            key.verify_consumer_token(resp["ticket"].as_str().unwrap())
                .is_err()
        );
    }
}

#[tokio::test]
async fn relay_tickets_need_a_node_token_and_a_sane_body() {
    let h = Harness::start(config()).await;
    let (a, _) = two_nodes(&h).await;
    for (bearer, body, status, code) in [
        (None, "{}", 401, "unauthorized"),
        (Some("not-a-token"), "{}", 401, "unauthorized"),
        (Some(node_token(&a)), "{", 422, "validation_error"),
        (Some(node_token(&a)), "[]", 422, "validation_error"),
        (
            Some(node_token(&a)),
            r#"{"relay_node_id":7}"#,
            422,
            "validation_error",
        ),
        (
            Some(node_token(&a)),
            r#"{"relay_node_id":""}"#,
            422,
            "validation_error",
        ),
    ] {
        let (got, resp) = request_ticket(&h, bearer, body).await;
        assert_eq!(got, status, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], code, "{body}: {resp}");
        assert!(!resp.to_string().contains(node_token(&a)));
    }
    let h = Harness::start(DirectoryConfig {
        signing_key: None,
        ..config()
    })
    .await;
    let (a, _) = two_nodes(&h).await;
    let (status, resp) = request_ticket(&h, Some(node_token(&a)), "{}").await;
    assert_eq!(status, 503, "{resp}");
    assert_eq!(resp["error"]["code"], "not_configured");
}
