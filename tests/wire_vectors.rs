//! Drives the wire layer (`iicp_client::wire`) with the shared IICP test
//! vectors in `../shared/vectors/` (see `SOURCES.md` there for their origin).
//!
//! Lists of required keys, patterns and bounds are read from the vector files
//! themselves, so a change in a vector shows up here instead of being masked by
//! a hard-coded copy.

use iicp_client::Secret;
use iicp_client::wire::endpoint::{check_endpoint_form, check_resolved, classify_ip};
use iicp_client::wire::intent::LLM_CHAT_V1;
use iicp_client::wire::policy::{POLICY_CODE, RiskCategory, classify_intent};
use iicp_client::wire::{Capability, ParsedError};
use iicp_client::wire::{
    ChatChoice, ChatCompletion, ChatCompletionMessage, ChatMessage, ChatUsage, CxPublicKey,
    ErrorBody, IntentError, IntentUrn, NodeInfo, NodeList, Qos, TaskAuth, TaskConstraints,
    TaskRequest, TaskResponse, TaskStatus, check_intent_policy, parse_error_body,
};
use regex::Regex;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/");

fn vector_bytes(name: &str) -> Vec<u8> {
    let path = format!("{VECTORS}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn vector(name: &str) -> Value {
    serde_json::from_slice(&vector_bytes(name)).unwrap_or_else(|e| panic!("parsing {name}: {e}"))
}

/// The value at a JSON pointer, or a panic naming it.
fn at<'a>(doc: &'a Value, pointer: &str) -> &'a Value {
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("vector has no {pointer}"))
}

/// The non-empty `required` list of the schema object at `pointer`.
fn required(schema: &Value, pointer: &str) -> Vec<String> {
    let list: Vec<String> = at(schema, &format!("{pointer}/required"))
        .as_array()
        .unwrap_or_else(|| panic!("{pointer}/required is not an array"))
        .iter()
        .map(|v| v.as_str().expect("required entries are strings").to_owned())
        .collect();
    assert!(!list.is_empty(), "{pointer}/required is empty");
    list
}

