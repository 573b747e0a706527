//! Bad registrations get the right status and a JSON error, and nothing
//! panics; plus the implementation-metadata vectors.

mod common;

use common::{CHAT, Harness, registration};
use iicp_client::directory::DirectoryConfig;
use serde_json::{Value, json};

fn vectors(name: &str) -> Value {
    let path = format!("{}/../shared/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
}

async fn expect(h: &Harness, body: &Value, status: u16, code: &str) -> Value {
    let (got, resp) = h.post("/v1/register", body, None).await;
    assert_eq!(got, status, "{body} -> {resp}");
    let got_code = resp["error"]["code"].as_str().or(resp["error"].as_str());
    assert_eq!(got_code, Some(code), "{resp}");
    resp
}

#[tokio::test]
async fn malformed_and_incomplete_bodies() {
    let h = Harness::without_probe().await;
    let resp = h
        .http
        .post(h.url("/v1/register"))
        .header("content-type", "application/json")
        .body("{\"endpoint\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = common::read(resp).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_error"))
    );

    let resp = h
        .http
        .post(h.url("/v1/register"))
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(common::read(resp).await.0, 400);

    let missing = expect(
        &h,
        &json!({"endpoint": "http://10.0.0.1:1"}),
        422,
        "validation_error",
    )
    .await;
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("capabilities")
    );
    expect(&h, &json!([1, 2]), 422, "validation_error").await;
    expect(
        &h,
        &json!({"endpoint": 5, "capabilities": []}),
        422,
        "validation_error",
    )
    .await;
}

#[tokio::test]
async fn secrets_are_not_echoed_in_errors() {
    let h = Harness::without_probe().await;
    let mut body = registration("http://10.0.0.1:1", &["m"]);
    body["current_node_token"] = json!(987654321012345u64);
    let resp = expect(&h, &body, 422, "validation_error").await;
    assert!(!resp.to_string().contains("987654321012345"), "{resp}");
}

#[tokio::test]
async fn field_rules_of_register() {
    let h = Harness::without_probe().await;
    let base = registration("http://10.0.0.1:9484", &["m"]);
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cap = |c: Value| json!({"capabilities": [c]});
    for (patch, code) in [
        (json!({"capabilities": []}), "validation_error"),
        (
            cap(json!({"intent": "urn:iicp:intent:Chat:v1"})),
            "validation_error",
        ),
        (
            cap(json!({"intent": "urn:iicp:intent:llm:chat:v1+fast"})),
            "validation_error",
        ),
        (
            cap(json!({"intent": "urn:iicp:intent:social-scoring:rank:v1"})),
            "IICP-POLICY-001",
        ),
        (
            cap(json!({"intent": CHAT, "max_tokens": 0})),
            "validation_error",
        ),
        (
            cap(json!({"intent": CHAT, "input_modalities": ["smell"]})),
            "validation_error",
        ),
        (
            cap(json!({"intent": CHAT, "models": ["a", "a"]})),
            "validation_error",
        ),
        (
            cap(json!({"intent": CHAT, "supported_profiles": ["x"]})),
            "validation_error",
        ),
        (
            cap(json!({"intent": CHAT, "limits": {"ctx": {"value": 1, "unit": "parsecs"}}})),
            "validation_error",
        ),
        (
            json!({"capabilities": [{"intent": CHAT}, {"intent": CHAT}]}),
            "validation_error",
        ),
        (
            json!({"capabilities": [{"intent": CHAT, "variant_id": "a", "models": ["x"]},
                                     {"intent": CHAT, "variant_id": "a", "models": ["y"]}]}),
            "validation_error",
        ),
        (json!({"endpoint": "ftp://10.0.0.1/x"}), "IICP-E035"),
        (json!({"endpoint": "not a url"}), "validation_error"),
        (
            json!({"limits": {"max_concurrent": 0, "tokens_per_min": 1}}),
            "validation_error",
        ),
        (
            json!({"limits": {"max_concurrent": 257, "tokens_per_min": 1}}),
            "validation_error",
        ),
        (json!({"node_id": "-starts-with-dash"}), "validation_error"),
        (json!({"node_id": "x".repeat(37)}), "validation_error"),
        (json!({"exposure_mode": "teleport"}), "validation_error"),
        (json!({"backend": "skynet"}), "validation_error"),
        (
            json!({"transport_endpoint": "http://x:1"}),
            "validation_error",
        ),
        (
            json!({"pricing": {"credit_cost_multiplier": 5000}}),
            "validation_error",
        ),
        (
            json!({"supported_receipt_profiles": ["other"]}),
            "validation_error",
        ),
    ] {
        expect(&h, &with(patch), 422, code).await;
    }
    // One intent in two modality groups is two capabilities, not a duplicate.
    h.register(&with(json!({"capabilities": [
        {"intent": CHAT, "models": ["llama3"], "input_modalities": ["text"]},
        {"intent": CHAT, "models": ["llava"], "input_modalities": ["text", "image"]}
    ]})))
    .await;
    // Unknown fields are ignored, custom intents and slash actions accepted.
    let ok = with(json!({
        "capabilities": [
            {"intent": "urn:iicp:intent:x.acme:summarize:v1", "input_modalities": ["text", "image"]},
            {"intent": "urn:iicp:intent:mcp:tools/call:v1"}
        ],
        "sdk_update_last_result": null, "policy": {"anything": true}
    }));
    h.register(&ok).await;
}

