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
use std::borrow::Cow;
use std::sync::OnceLock;

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
pub(crate) struct Prepared<'t> {
    /// The task for this node: the caller's, borrowed, in plaintext; a copy
    /// with `iicp_conf` set and `payload` null when sealed.
    pub task: Cow<'t, TaskRequest>,
    /// `Some` when the payload was sealed; the answer must then be sealed too.
    pub sealed: Option<Sealed>,
    /// The HTTP body, made by the first HTTP attempt and kept for retries.
    body: OnceLock<Bytes>,
}

impl Prepared<'_> {
    /// The HTTP body: the task as JSON.
    pub fn body(&self) -> Result<Bytes, IicpError> {
        cached(&self.body, || {
            Ok(serde_json::to_vec(&*self.task)
                .map_err(encode_error)?
                .into())
        })
        .cloned()
    }

    /// The native CALL's payload (key 5): the task payload, or for a sealed
    /// task `iicp_conf` and `cx_response_encryption` with the task id beside
    /// them (the seal binds the task id, and a buffered CALL has no key for
    /// it; docs/INTEROP.md item 16), as the node reads them from a CALL.
    #[cfg(feature = "iicp-tcp")]
    pub fn native_payload(&self) -> serde_json::Value {
        match &self.task.iicp_conf {
            Some(conf) => serde_json::json!({
                "task_id": self.task.task_id,
                "iicp_conf": conf,
                "cx_response_encryption": self.task.cx_response_encryption,
            }),
            None => self.task.payload.clone(),
        }
    }
}

/// A task ready to go out: in plaintext it goes as it is to a keyless
/// node; its payload is serialised once, when the first keyed node needs
/// it, and sealed per node.
pub(crate) struct Outgoing {
    /// The task, without `auth`.
    task: TaskRequest,
    /// The payload JSON, what gets sealed.
    payload_json: OnceLock<Vec<u8>>,
}

/// `cell`'s value, made by `make` the first time it is asked for (a
/// failure leaves the cell empty).
fn cached<T>(
    cell: &OnceLock<T>,
    make: impl FnOnce() -> Result<T, IicpError>,
) -> Result<&T, IicpError> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = make()?;
    Ok(cell.get_or_init(|| value))
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
        Ok(Self {
            task,
            payload_json: OnceLock::new(),
        })
    }

    /// The task for `node`: sealed to its key when it has one.
    pub fn for_node(&self, node: &NodeInfo) -> Result<Prepared<'_>, IicpError> {
        let Some(key) = node_key(node) else {
            return Ok(Prepared {
                task: Cow::Borrowed(&self.task),
                sealed: None,
                body: OnceLock::new(),
            });
        };
        let payload_json = cached(&self.payload_json, || {
            serde_json::to_vec(&self.task.payload).map_err(encode_error)
        })?;
        let (mut conf, ss) = cx::seal_request(
            &key,
            &self.task.task_id,
            self.task.intent.as_str(),
            payload_json,
        );
        if let Some(id) = node
            .effective_cx_key()
            .map(|k| k.key_id.as_str())
            .filter(|id| !id.is_empty())
        {
            // Key ids are opaque: name the key as the node does.
            conf.recipient_key_id = id.to_owned();
        }
        let mut task = without_payload(&self.task);
        task.iicp_conf = Some(serde_json::to_value(conf).map_err(encode_error)?);
        task.cx_response_encryption = Some("required".into());
        Ok(Prepared {
            task: Cow::Owned(task),
            sealed: Some(Sealed {
                ss,
                task_id: self.task.task_id.clone(),
            }),
            body: OnceLock::new(),
        })
    }

    /// The task's intent.
    pub fn intent(&self) -> &str {
        self.task.intent.as_str()
    }
}

/// A copy of `task` with a null payload (the payload is what gets sealed).
fn without_payload(task: &TaskRequest) -> TaskRequest {
    TaskRequest {
        task_id: task.task_id.clone(),
        intent: task.intent.clone(),
        payload: serde_json::Value::Null,
        iicp_conf: task.iicp_conf.clone(),
        cx_response_encryption: task.cx_response_encryption.clone(),
        constraints: task.constraints.clone(),
        auth: task.auth.clone(),
        source_node_id: task.source_node_id.clone(),
        nonce: task.nonce.clone(),
        extra: task.extra.clone(),
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