fn assert_has_keys(obj: &Value, keys: &[String], what: &str) {
    let map = obj
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {obj}"));
    for key in keys {
        assert!(
            map.contains_key(key),
            "{what} lacks required key `{key}`: {obj}"
        );
    }
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

fn ips(v: &Value) -> Vec<IpAddr> {
    str_list(v)
        .iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("{s} is not an IP: {e}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1. intents.json and the registry pattern
// ---------------------------------------------------------------------------

fn registry_urns() -> Vec<String> {
    let doc = vector("intents.json");
    at(&doc, "/intents")
        .as_array()
        .expect("intents array")
        .iter()
        .map(|i| at(i, "/urn").as_str().expect("urn string").to_owned())
        .collect()
}

fn registry_pattern() -> Regex {
    let schema = vector("intent-registry-v1.4.json");
    let pattern = at(&schema, "/properties/intents/items/properties/urn/pattern")
        .as_str()
        .expect("pattern string");
    Regex::new(pattern).expect("registry pattern compiles")
}

#[test]
fn registry_intents_parse_and_match_the_registry_pattern() {
    let urns = registry_urns();
    assert_eq!(urns.len(), 17, "intents.json registers 17 intents");
    let pattern = registry_pattern();
    for urn in &urns {
        assert!(pattern.is_match(urn), "registry pattern rejects {urn}");
        let parsed = IntentUrn::parse(urn).unwrap_or_else(|e| panic!("{urn}: {e}"));
        assert_eq!(parsed.as_str(), urn);
        assert_eq!(parsed.to_string(), *urn);
        assert!(
            !parsed.is_custom(),
            "{urn} is a registered, not custom, intent"
        );
        // the serde path validates the same way
        let via_serde: IntentUrn = serde_json::from_value(json!(urn)).unwrap();
        assert_eq!(via_serde, parsed);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), json!(urn));
    }
    assert!(urns.iter().any(|u| u == LLM_CHAT_V1));
}

#[test]
fn strings_the_registry_pattern_rejects_are_rejected_by_the_parser() {
    let pattern = registry_pattern();
    for bad in [
        "",
        "URN:iicp:intent:llm:chat:v1",
        "urn:iicp:intent:LLM:chat:v1",
        "urn:iicp:intent:llm:Chat:v1",
        "urn:iicp:intent:llm:chat",
        "urn:iicp:intent:llm:chat:v0",
        "urn:iicp:intent:llm:chat:v01",
        "urn:iicp:intent:llm:chat:V1",
        "urn:iicp:intent:llm:chat:1",
        "urn:openai:gpt4",
        "urn:iicp:intent:llm chat:v1",
        "urn:iicp:intent::v1",
        "urn:iicp:intent:llm::chat:v1",
        "urn:iicp:intent:llm/x:chat:v1",
        "urn:iicp:intent:llm:chat:v1\n",
        " urn:iicp:intent:llm:chat:v1",
        "urn:iicp:intent:llm:chät:v1",
        "urn:iicp:capability:llm:chat:v1",
    ] {
        assert!(!pattern.is_match(bad), "registry pattern accepts {bad:?}");
        assert!(
            IntentUrn::parse(bad).is_err(),
            "parser accepts {bad:?} which the registry rejects"
        );
        assert!(serde_json::from_value::<IntentUrn>(json!(bad)).is_err());
    }
}

#[test]
fn modifier_forms_are_rejected() {
    let pattern = registry_pattern();
    for urn in registry_urns() {
        let (head, version) = urn.rsplit_once(':').unwrap();
        for modified in [
            format!("{urn}+stream"),
            format!("{urn}+json"),
            format!("{head}+fast:{version}"),
        ] {
            assert!(!pattern.is_match(&modified), "{modified}");
            assert!(
                matches!(IntentUrn::parse(&modified), Err(IntentError::Modifier(_))),
                "{modified} should be refused as a modifier form, got {:?}",
                IntentUrn::parse(&modified)
            );
        }
    }
}

#[test]
fn parser_agrees_with_the_registry_pattern_on_mutated_urns() {
    let pattern = registry_pattern();
    let mut accepted = 0;
    let mut rejected = 0;
    for urn in registry_urns() {
        let body = urn.strip_prefix("urn:iicp:intent:").unwrap();
        let (head, version) = urn.rsplit_once(':').unwrap();
        let mutations = [
            urn.to_uppercase(),
            format!("urn:iicp:intent::{body}"),
            format!("urn:iicp:intent:x.acme:{body}"),
            format!("urn:iicp:intent:{}", body.replacen(':', "::", 1)),
            format!("urn:iicp:intent:{}", body.replacen(':', "/", 1)),
            format!("urn:iicp:intent:{}", body.replacen(':', ".", 1)),
            format!("{head}:v0"),
            format!("{head}:v"),
            format!("{head}:v12"),
            format!("{head}:{}", version.to_uppercase()),
            format!("{head}:sub/path:{version}"),
            format!("{head}:x_y-z.w:{version}"),
            head.to_owned(),
            format!("{urn}:v2"),
            format!("{urn}/"),
            format!("{urn} "),
            format!("{urn}\n"),
            format!("\t{urn}"),
            urn.replace("intent", "intents"),
        ];
        for m in mutations {
            let by_registry = pattern.is_match(&m);
            let by_parser = IntentUrn::parse(&m).is_ok();
            assert_eq!(
                by_parser, by_registry,
                "{m:?}: parser says {by_parser}, registry pattern says {by_registry}"
            );
            if by_registry {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
    }
    // both sides of the grammar are exercised
    assert!(accepted > 17 && rejected > 17, "{accepted}/{rejected}");
}

#[test]
fn custom_vendor_intents_are_accepted_by_both() {
    let pattern = registry_pattern();
    for custom in [
        "urn:iicp:intent:x.acme:summarize:v2",
        "urn:iicp:intent:x.acme-labs.eu:tools/run:v10",
    ] {
        assert!(pattern.is_match(custom));
        assert!(IntentUrn::parse(custom).unwrap().is_custom());
    }
}

#[test]
fn registered_intents_are_not_refused_by_the_public_mesh_policy() {
    for urn in registry_urns() {
        assert_eq!(check_intent_policy(&urn), Ok(()), "{urn}");
    }
}

// ---------------------------------------------------------------------------
// 2. intent-risk-taxonomy.json and the policy guard
// ---------------------------------------------------------------------------

#[test]
fn embedded_taxonomy_is_byte_identical_to_the_vector() {
    let embedded = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/wire/intent-risk-taxonomy.json"
    ))
    .expect("embedded taxonomy");
    let vector = vector_bytes("intent-risk-taxonomy.json");
    assert!(
        embedded == vector,
        "src/wire/intent-risk-taxonomy.json differs from the vector ({} vs {} bytes)",
        embedded.len(),
        vector.len()
    );
}

struct Rule {
    category: String,
    rule_id: String,
    label: String,
    fragments: Vec<String>,
}

fn taxonomy_rules() -> Vec<Rule> {
    let doc = vector("intent-risk-taxonomy.json");
    let rules: Vec<Rule> = at(&doc, "/rules")
        .as_array()
        .expect("rules array")
        .iter()
        .map(|r| Rule {
            category: at(r, "/category").as_str().unwrap().to_owned(),
            rule_id: at(r, "/rule_id").as_str().unwrap().to_owned(),
            label: at(r, "/label").as_str().unwrap().to_owned(),
            fragments: str_list(at(r, "/fragments")),
        })
        .collect();
    assert!(!rules.is_empty());
    rules
}

/// Whether the public-mesh default refuses a category, read from the file's
/// `public_mesh_default` (`refuse…` vs `allow…`).
fn category_is_refused(category: &str) -> bool {
    let doc = vector("intent-risk-taxonomy.json");
    let action = at(&doc, &format!("/public_mesh_default/{category}"))
        .as_str()
        .unwrap();
    let refused = action.starts_with("refuse");
    // cross-check against the brief: prohibited and high_risk are refused,
    // transparency_risk and minimal_or_general allowed
    let expected = match category {
        "prohibited" | "high_risk" => true,
        "transparency_risk" | "minimal_or_general" => false,
        other => panic!("unknown taxonomy category {other}"),
    };
    assert_eq!(refused, expected, "{category}: {action}");
    refused
}

#[test]
fn every_taxonomy_fragment_is_judged_by_its_category() {
    let mut refused_seen = 0;
    let mut allowed_seen = 0;
    for rule in taxonomy_rules() {
        let refused = category_is_refused(&rule.category);
        assert!(!rule.fragments.is_empty(), "{}", rule.rule_id);
        for fragment in &rule.fragments {
            let intent = format!("urn:iicp:intent:{fragment}:x:v1");
            // the probe is itself a well-formed intent, so the guard is
            // exercised on what a client could really send
            IntentUrn::parse(&intent).unwrap_or_else(|e| panic!("{intent}: {e}"));

            let matched = classify_intent(&intent)
                .unwrap_or_else(|| panic!("{intent} matches no taxonomy rule"));
            assert_eq!(matched.rule_id, rule.rule_id, "{intent}");

            let verdict = check_intent_policy(&intent);
            assert_eq!(verdict.is_err(), refused, "{intent}: {verdict:?}");
            if let Err(v) = verdict {
                assert_eq!(v.code(), POLICY_CODE);
                assert_eq!(v.code(), "IICP-POLICY-001");
                assert_eq!(v.rule_id, rule.rule_id);
                assert_eq!(v.label, rule.label);
                assert!(v.category.is_refused());
                let expected = match rule.category.as_str() {
                    "prohibited" => RiskCategory::Prohibited,
                    _ => RiskCategory::HighRisk,
                };
                assert_eq!(v.category, expected);
                refused_seen += 1;
            } else {
                assert_eq!(matched.category, RiskCategory::TransparencyRisk);
                allowed_seen += 1;
            }

            // matching ignores case
            let upper = intent.to_uppercase();
            assert_eq!(check_intent_policy(&upper).is_err(), refused, "{upper}");
        }
    }
    assert!(
        refused_seen > 0 && allowed_seen > 0,
        "{refused_seen}/{allowed_seen}"
    );
}

#[test]
fn a_refused_fragment_wins_over_a_transparency_fragment() {
    let rules = taxonomy_rules();
    let notice: Vec<&String> = rules
        .iter()
        .filter(|r| !category_is_refused(&r.category))
        .flat_map(|r| &r.fragments)
        .collect();
    assert!(!notice.is_empty());
    for rule in rules.iter().filter(|r| category_is_refused(&r.category)) {
        for fragment in &rule.fragments {
            for allowed in &notice {
                for intent in [
                    format!("urn:iicp:intent:{allowed}:{fragment}:v1"),
                    format!("urn:iicp:intent:{fragment}:{allowed}:v1"),
                ] {
                    let v = check_intent_policy(&intent)
                        .expect_err(&format!("{intent} should be refused"));
                    assert_eq!(v.rule_id, rule.rule_id, "{intent}");
                }
            }
        }
    }
}

#[test]
fn llm_chat_is_allowed() {
    assert_eq!(check_intent_policy(LLM_CHAT_V1), Ok(()));
    assert_eq!(check_intent_policy("urn:iicp:intent:llm:chat:v1"), Ok(()));
    assert!(classify_intent(LLM_CHAT_V1).is_none());
}

// ---------------------------------------------------------------------------
// 3. task-valid.json, task-invalid-intent.json, task.json
// ---------------------------------------------------------------------------

#[test]
fn task_valid_parses_and_round_trips() {
    let raw = vector("task-valid.json");
    let task: TaskRequest = serde_json::from_value(raw.clone()).expect("task-valid parses");

    assert_eq!(task.task_id, "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(task.intent, LLM_CHAT_V1);
    let messages: Vec<ChatMessage> =
        serde_json::from_value(task.payload["messages"].clone()).unwrap();
    assert_eq!(messages, vec![ChatMessage::user("Hello")]);

    let constraints = task.constraints.as_ref().expect("constraints");
    assert_eq!(constraints.timeout_ms, Some(5000));
    assert_eq!(constraints.qos, Some(Qos::Interactive));
    assert_eq!(constraints.effective_qos(), Some(Qos::Interactive));

    assert_eq!(
        task.extra.get("trace"),
        Some(&json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})),
        "trace survives in extra"
    );
    assert_eq!(
        task.extra.len(),
        1,
        "only `trace` is unknown: {:?}",
        task.extra
    );

    let auth = task.auth.as_ref().expect("auth");
    assert_eq!(
        auth.node_token.as_ref().map(Secret::expose),
        Some("iicp_tok_example")
    );
    assert!(auth.token.is_none());
    assert!(
        !format!("{task:?}").contains("iicp_tok_example"),
        "Debug must not print the node token"
    );

    // nothing is lost or invented on the way back out
    assert_eq!(serde_json::to_value(&task).unwrap(), raw);
}