#[tokio::test]
async fn implementation_metadata_vectors() {
    let h = Harness::without_probe().await;
    let v = vectors("directory-implementation-metadata-v1.json");
    for case in v["cases"].as_array().unwrap() {
        let mut body = registration("http://10.0.0.1:9484", &["m"]);
        for (k, val) in case["input"].as_object().unwrap() {
            body[k] = val.clone();
        }
        let (status, resp) = h.post("/v1/register", &body, None).await;
        let name = case["name"].as_str().unwrap();
        if case["accepted"].as_bool().unwrap() {
            assert_eq!(status, 201, "{name}: {resp}");
            let id = resp["node_id"].as_str().unwrap();
            let (_, node) = h.get(&format!("/v1/node/{id}")).await;
            assert_eq!(
                node["sdk_compatibility_version"], case["effective_sdk_compatibility_version"],
                "{name}"
            );
        } else {
            assert_eq!(
                status,
                case["status"].as_u64().unwrap() as u16,
                "{name}: {resp}"
            );
            assert_eq!(resp["error"]["code"], "validation_error", "{name}");
        }
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_json() {
    let h = Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        max_body_bytes: 1024,
        ..DirectoryConfig::default()
    })
    .await;
    let mut body = registration("http://10.0.0.1:9484", &["m"]);
    body["padding"] = json!("x".repeat(4096));
    let (status, resp) = h.post("/v1/register", &body, None).await;
    assert_eq!(status, 413);
    assert_eq!(resp["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn public_mode_refuses_non_routable_endpoints() {
    let h = Harness::start(DirectoryConfig {
        local_mode: false,
        skip_liveness_check: true,
        ..DirectoryConfig::default()
    })
    .await;
    // Every refused literal and name of endpoint-security-v1's
    // `address_vectors` and `hostname_vectors` (and a few more); the mixed
    // answer and the rebinding vectors need a DNS server: tests/ssrf_rebinding.rs.
    for endpoint in [
        "http://127.0.0.1:9484",
        "http://10.0.0.5:9484",
        "http://[::1]:9484",
        "http://[fd00::1]:9484",
        "http://[fe80::1]:9484",
        "http://169.254.169.254",
        "http://100.64.0.1:9484",
        "http://192.0.2.10:9484",
        "http://[::ffff:127.0.0.1]:9484",
        "http://localhost:9484",
        "http://ollama:11434",
        "https://node.internal",
        "https://provider.local",
    ] {
        expect(&h, &registration(endpoint, &["m"]), 422, "IICP-E035").await;
    }
    // The public literals are accepted (no probe here, so nothing is dialled).
    for endpoint in [
        "http://93.184.216.34:9484",
        "http://[2606:2800:220:1:248:1893:25c8:1946]:9484",
    ] {
        let ack = h.register(&registration(endpoint, &["m"])).await;
        assert!(ack["node_id"].is_string(), "{endpoint}: {ack}");
    }
}

/// Every refused registration leaves one warn line with its status, code,
/// source and the endpoint asked for (escaped, so a registrant cannot forge
/// a log line), never a token; a rate-limited source is logged once per
/// window, not once per request of a flood.
#[tokio::test]
async fn refused_registrations_are_logged_with_code_and_endpoint_never_a_token() {
    let (logs, _guard) = common::logs::capture();
    let h = Harness::start(DirectoryConfig {
        require_local_liveness: true,
        register_rate_limit: 4,
        ..DirectoryConfig::default()
    })
    .await;
    let dead = common::dead_endpoint().await;
    let token = "SECRET-node-token-5566";
    let mut bad_field = registration("http://127.0.0.1:9/forged\nregistration accepted", &["m"]);
    bad_field["current_node_token"] = json!(token);
    let mut no_caps = registration("http://127.0.0.1:9484", &["m"]);
    no_caps["capabilities"] = json!([]);
    no_caps["current_node_token"] = json!(token);
    for (body, status, code, endpoint) in [
        (
            &bad_field,
            422,
            "validation_error",
            "forged\\nregistration accepted",
        ),
        (&no_caps, 422, "validation_error", "http://127.0.0.1:9484"),
        (
            &registration(&dead, &["m"]),
            422,
            "IICP-E036",
            dead.as_str(),
        ),
    ] {
        expect(&h, body, status, code).await;
        let text = logs.text();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("registration refused"))
            .unwrap_or_else(|| panic!("no refusal line for {code}: {text}"));
        assert!(
            line.contains(&format!("code=\"{code}\"")) || line.contains(code),
            "{line}"
        );
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("source=127.0.0.1"), "{line}");
        assert!(line.contains(endpoint), "{endpoint} in {line}");
    }
    // The fourth registration is within the limit (and refused for its
    // field); the next ones are over it: one line for the whole window.
    expect(&h, &no_caps, 422, "validation_error").await;
    for _ in 0..5 {
        expect(&h, &no_caps, 429, "IICP-E034").await;
    }
    let text = logs.text();
    assert_eq!(text.matches("IICP-E034").count(), 1, "{text}");
    assert!(!text.contains(token), "a token reached the log: {text}");
    assert!(
        !text.contains("\nregistration accepted"),
        "a registrant forged a log line: {text}"
    );
}
