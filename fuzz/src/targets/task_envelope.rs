//! `task_envelope`: the body of `POST /v1/task` (and of every transport that
//! carries a task as JSON: the relay forwards it unchanged to its worker).
//!
//! The node's path (`node/inbound.rs` `decode_task`, then
//! `node/pipeline.rs`): `decode_json::<TaskRequest>` (400/422), the id
//! rules, the intent policy, authorisation in `token` mode (node token in
//! the body), then, for a sealed task, `iicp_conf` read as `IicpConf` and
//! opened with the node's key, the plaintext read as JSON.
//!
//! Oracles: a refusal is 400 or 422 with a message; a decoded task
//! re-encodes to JSON that decodes to the same task; the policy guard agrees
//! with the taxonomy's rule-by-rule definition (on the task's intent and on
//! the raw input).

use super::{DIRECTORY_KEY, NODE_CX, assert_round_trip, check_policy};
use crate::cx::IicpConf;
use crate::node::task_auth::{Authorizer, Credentials, TaskAuthMode};
use crate::server::request::decode_json;
use crate::wire::TaskRequest;
use std::time::Duration;

/// The node id the harness's node runs under.
const NODE_ID: &str = "node-fuzz-1";

pub fn run(data: &[u8]) {
    // Any text may reach the policy guard (a capability's intent, a
    // discover query): the guard and its definition agree on it.
    if let Ok(text) = std::str::from_utf8(data) {
        if text.len() <= 512 {
            check_policy(text);
        }
    }
    let mut task: TaskRequest = match decode_json(data) {
        Ok(task) => task,
        Err(refused) => {
            assert!(
                refused.status == 400 || refused.status == 422,
                "a refused body is 400 or 422, not {}",
                refused.status
            );
            assert!(!refused.message.is_empty());
            return;
        }
    };
    assert_round_trip(&task, "a task");
    check_policy(task.intent.as_str());

    // node/pipeline.rs, in its order.
    if task.check_ids().is_err() {
        return;
    }
    if task.nonce.as_deref() == Some("") {
        task.nonce = None;
    }
    let _ = crate::wire::check_intent_policy(task.intent.as_str());
    let auth = Authorizer::new(TaskAuthMode::Token, Some("own-token".into()));
    auth.set_directory_key(Some(DIRECTORY_KEY.public_key()));
    let _ = auth.check(&task, &Credentials::default(), Some(NODE_ID));
    if task.task_id.is_empty() {
        task.task_id = "00000000-0000-4000-8000-000000000000".into();
    }
    let constraints = task.constraints.clone().unwrap_or_default();
    let _ = constraints.effective_qos();
    let _budget = constraints
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(60))
        .clamp(Duration::from_millis(100), Duration::from_secs(300));
    if let Some(conf) = task.iicp_conf.take() {
        // Pipeline::open.
        let Ok(conf) = serde_json::from_value::<IicpConf>(conf) else {
            return;
        };
        let intent = task.intent.as_str();
        if let Ok((plain, _shared)) = NODE_CX.open_request(&conf, &task.task_id, intent) {
            let _ = serde_json::from_slice::<serde_json::Value>(&plain);
        }
    }
    let _ = task.cx_response_encryption.as_deref() == Some("required");
}