#[test]
fn task_invalid_intent_fails_because_of_the_intent() {
    let raw = vector("task-invalid-intent.json");
    let bad_intent = raw["intent"].as_str().unwrap().to_owned();
    let err = serde_json::from_value::<TaskRequest>(raw.clone())
        .expect_err("task-invalid-intent must not parse");
    assert!(
        err.to_string().contains(&bad_intent),
        "error should name the intent: {err}"
    );
    assert!(IntentUrn::parse(&bad_intent).is_err());

    // the intent is the only defect: with a valid one the same body parses
    let mut fixed = raw;
    fixed["intent"] = json!(LLM_CHAT_V1);
    let task: TaskRequest = serde_json::from_value(fixed).expect("fixed body parses");
    assert_eq!(task.intent, LLM_CHAT_V1);
    assert_eq!(
        task.auth.unwrap().node_token.as_ref().map(Secret::expose),
        Some("tok")
    );
}

#[test]
fn task_serialisation_carries_every_schema_required_key() {
    let schema = vector("task.json");
    let top = required(&schema, "");
    let constraints_required = required(&schema, "/properties/constraints");
    let auth_required = required(&schema, "/properties/auth");

    let mut task = TaskRequest::new(
        IntentUrn::parse(LLM_CHAT_V1).unwrap(),
        json!({"messages": [ChatMessage::user("Hello")]}),
    );
    task.task_id = "550e8400-e29b-41d4-a716-446655440000".into();
    task.constraints = Some(TaskConstraints {
        timeout_ms: Some(5000),
        qos: Some(Qos::Interactive),
        ..TaskConstraints::default()
    });
    task.auth = Some(TaskAuth {
        node_token: Some(Secret::new("iicp_tok_example")),
        ..TaskAuth::default()
    });

    let out = serde_json::to_value(&task).unwrap();
    assert_has_keys(&out, &top, "task");
    assert_has_keys(
        &out["constraints"],
        &constraints_required,
        "task.constraints",
    );
    assert_has_keys(&out["auth"], &auth_required, "task.auth");

    // with only schema fields set, nothing outside the schema's properties is
    // emitted (task.json is additionalProperties: false)
    for (pointer, value) in [
        ("/properties", &out),
        ("/properties/constraints/properties", &out["constraints"]),
        ("/properties/auth/properties", &out["auth"]),
    ] {
        let allowed = at(&schema, pointer).as_object().unwrap();
        for key in value.as_object().unwrap().keys() {
            assert!(allowed.contains_key(key), "`{key}` is not in {pointer}");
        }
    }
    assert_eq!(out["auth"]["node_token"], "iicp_tok_example");
    assert_eq!(out["constraints"]["qos"], "interactive");
    assert_eq!(out["intent"], LLM_CHAT_V1);
}

