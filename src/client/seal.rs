//! IICP-CX on the consumer side (PROTOCOL.md §2.5): the payload is sealed
//! separately for every node that advertises a key, an encrypted answer is
//! always asked for, and a plaintext success to an encrypted request is
//! refused. Nodes without a usable key get the payload in plaintext only
//! when the caller opted in.

use crate::cx::{self, CxError, IicpConfResp, SharedSecret};
use crate::error::IicpError;
use crate::wire::{NodeInfo, TaskRequest};
use bytes::Bytes;
use serde::Deserialize;

/// The X25519 key a node advertises, when it is one this client can use.
pub(crate) fn node_key(node: &NodeInfo) -> Option<[u8; 32]> {
    let advertised = node.effective_cx_key()?;
    if !advertised.algorithm.eq_ignore_ascii_case("x25519") {
        return None;
    }
    cx::public_key_bytes(advertised).ok()
}

/// What is needed to open the answer of one sealed request.
pub(crate) struct Sealed {
    ss: SharedSecret,
    task_id: String,
}

/// The task as it goes to one node: sealed to its key, or in plaintext.
pub(crate) struct Prepared {
    /// The task for this node (`iicp_conf` set, `payload` null, when sealed).
    pub task: TaskRequest,
    /// `Some` when the payload was sealed; the answer must then be sealed too.
    pub sealed: Option<Sealed>,
}

impl Prepared {
    /// The HTTP body: the task as JSON.
    pub fn body(&self) -> Result<Bytes, IicpError> {
        Ok(serde_json::to_vec(&self.task).map_err(encode_error)?.into())
    }

    /// The native CALL's payload (key 5): the task payload, or for a sealed
    /// task `iicp_conf` and `cx_response_encryption`, as the node reads them
    /// from a CALL.
    #[cfg(feature = "iicp-tcp")]
    pub fn native_payload(&self) -> serde_json::Value {
        match &self.task.iicp_conf {
            Some(conf) => serde_json::json!({
                "iicp_conf": conf,
                "cx_response_encryption": self.task.cx_response_encryption,
            }),
            None => self.task.payload.clone(),
        }
    }
}

/// A task ready to go out: the payload is serialised once and sealed per
/// node, or put back in plaintext for a keyless node.
pub(crate) struct Outgoing {
    /// The task without its payload.
    head: TaskRequest,
    /// The payload.
    payload: serde_json::Value,
    /// The payload JSON, what gets sealed.
    payload_json: Vec<u8>,
}

fn encode_error(e: serde_json::Error) -> IicpError {
    IicpError::Decode {
        what: "the task request".into(),
        reason: e.to_string(),
    }
}

impl Outgoing {
    pub fn new(mut task: TaskRequest) -> Result<Self, IicpError> {
        // A task goes to whichever nodes the directory lists: a credential in
        // the body would reach all of them, outside the seal. The client's
        // only credential for nodes is a consumer token, sent per node.
        task.auth = None;
        let payload_json = serde_json::to_vec(&task.payload).map_err(encode_error)?;
        let payload = std::mem::take(&mut task.payload);
        Ok(Self {
            head: task,
            payload,
            payload_json,
        })
    }

    /// The body for `node`: sealed to its key when it has one.
    pub fn for_node(&self, node: &NodeInfo) -> Result<Prepared, IicpError> {
        let Some(key) = node_key(node) else {
            let mut task = self.head.clone();
            task.payload = self.payload.clone();
            return Ok(Prepared { task, sealed: None });
        };
        let (mut conf, ss) = cx::seal_request(
            &key,
            &self.head.task_id,
            self.head.intent.as_str(),
            &self.payload_json,
        );
        if let Some(id) = node
            .effective_cx_key()
            .map(|k| k.key_id.as_str())
            .filter(|id| !id.is_empty())
        {
            // Key ids are opaque: name the key as the node does.
            conf.recipient_key_id = id.to_owned();
        }
        let mut task = self.head.clone();
        task.iicp_conf = Some(serde_json::to_value(conf).map_err(encode_error)?);
        task.cx_response_encryption = Some("required".into());
        Ok(Prepared {
            task,
            sealed: Some(Sealed {
                ss,
                task_id: self.head.task_id.clone(),
            }),
        })
    }

    /// The task's intent.
    pub fn intent(&self) -> &str {
        self.head.intent.as_str()
    }
}

impl Sealed {
    /// Opens an `iicp_conf_resp`: the plaintext is the node's whole answer
    /// envelope as JSON.
    pub fn open(&self, conf_resp: &serde_json::Value) -> Result<Vec<u8>, CxError> {
        let resp =
            IicpConfResp::deserialize(conf_resp).map_err(|_| CxError::Field("iicp_conf_resp"))?;
        cx::open_response(&self.ss, &self.task_id, &resp)
    }
}
