//! CALL (PROTOCOL.md §7.1 "CALL keys"): a task sent over the native
//! transport.
//!
//! Keys, from the reference code and the spec together: 1 protocol_version,
//! 2 session_id, 3 intent, 4 provider_id, 5 payload, 6 timeout (s),
//! 11 auth_token, 13 trace_id (16 bytes), 15 call_id, 16 idempotency_key,
//! 18 qos, 24 task_id (switches the call to the streaming lifecycle).
//!
//! Key 5 arrives as a byte string of UTF-8 JSON (the peers, and the relay's
//! whole task envelope), as a CBOR map with text keys, or as a text string of
//! JSON; every form decodes to one `serde_json::Value`. It is written as a
//! byte string of JSON, the form every peer reads.
//!
//! PROTOCOL.md names no CALL key for a directory consumer token; a client
//! holding one sends it as `auth_token` and the node tells the two apart.

use std::time::Duration;

use ciborium::Value;

use crate::Secret;
use crate::transport::cbor::{Fields, MapWriter, invalid, wrong};
use crate::transport::kind;

use super::{MessageError, map_message};

/// CALL (0x05).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Call {
    /// Key 1.
    pub protocol_version: Option<u64>,
    /// Key 2.
    pub session_id: Option<String>,
    /// Key 3: the intent URN, unvalidated (the pipeline validates it, as for HTTP).
    pub intent: Option<String>,
    /// Key 4: the provider the caller meant to reach.
    pub provider_id: Option<String>,
    /// Key 5: the task payload; `Null` when absent or empty.
    pub payload: serde_json::Value,
    /// Key 6: seconds the caller will wait (integer or float on the wire).
    pub timeout: Option<Duration>,
    /// Key 11: a node token or consumer token.
    pub auth_token: Option<Secret>,
    /// Key 13: W3C trace id, 16 bytes (32 hex digits as text are accepted).
    pub trace_id: Option<[u8; 16]>,
    /// Key 15: the caller's id for this call, echoed in the RESPONSE.
    pub call_id: Option<String>,
    /// Key 16: replay protection key.
    pub idempotency_key: Option<String>,
    /// Key 18: QoS class, unvalidated (the pipeline validates it, as for HTTP).
    pub qos: Option<String>,
    /// Key 24: task id; present means a streaming call.
    pub task_id: Option<String>,
}

map_message!(Call, kind::CALL);

impl Call {
    /// True when the caller asked for the streaming lifecycle (key 24).
    pub fn is_streaming(&self) -> bool {
        self.task_id.is_some()
    }

    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        Ok(Self {
            protocol_version: f.uint(1, "protocol_version")?,
            session_id: f.id(2, "session_id")?,
            intent: f.text(3, "intent")?,
            provider_id: f.id(4, "provider_id")?,
            payload: read_payload(f)?,
            timeout: read_timeout(f)?,
            auth_token: f.text(11, "auth_token")?.map(Secret::new),
            trace_id: read_trace_id(f)?,
            call_id: f.id(15, "call_id")?,
            idempotency_key: f.id(16, "idempotency_key")?,
            qos: f.text(18, "qos")?,
            task_id: f.id(24, "task_id")?,
        })
    }

    fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.protocol_version)
            .opt(2, self.session_id.clone())
            .opt(3, self.intent.clone())
            .opt(4, self.provider_id.clone());
        if !self.payload.is_null() {
            // Serialising a Value to a Vec cannot fail.
            w.put(5, serde_json::to_vec(&self.payload).unwrap_or_default());
        }
        w.opt(6, self.timeout.map(timeout_value))
            .opt(11, self.auth_token.as_ref().map(|t| t.expose().to_owned()))
            .opt(13, self.trace_id.map(|t| t.to_vec()))
            .opt(15, self.call_id.clone())
            .opt(16, self.idempotency_key.clone())
            .opt(18, self.qos.clone())
            .opt(24, self.task_id.clone());
    }
}

const PAYLOAD: (u64, &str) = (5, "payload");

fn read_payload(f: &mut Fields) -> Result<serde_json::Value, MessageError> {
    let (key, name) = PAYLOAD;
    let json_text = |text: &[u8]| -> Result<serde_json::Value, MessageError> {
        if text.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(text).map_err(|e| invalid(key, name, format!("not JSON: {e}")))
    };
    match f.take(key) {
        None => Ok(serde_json::Value::Null),
        Some(Value::Bytes(bytes)) => json_text(&bytes),
        Some(Value::Text(text)) => json_text(text.as_bytes()),
        Some(value) => f.to_json(key, name, value),
    }
}

fn read_timeout(f: &mut Fields) -> Result<Option<Duration>, MessageError> {
    let Some(secs) = f.number(6, "timeout")? else {
        return Ok(None);
    };
    Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|_| invalid(6, "timeout", format!("{secs} is not a duration in seconds")))
}

fn timeout_value(timeout: Duration) -> Value {
    if timeout.subsec_nanos() == 0 {
        Value::from(timeout.as_secs())
    } else {
        Value::Float(timeout.as_secs_f64())
    }
}

fn read_trace_id(f: &mut Fields) -> Result<Option<[u8; 16]>, MessageError> {
    let (key, name) = (13, "trace_id");
    let bytes = match f.take(key) {
        None => return Ok(None),
        Some(Value::Bytes(bytes)) => bytes,
        Some(Value::Text(text)) => {
            hex::decode(&text).map_err(|_| invalid(key, name, "text trace id is not hex"))?
        }
        Some(other) => return Err(wrong(key, name, "16-byte byte string", &other)),
    };
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| invalid(key, name, format!("{} bytes, expected 16", bytes.len())))
}