#[test]
fn task_schema_examples_parse_and_round_trip() {
    let schema = vector("task.json");
    let examples = at(&schema, "/examples").as_array().unwrap();
    assert!(!examples.is_empty());
    for example in examples {
        let task: TaskRequest = serde_json::from_value(example.clone()).unwrap();
        assert!(task.extra.contains_key("trace"));
        assert_eq!(serde_json::to_value(&task).unwrap(), *example);
    }
}

// ---------------------------------------------------------------------------
// 4. nodelist.json
// ---------------------------------------------------------------------------

fn sample_node() -> NodeInfo {
    NodeInfo {
        node_id: "550e8400-e29b-41d4-a716-446655440001".into(),
        endpoint: "https://node1.example.com".into(),
        score: 0.91,
        available: true,
        region: "eu-central".into(),
        load: Some(0.25),
        active_jobs: Some(1),
        max_concurrent: Some(4),
        models: vec!["llama3".into()],
        capabilities: vec![Capability::new(
            IntentUrn::parse(LLM_CHAT_V1).unwrap(),
            vec!["llama3".into()],
        )],
        cx_public_key: Some(CxPublicKey {
            algorithm: "X25519".into(),
            encoding: "base64url".into(),
            key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            key_id: "cx-0123456789abcdef".into(),
            features: vec![],
            extra: Map::new(),
        }),
        public_key: None,
        reputation_score: Some(0.9),
        reputation_tier: Some("gold".into()),
        latency_estimate_ms: Some(120),
        transport: vec!["https".into()],
        transport_endpoint: None,
        transport_method: Some("direct".into()),
        transport_metadata: None,
        relay_capable: Some(false),
        reachability_tier: Some("direct".into()),
        health_label: Some("healthy".into()),
        input_modalities: Some(vec!["text".into()]),
        sdk_status: Some("current".into()),
        key_ready: Some(true),
        probation: Some(false),
        backend: Some("ollama".into()),
        pricing: None,
        extra: Map::new(),
    }
}

