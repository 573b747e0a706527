//! IICP-CX known-answer tests: `tests/vectors/cx-v1.json` was computed by an
//! independent implementation (`scripts/cx_vectors.py`, Python
//! `cryptography`) from fixed keys and nonces. Our sealing must reproduce it
//! byte for byte, our opening must read it, and every tampered field must be
//! refused with the right error.

use iicp_client::cx::{
    self, CxError, CxKeyPair, IicpConf, IicpConfResp, open_response, seal_request_with,
    seal_response_with,
};
use serde_json::Value;

fn vectors() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/cx-v1.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn hex12(v: &Value) -> [u8; 12] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

struct Case {
    node: CxKeyPair,
    task_id: String,
    intent: String,
    payload: Vec<u8>,
    conf: IicpConf,
    resp: IicpConfResp,
    body: Vec<u8>,
}

fn case() -> Case {
    let v = vectors();
    Case {
        node: CxKeyPair::from_secret_bytes(hex32(&v["node_secret_hex"])),
        task_id: v["task_id"].as_str().unwrap().into(),
        intent: v["intent"].as_str().unwrap().into(),
        payload: v["payload_utf8"].as_str().unwrap().as_bytes().to_vec(),
        conf: serde_json::from_value(v["request"]["iicp_conf"].clone()).unwrap(),
        resp: serde_json::from_value(v["response"]["iicp_conf_resp"].clone()).unwrap(),
        body: v["response"]["body_utf8"]
            .as_str()
            .unwrap()
            .as_bytes()
            .to_vec(),
    }
}

#[test]
fn sealing_reproduces_the_independent_vectors() {
    let v = vectors();
    let c = case();
    let advertised = c.node.advertised();
    assert_eq!(advertised.key, v["node_public_b64url"].as_str().unwrap());
    assert_eq!(advertised.key_id, v["node_key_id"].as_str().unwrap());
    assert_eq!(advertised.algorithm, "X25519");
    assert_eq!(advertised.features, vec!["response_encryption_v1"]);

    let (conf, ss) = seal_request_with(
        &c.node.public_bytes(),
        &c.task_id,
        &c.intent,
        &c.payload,
        hex32(&v["ephemeral_secret_hex"]),
        hex12(&v["request"]["nonce_hex"]),
    );
    assert_eq!(conf, c.conf, "request envelope, byte for byte");
    let resp = seal_response_with(&ss, &c.task_id, &c.body, hex12(&v["response"]["nonce_hex"]));
    assert_eq!(resp, c.resp, "response envelope, byte for byte");
}

#[test]
fn opening_reads_the_independent_vectors_both_ways() {
    let c = case();
    let (plain, ss) = c.node.open_request(&c.conf, &c.task_id, &c.intent).unwrap();
    assert_eq!(plain, c.payload);
    assert_eq!(open_response(&ss, &c.task_id, &c.resp).unwrap(), c.body);
    // Fresh randomness round-trips too, and differs every time.
    let (a, ss_a) = cx::seal_request(&c.node.public_bytes(), &c.task_id, &c.intent, b"{}");
    let (b, _) = cx::seal_request(&c.node.public_bytes(), &c.task_id, &c.intent, b"{}");
    assert_ne!(a.encrypted_body, b.encrypted_body);
    let (plain, ss_node) = c.node.open_request(&a, &c.task_id, &c.intent).unwrap();
    assert_eq!(plain, b"{}");
    let r = cx::seal_response(&ss_node, &c.task_id, b"[1]");
    assert_eq!(open_response(&ss_a, &c.task_id, &r).unwrap(), b"[1]");
}

/// Flips one base64url character (to another valid one).
fn flip(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn every_tampered_request_field_is_refused() {
    let c = case();
    let open = |conf: &IicpConf| c.node.open_request(conf, &c.task_id, &c.intent).map(|_| ());
    let mut t = c.conf.clone();
    t.encrypted_body = flip(&t.encrypted_body);
    assert_eq!(open(&t), Err(CxError::Decrypt));
    let mut t = c.conf.clone();
    t.nonce = flip(&t.nonce);
    assert_eq!(open(&t), Err(CxError::Decrypt));
    let mut t = c.conf.clone();
    t.kem_ciphertext = flip(&t.kem_ciphertext);
    assert_eq!(open(&t), Err(CxError::Decrypt));
    let mut t = c.conf.clone();
    t.recipient_key_id = "cx-0000000000000000".into();
    assert!(matches!(open(&t), Err(CxError::UnknownKeyId(_))));
    let mut t = c.conf.clone();
    t.version = 2;
    assert_eq!(open(&t), Err(CxError::Version(2)));
    let mut t = c.conf.clone();
    t.nonce = "short".into();
    assert_eq!(open(&t), Err(CxError::Field("nonce")));
    let mut t = c.conf.clone();
    t.encrypted_body = "not base64!".into();
    assert_eq!(open(&t), Err(CxError::Field("encrypted_body")));
    // The AAD binds task and intent: another task id or intent is refused.
    assert_eq!(
        c.node
            .open_request(&c.conf, "another-task", &c.intent)
            .map(|_| ()),
        Err(CxError::AadMismatch)
    );
    assert_eq!(
        c.node
            .open_request(&c.conf, &c.task_id, "urn:iicp:intent:llm:completion:v1")
            .map(|_| ()),
        Err(CxError::AadMismatch)
    );
    // Another node's key cannot open it.
    let other = CxKeyPair::from_secret_bytes([9u8; 32]);
    let mut t = c.conf.clone();
    t.recipient_key_id = other.key_id();
    assert_eq!(
        other.open_request(&t, &c.task_id, &c.intent).map(|_| ()),
        Err(CxError::Decrypt)
    );
    assert_eq!(CxError::Decrypt.code(), "IICP-CX-02");
    assert!(
        !format!("{:?}", c.node).contains(&hex::encode(c.node.secret_bytes())),
        "Debug hides the secret"
    );
}

#[test]
fn every_tampered_response_field_is_refused() {
    let c = case();
    let (_, ss) = c.node.open_request(&c.conf, &c.task_id, &c.intent).unwrap();
    let mut t = c.resp.clone();
    t.encrypted_body = flip(&t.encrypted_body);
    assert_eq!(open_response(&ss, &c.task_id, &t), Err(CxError::Decrypt));
    let mut t = c.resp.clone();
    t.nonce = flip(&t.nonce);
    assert_eq!(open_response(&ss, &c.task_id, &t), Err(CxError::Decrypt));
    assert_eq!(
        open_response(&ss, "another-task", &c.resp),
        Err(CxError::Decrypt),
        "task id is bound"
    );
    let mut t = c.resp.clone();
    t.version = 0;
    assert_eq!(open_response(&ss, &c.task_id, &t), Err(CxError::Version(0)));
}
