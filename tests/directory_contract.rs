//! The reference directory's behaviour contract (`behavior-contract-v1.json`):
//! eligibility and ranking cases against our pure functions. The pricing
//! ceiling cases are not covered: their model-size table is not published in
//! PROTOCOL.md (see docs/ARCHITECTURE.md, "Known gaps").

use iicp_client::directory::ranking::{
    EligibilityInput, EligibilityQuery, RankInput, is_eligible, score,
};
use iicp_client::wire::Qos;
use serde_json::Value;

fn contract() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/behavior-contract-v1.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
}

#[test]
fn eligibility_cases() {
    let c = contract();
    let cases = c["eligibility_cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let qos: Option<Qos> = serde_json::from_value(case["qos"].clone()).unwrap();
        let query = EligibilityQuery {
            model: case["model"].as_str(),
            min_reputation: case["min_reputation"].as_f64().unwrap_or(0.0),
            qos,
            enforce_qos_gates: true,
        };
        let mut kept = vec![];
        for cand in case["candidates"].as_array().unwrap() {
            let models = strings(&cand["models"]).unwrap_or_default();
            let health = strings(&cand["health_models"]);
            let node = EligibilityInput {
                live: true,
                reputation: cand["reputation"].as_f64().unwrap(),
                completed_tasks: cand["tasks"].as_u64().unwrap(),
                health_models: health.as_deref(),
                models: &models,
                backend_state: cand["backend_state"].as_str(),
            };
            if is_eligible(&node, &query) {
                kept.push(cand["id"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(
            Some(kept),
            strings(&case["expected_ids"]),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn ranking_cases() {
    let c = contract();
    let cases = c["ranking_cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let n = &case["node"];
        let models = strings(&n["models"]).unwrap();
        let input = RankInput {
            available: true,
            load: n["load"].as_f64().unwrap(),
            active_jobs: n["active_jobs"].as_u64().unwrap() as u32,
            max_concurrent: n["max_concurrent"].as_u64().unwrap() as u32,
            region: n["region"].as_str().unwrap(),
            models: &models,
            reputation: n["reputation"].as_f64(),
            price: n["pricing"].as_f64(),
            has_cx_key: n["cx_key"].as_bool().unwrap(),
            sdk_current: n["sdk_current"].as_bool().unwrap(),
        };
        let got = score(
            &input,
            case["requested_model"].as_str(),
            case["requested_region"].as_str(),
        );
        let want = case["expected"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-9,
            "{}: got {got}, want {want}",
            case["name"]
        );
    }
}