#[test]
fn nodelist_serialisation_carries_every_schema_required_key() {
    let schema = vector("nodelist.json");
    let top = required(&schema, "");
    let node_required = required(&schema, "/$defs/NodeSummary");
    let key_required = required(&schema, "/$defs/CxPublicKey");
    let cap_required = required(&schema, "/$defs/NodeSummary/properties/capabilities/items");

    let list = NodeList {
        nodes: vec![sample_node()],
        count: 1,
        relay_available: false,
        query_ms: Some(3),
        view: Some("dispatch".into()),
        data_class: Some("route_dispatch".into()),
        route_fields_present: Some(true),
        extra: Map::new(),
    };
    let out = serde_json::to_value(&list).unwrap();
    assert_has_keys(&out, &top, "node list");
    let nodes = out["nodes"].as_array().expect("nodes array");
    assert_eq!(nodes.len(), 1);
    let node = &nodes[0];
    assert_has_keys(node, &node_required, "node");
    assert_has_keys(&node["cx_public_key"], &key_required, "cx_public_key");
    for cap in node["capabilities"].as_array().unwrap() {
        assert_has_keys(cap, &cap_required, "capability");
    }

    let score_schema = at(&schema, "/$defs/NodeSummary/properties/score");
    let min = score_schema["minimum"].as_f64().expect("score minimum");
    let max = score_schema["maximum"].as_f64().expect("score maximum");
    let score = node["score"].as_f64().expect("score is a number");
    assert!(
        (min..=max).contains(&score),
        "{score} outside {min}..={max}"
    );
    assert_eq!(score, 0.91);
    assert_eq!(node["available"], true);
    assert_eq!(out["count"], 1);

    // and it reads back unchanged
    let back: NodeList = serde_json::from_value(out).unwrap();
    assert_eq!(back, list);
}

