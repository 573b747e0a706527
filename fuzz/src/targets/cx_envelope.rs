//! `cx_envelope`: IICP-CX envelopes, on both sides.
//!
//! The first input byte picks the side and whether the bytes are the
//! envelope itself or the plaintext an honest peer seals (the fuzzer cannot
//! forge AES-GCM, so the plaintext paths are reached only that way):
//!
//! - 0: the node reads `iicp_conf` (`Pipeline::open`: the object read as
//!   `IicpConf`, opened with the node's key for the task's id and intent);
//! - 1: a client seals the bytes as a task payload
//!   (`seal_request_with`); the node reads the envelope back from its JSON,
//!   opens it, reads the plaintext as JSON (`Pipeline::open`) and seals its
//!   answer (`envelope::success`, `envelope::sealed`); the client opens that
//!   answer with its own copy of the shared secret;
//! - 2: the client reads a node's answer to a sealed request
//!   (`judge_success_body` with the request's `Sealed`): the bytes are the
//!   HTTP body, `iicp_conf_resp` included;
//! - 3: an honest node seals the bytes as its answer envelope; the client
//!   opens the sealed answer and judges the plaintext
//!   (`judge_success_body` → `Sealed::open` → `judge_success_body`).
//!
//! Oracles: what is sealed opens to the same bytes, on either side; a
//! sealed answer is judged exactly as the same envelope in plaintext
//! (same response, or same verdict and error).

use super::{CHAT, NODE_CX, Picks};
use crate::client::judge::judge_success_body;
use crate::client::seal::{Outgoing, Prepared};
use crate::cx::{self, IicpConf, SharedSecret};
use crate::node::envelope;
use crate::wire::{IntentUrn, NodeInfo, TaskRequest};
use serde_json::{Value, json};
use std::sync::LazyLock;

const TASK_ID: &str = "3b0c7a52-9d4e-4f1a-8c2b-6e5d4f3a2b1c";

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => node_reads_conf(rest),
        1 => sealed_round_trip(rest),
        2 => client_reads_answer(rest),
        _ => client_opens_answer(rest),
    }
}

fn node_reads_conf(bytes: &[u8]) {
    let Ok(conf) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let Ok(conf) = serde_json::from_value::<IicpConf>(conf) else {
        return;
    };
    for (task_id, intent) in [(TASK_ID, CHAT), ("", CHAT), (TASK_ID, "")] {
        if let Ok((plain, _)) = NODE_CX.open_request(&conf, task_id, intent) {
            let _ = serde_json::from_slice::<Value>(&plain);
        }
    }
}

fn sealed_round_trip(payload: &[u8]) {
    let mut picks = Picks::new(payload);
    let mut eph = [0u8; 32];
    let mut nonce = [0u8; 12];
    eph.iter_mut().for_each(|b| *b = picks.next() as u8);
    nonce.iter_mut().for_each(|b| *b = picks.next() as u8);
    let (conf, client_ss) =
        cx::seal_request_with(&NODE_CX.public_bytes(), TASK_ID, CHAT, payload, eph, nonce);
    assert_eq!(conf.plaintext_size, payload.len());
    // On the wire and back.
    let text = serde_json::to_vec(&conf).expect("iicp_conf serialises");
    let read: IicpConf = serde_json::from_slice(&text).expect("iicp_conf reads back");
    assert_eq!(read, conf);
    let (plain, node_ss) = NODE_CX
        .open_request(&read, TASK_ID, CHAT)
        .expect("a sealed payload opens");
    assert_eq!(plain, payload, "the payload changed in the seal");
    // Sealed to another task or intent, it does not open.
    assert!(NODE_CX.open_request(&read, "other", CHAT).is_err());
    let Ok(value) = serde_json::from_slice::<Value>(&plain) else {
        return;
    };
    let response = envelope::success(TASK_ID, value, 7, Some("node-fuzz-1".into()));
    let sealed = envelope::sealed(TASK_ID, &response, &node_ss);
    let conf_resp = sealed.iicp_conf_resp.expect("a sealed answer");
    let conf_resp: cx::IicpConfResp =
        serde_json::from_value(conf_resp).expect("iicp_conf_resp reads back");
    let opened = cx::open_response(&client_ss, TASK_ID, &conf_resp).expect("the answer opens");
    assert_eq!(
        opened,
        serde_json::to_vec(&response).expect("serialises"),
        "the answer changed in the seal"
    );
}

/// The task the client seals: a static, so the prepared request below may
/// borrow from it for the life of the process (nothing leaked for ASan).
static OUTGOING: LazyLock<Outgoing> = LazyLock::new(|| {
    let mut task = TaskRequest::new(IntentUrn::parse(CHAT).expect("intent"), json!({"q": 1}));
    task.task_id = TASK_ID.into();
    Outgoing::new(task).expect("a task")
});

/// One request the client sealed (`Outgoing::for_node` for a node that
/// advertises the node's key), and the shared secret the node got from
/// opening it: made once, so that the answer paths cost no X25519.
static SEALED: LazyLock<(Prepared<'static>, SharedSecret)> = LazyLock::new(|| {
    let node: NodeInfo = serde_json::from_value(json!({
        "node_id": "node-fuzz-1", "endpoint": "https://node.example.net",
        "score": 0.9, "available": true,
        "cx_public_key": NODE_CX.advertised(),
    }))
    .expect("a node");
    let prepared = OUTGOING.for_node(&node).expect("a sealed task");
    let conf: IicpConf =
        serde_json::from_value(prepared.task.iicp_conf.clone().expect("iicp_conf"))
            .expect("the node reads iicp_conf");
    let (_, ss) = NODE_CX
        .open_request(&conf, TASK_ID, CHAT)
        .expect("the node opens the request");
    (prepared, ss)
});

fn client_reads_answer(body: &[u8]) {
    let sealed = SEALED.0.sealed.as_ref().expect("sealed to the node's key");
    let _ = judge_success_body(body, "node n", Some(sealed));
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let _ = sealed.open(&value);
    }
}

fn client_opens_answer(plain: &[u8]) {
    let (prepared, ss) = &*SEALED;
    let sealed = prepared.sealed.as_ref().expect("sealed to the node's key");
    // The node seals the bytes as its answer.
    let answer = json!({
        "task_id": TASK_ID,
        "status": "encrypted",
        "generated_by_ai": true,
        "iicp_conf_resp": cx::seal_response(ss, TASK_ID, plain),
    });
    let body = serde_json::to_vec(&answer).expect("serialises");
    let opened = judge_success_body(&body, "node n", Some(sealed));
    let direct = judge_success_body(plain, "node n", None);
    match (opened, direct) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "a sealed answer reads differently"),
        (Err(a), Err(b)) => {
            assert_eq!(a.verdict, b.verdict);
            assert_eq!(a.error.to_string(), b.error.to_string());
        }
        (a, b) => panic!(
            "a sealed answer is judged differently: {:?} / {:?}",
            a.map(|_| ()).map_err(|j| j.error.to_string()),
            b.map(|_| ()).map_err(|j| j.error.to_string())
        ),
    }
}