#[test]
fn nodelist_schema_examples_parse() {
    let schema = vector("nodelist.json");
    let score_schema = at(&schema, "/$defs/NodeSummary/properties/score");
    let (min, max) = (
        score_schema["minimum"].as_f64().unwrap(),
        score_schema["maximum"].as_f64().unwrap(),
    );
    let examples = at(&schema, "/examples").as_array().unwrap();
    assert!(!examples.is_empty());
    for example in examples {
        let list: NodeList = serde_json::from_value(example.clone()).unwrap();
        let raw_nodes = example["nodes"].as_array().unwrap();
        assert_eq!(list.nodes.len(), raw_nodes.len(), "no node is dropped");
        for (node, raw) in list.nodes.iter().zip(raw_nodes) {
            assert_eq!(node.node_id, raw["node_id"].as_str().unwrap());
            assert!((min..=max).contains(&node.score));
            let raw_caps = raw
                .get("capabilities")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            assert_eq!(
                node.capabilities.len(),
                raw_caps,
                "no capability is dropped"
            );
            if let Some(manifest) = raw.get("node_policy_manifest") {
                assert_eq!(node.extra.get("node_policy_manifest"), Some(manifest));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 5. endpoint-security-v1.json
// ---------------------------------------------------------------------------

fn endpoint_vectors(key: &str) -> Vec<Value> {
    let doc = vector("endpoint-security-v1.json");
    let list = at(&doc, &format!("/{key}")).as_array().unwrap().clone();
    assert!(!list.is_empty(), "{key} is empty");
    list
}

#[test]
fn endpoint_address_vectors() {
    for v in endpoint_vectors("address_vectors") {
        let id = v["id"].as_str().unwrap();
        let addrs = ips(&v["addresses"]);
        let allow_private = v["allow_private"].as_bool().unwrap();
        let allowed = v["allowed"].as_bool().unwrap();
        let verdict = check_resolved(&addrs, allow_private);
        assert_eq!(verdict.is_ok(), allowed, "{id}: {verdict:?}");
    }
}

#[test]
fn endpoint_address_vectors_agree_with_literal_endpoint_urls() {
    // A single-address vector without the private override judges the same
    // whether the address comes from DNS or is written into the URL.
    let mut checked = 0;
    for v in endpoint_vectors("address_vectors") {
        let addrs = ips(&v["addresses"]);
        if addrs.len() != 1 || v["allow_private"].as_bool().unwrap() {
            continue;
        }
        let url = match addrs[0] {
            IpAddr::V4(ip) => format!("https://{ip}"),
            IpAddr::V6(ip) => format!("https://[{ip}]"),
        };
        let allowed = v["allowed"].as_bool().unwrap();
        let verdict = check_endpoint_form(&url);
        assert_eq!(verdict.is_ok(), allowed, "{}: {url} {verdict:?}", v["id"]);
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn endpoint_hostname_vectors() {
    for v in endpoint_vectors("hostname_vectors") {
        let host = v["host"].as_str().unwrap();
        let allowed = v["allowed"].as_bool().unwrap();
        let verdict = check_endpoint_form(&format!("https://{host}"));
        assert_eq!(verdict.is_ok(), allowed, "{}: {host} {verdict:?}", v["id"]);
    }
}

#[test]
fn endpoint_resolution_attempt_vectors() {
    for v in endpoint_vectors("resolution_attempt_vectors") {
        let id = v["id"].as_str().unwrap();
        let allow_private = v["allow_private"].as_bool().unwrap();
        let expected = str_list(&v["expected"]);
        let attempts = v["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), expected.len(), "{id}");
        let got: Vec<&str> = attempts
            .iter()
            .map(|a| match check_resolved(&ips(a), allow_private) {
                Ok(()) => "allow",
                Err(_) => "refuse",
            })
            .collect();
        assert_eq!(got, expected, "{id}");
    }
}

// `redirect_vectors` describe how the HTTP client follows redirects (same
// origin 307/308 only, re-resolve and revalidate, at most 3). That is client
// behaviour, not the wire layer: the client's guard runs them
// (`client::guard::tests::redirect_vectors`), and the directory's probe follows
// no redirect (`directory_security::the_probe_follows_no_redirect`). Only their
// presence is checked here so a renamed key is noticed.
#[test]
fn endpoint_redirect_vectors_exist_for_the_client_tests() {
    assert!(!endpoint_vectors("redirect_vectors").is_empty());
}

// ---------------------------------------------------------------------------
// 6. behavior-contract-v1.json endpoint_cases
// ---------------------------------------------------------------------------

#[test]
fn behavior_contract_endpoint_cases() {
    let doc = vector("behavior-contract-v1.json");
    let cases = at(&doc, "/endpoint_cases").as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let ip: IpAddr = case["ip"].as_str().unwrap().parse().unwrap();
        let blocked = case["blocked"].as_bool().unwrap();
        assert_eq!(
            classify_ip(ip).is_some(),
            blocked,
            "{}: {ip} {:?}",
            case["name"],
            classify_ip(ip)
        );
        assert_eq!(check_resolved(&[ip], false).is_err(), blocked, "{ip}");
    }
}

// ---------------------------------------------------------------------------
// 7. llm:chat:v1 payloads and results
// ---------------------------------------------------------------------------

fn payload_cases() -> Vec<Value> {
    let doc = vector("intent-payloads-v1.json");
    let cases = at(&doc, "/cases").as_array().unwrap().clone();
    assert!(!cases.is_empty());
    cases
}

#[test]
fn llm_chat_payload_cases_parse_as_chat_messages() {
    let input_schema = vector("llm-chat-v1-input.json");
    let message_required = required(&input_schema, "/properties/messages/items");
    let roles = str_list(at(
        &input_schema,
        "/properties/messages/items/properties/role/enum",
    ));

    let mut valid_seen = 0;
    let mut invalid_seen = 0;
    for case in payload_cases()
        .into_iter()
        .filter(|c| c["intent"] == LLM_CHAT_V1)
    {
        let id = case["id"].as_str().unwrap();
        let payload = &case["payload"];
        let messages = serde_json::from_value::<Vec<ChatMessage>>(
            payload.get("messages").cloned().unwrap_or(Value::Null),
        );
        if case["valid"].as_bool().unwrap() {
            let messages = messages.unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(!messages.is_empty(), "{id}");
            let out = serde_json::to_value(&messages).unwrap();
            assert_eq!(out, payload["messages"], "{id}: messages round-trip");
            for m in out.as_array().unwrap() {
                assert_has_keys(m, &message_required, id);
                assert!(roles.contains(&m["role"].as_str().unwrap().to_owned()));
            }
            valid_seen += 1;
        } else {
            assert!(messages.is_err(), "{id}: invalid payload read as messages");
            invalid_seen += 1;
        }
    }
    assert!(valid_seen > 0 && invalid_seen > 0);
}

#[test]
fn every_payload_case_wraps_into_a_task_request() {
    for case in payload_cases() {
        let id = case["id"].as_str().unwrap();
        let intent = IntentUrn::parse(case["intent"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(check_intent_policy(intent.as_str()), Ok(()), "{id}");
        let task = TaskRequest::new(intent, case["payload"].clone());
        let out = serde_json::to_value(&task).unwrap();
        assert_eq!(out["payload"], case["payload"], "{id}");
        let back: TaskRequest = serde_json::from_value(out).unwrap();
        assert_eq!(back, task, "{id}");
    }
}

#[test]
fn chat_payload_built_from_our_types_meets_the_input_schema() {
    let schema = vector("llm-chat-v1-input.json");
    let top = required(&schema, "");
    let message_required = required(&schema, "/properties/messages/items");
    let roles = str_list(at(
        &schema,
        "/properties/messages/items/properties/role/enum",
    ));

    let payload = json!({
        "messages": [
            ChatMessage::system("Be brief."),
            ChatMessage::user("What is IICP?"),
            ChatMessage::user(vec![json!({"type": "text", "text": "and CX?"})]),
        ],
        "max_tokens": 64,
    });
    assert_has_keys(&payload, &top, "chat payload");
    let messages = payload["messages"].as_array().unwrap();
    let min_items = at(&schema, "/properties/messages/minItems")
        .as_u64()
        .unwrap();
    assert!(messages.len() as u64 >= min_items);
    for m in messages {
        assert_has_keys(m, &message_required, "chat message");
        assert!(
            roles.contains(&m["role"].as_str().unwrap().to_owned()),
            "{m}"
        );
    }
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": "What is IICP?"})
    );
}

#[test]
fn chat_completion_meets_the_output_schema() {
    let schema = vector("llm-chat-v1-output.json");
    let top = required(&schema, "");
    let choice_required = required(&schema, "/properties/choices/items");

    // an OpenAI-shaped result as backends return it
    let raw = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": "llama3",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "IICP routes tasks by intent."},
            "finish_reason": "stop",
            "logprobs": null
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
        "system_fingerprint": "fp_1"
    });
    let parsed: ChatCompletion = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(
        parsed.choices[0].message.content.to_string(),
        "IICP routes tasks by intent."
    );
    assert_eq!(parsed.usage.as_ref().unwrap().total_tokens, 11);
    let out = serde_json::to_value(&parsed).unwrap();
    assert_eq!(out, raw, "nothing lost on re-serialisation");

    // one built from our types
    let built = ChatCompletion {
        id: "chatcmpl-2".into(),
        object: "chat.completion".into(),
        created: 0,
        model: "llama3".into(),
        choices: vec![ChatChoice {
            index: 0,
            message: ChatCompletionMessage {
                role: "assistant".into(),
                content: "hi".into(),
                extra: Map::new(),
            },
            finish_reason: None,
            extra: Map::new(),
        }],
        usage: Some(ChatUsage::default()),
        extra: Map::new(),
    };
    for value in [out, serde_json::to_value(&built).unwrap()] {
        assert_has_keys(&value, &top, "chat completion");
        for choice in value["choices"].as_array().unwrap() {
            assert_has_keys(choice, &choice_required, "choice");
            assert!(choice["message"].is_object());
            assert!(choice["index"].as_u64().is_some());
            let fr = &choice["finish_reason"];
            assert!(fr.is_string() || fr.is_null(), "finish_reason {fr}");
        }
        assert!(value["usage"].is_object());
    }

    // and it travels as a task result
    let response = TaskResponse {
        task_id: "t".into(),
        status: TaskStatus::Success,
        result: Some(serde_json::to_value(&built).unwrap()),
        error: None,
        metrics: None,
        model_used: Some("llama3".into()),
        generated_by_ai: Some(true),
        iicp_conf_resp: None,
        extra: Map::new(),
    };
    let back: TaskResponse =
        serde_json::from_value(serde_json::to_value(&response).unwrap()).unwrap();
    let result: ChatCompletion = serde_json::from_value(back.result.unwrap()).unwrap();
    assert_eq!(result, built);
}

// ---------------------------------------------------------------------------
// 8. error bodies
// ---------------------------------------------------------------------------

#[test]
fn error_body_nested_shape_round_trips() {
    let body = ErrorBody::new("IICP-E021", "capacity_exceeded")
        .with("retry_after_ms", 2500)
        .with("qos_class", "interactive");
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(
        parse_error_body(&bytes),
        Some(ParsedError {
            code: "IICP-E021".into(),
            message: "capacity_exceeded".into(),
            retry_after_ms: Some(2500),
        })
    );
    let back: ErrorBody = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, body);
    assert_eq!(back.error.extra["qos_class"], "interactive");

    // a slug code without message or retry hint
    let bytes = serde_json::to_vec(&ErrorBody::new("unauthorized", "")).unwrap();
    let parsed = parse_error_body(&bytes).unwrap();
    assert_eq!(parsed.code, "unauthorized");
    assert_eq!(parsed.retry_after_ms, None);

    // retry_after_ms wins over retry_after when both are present
    let parsed = parse_error_body(
        br#"{"error":{"code":"IICP-E021","message":"m","retry_after_ms":750,"retry_after":9}}"#,
    )
    .unwrap();
    assert_eq!(parsed.retry_after_ms, Some(750));
}

#[test]
fn error_body_flat_shape() {
    let parsed = parse_error_body(
        &serde_json::to_vec(&json!({
            "error": "IICP-E034",
            "message": "rate limited",
            "retry_after": 60
        }))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        parsed,
        ParsedError {
            code: "IICP-E034".into(),
            message: "rate limited".into(),
            retry_after_ms: Some(60_000),
        }
    );
    // the flat shape is not the normal form
    assert!(serde_json::from_value::<ErrorBody>(json!({"error": "IICP-E034"})).is_err());
}

#[test]
fn error_body_top_level_shape() {
    let parsed = parse_error_body(br#"{"code":"IICP-E005","message":"overloaded"}"#).unwrap();
    assert_eq!(
        parsed,
        ParsedError {
            code: "IICP-E005".into(),
            message: "overloaded".into(),
            retry_after_ms: None,
        }
    );
    let parsed = parse_error_body(br#"{"code":"IICP-E005","retry_after_ms":100}"#).unwrap();
    assert_eq!(parsed.message, "");
    assert_eq!(parsed.retry_after_ms, Some(100));

    for not_an_error in [&b"<html>502</html>"[..], br#"{"status":"ok"}"#, b"[]", b""] {
        assert_eq!(parse_error_body(not_an_error), None);
    }
}

#[test]
fn error_body_huge_retry_after_does_not_overflow() {
    // A peer's body is untrusted input; reading it must not panic.
    // 18_446_744_073_709_552 s * 1000 exceeds u64::MAX by 385: unchecked, it
    // panics in debug builds and wraps to 384 ms in release builds.
    let body = br#"{"error":"IICP-E034","message":"slow down","retry_after":18446744073709552}"#;
    let parsed = std::panic::catch_unwind(|| parse_error_body(body))
        .expect("parse_error_body panicked on a large retry_after")
        .expect("the body still carries a code");
    assert_eq!(parsed.code, "IICP-E034");
    // saturating (or dropping the hint) is fine; a wrapped small value is not
    assert!(
        parsed
            .retry_after_ms
            .is_none_or(|ms| ms >= 18_446_744_073_709_551),
        "{:?}",
        parsed.retry_after_ms
    );
}
