//! RELAY_BIND and RELAY_ACK (PROTOCOL.md §7.2): the two messages a relay
//! worker and a relay exchange after the handshake, in frame types `0x0B`
//! and `0x0C` (the spec's CONTROL and ADVERTISE; the running peers use them
//! for the relay).
//!
//! - `RELAY_BIND {1 worker_id, 2 intent, 3 [models], 4 bind_ticket?}`
//! - `RELAY_ACK {1 "ok", 2 worker_id, 4 relay_http_port}` or
//!   `{1 "error", 2 worker_id, 3 reason}`
//!
//! Decoding is as lenient as the other messages (any key order, unknown keys
//! ignored, ids as text or unsigned integers, one model as a list of one);
//! what a missing field means is the relay's decision.

use crate::Secret;
use crate::transport::cbor::{Fields, MapWriter, invalid};
use crate::transport::kind;

use super::{MessageError, map_message};

/// The longest worker id, intent or model name a bind may carry.
pub const MAX_RELAY_TEXT: usize = 256;
/// The most models a bind may list.
pub const MAX_RELAY_MODELS: usize = 64;
/// The longest bind ticket (a signed directory token is about 400 bytes).
pub const MAX_BIND_TICKET: usize = 4096;

/// RELAY_BIND (0x0B): a worker asks the relay to take tasks for it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayBind {
    /// Key 1: the worker's node id, as registered with the directory.
    pub worker_id: Option<String>,
    /// Key 2: the intent the worker serves.
    pub intent: Option<String>,
    /// Key 3: the models it serves.
    pub models: Vec<String>,
    /// Key 4: a directory-signed relay bind ticket (PROTOCOL.md §1.7).
    pub bind_ticket: Option<Secret>,
}

map_message!(RelayBind, kind::RELAY_BIND);

impl RelayBind {
    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        let worker_id = bounded(f.id(1, "worker_id")?, 1, "worker_id", MAX_RELAY_TEXT)?;
        let intent = bounded(f.text(2, "intent")?, 2, "intent", MAX_RELAY_TEXT)?;
        let models = f.text_list(3, "models")?.unwrap_or_default();
        if models.len() > MAX_RELAY_MODELS {
            return Err(invalid(
                3,
                "models",
                format!("{} models, at most {MAX_RELAY_MODELS}", models.len()),
            ));
        }
        if models.iter().any(|m| m.len() > MAX_RELAY_TEXT) {
            return Err(invalid(
                3,
                "models",
                format!("a model name over {MAX_RELAY_TEXT} bytes"),
            ));
        }
        // An empty ticket is the Python worker's "no ticket".
        let bind_ticket = bounded(f.text(4, "bind_ticket")?, 4, "bind_ticket", MAX_BIND_TICKET)?
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        Ok(Self {
            worker_id,
            intent,
            models,
            bind_ticket,
        })
    }

    fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.worker_id.clone())
            .opt(2, self.intent.clone())
            .put(
                3,
                ciborium::Value::Array(
                    self.models
                        .iter()
                        .map(|m| ciborium::Value::Text(m.clone()))
                        .collect(),
                ),
            )
            .opt(4, self.bind_ticket.as_ref().map(|t| t.expose().to_owned()));
    }
}

/// RELAY_ACK (0x0C): the relay's answer to a RELAY_BIND.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayAck {
    /// Key 1: `"ok"` or `"error"`.
    pub status: Option<String>,
    /// Key 2: the worker id the answer is about.
    pub worker_id: Option<String>,
    /// Key 3: why the bind was refused.
    pub reason: Option<String>,
    /// Key 4: the relay's HTTP port, where consumers reach the worker.
    pub relay_http_port: Option<u16>,
}

map_message!(RelayAck, kind::RELAY_ACK);

impl RelayAck {
    /// A successful bind of `worker_id`, reachable on `relay_http_port`.
    pub fn ok(worker_id: &str, relay_http_port: u16) -> Self {
        Self {
            status: Some("ok".into()),
            worker_id: Some(worker_id.to_owned()),
            reason: None,
            relay_http_port: Some(relay_http_port),
        }
    }

    /// A refused bind of `worker_id`.
    pub fn error(worker_id: &str, reason: &str) -> Self {
        Self {
            status: Some("error".into()),
            worker_id: Some(worker_id.to_owned()),
            reason: Some(reason.to_owned()),
            relay_http_port: None,
        }
    }

    /// True for `{1: "ok"}`.
    pub fn is_ok(&self) -> bool {
        self.status.as_deref() == Some("ok")
    }

    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        let port = f.uint(4, "relay_http_port")?;
        let relay_http_port = port
            .map(|p| {
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| invalid(4, "relay_http_port", format!("{p} is not a port")))
            })
            .transpose()?;
        Ok(Self {
            status: bounded(f.text(1, "status")?, 1, "status", 32)?,
            worker_id: bounded(f.id(2, "worker_id")?, 2, "worker_id", MAX_RELAY_TEXT)?,
            reason: bounded(f.text(3, "reason")?, 3, "reason", 1024)?,
            relay_http_port,
        })
    }

    fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.status.clone())
            .opt(2, self.worker_id.clone())
            .opt(3, self.reason.clone())
            .opt(4, self.relay_http_port.map(u64::from));
    }
}

fn bounded(
    value: Option<String>,
    key: u64,
    name: &'static str,
    max: usize,
) -> Result<Option<String>, MessageError> {
    match value {
        Some(v) if v.len() > max => Err(invalid(
            key,
            name,
            format!("{} bytes, at most {max}", v.len()),
        )),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn cbor(entries: Vec<(Value, Value)>) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Map(entries), &mut out).unwrap();
        out
    }

    #[test]
    fn a_bind_round_trips_and_reads_the_python_form() {
        let bind = RelayBind {
            worker_id: Some("w-1".into()),
            intent: Some("urn:iicp:intent:llm:chat:v1".into()),
            models: vec!["m".into()],
            bind_ticket: Some(Secret::new("t.sig")),
        };
        assert_eq!(RelayBind::decode(&bind.encode()).unwrap(), bind);
        // The Python worker sends an empty ticket when it has none.
        let python = cbor(vec![
            (1.into(), "w-2".into()),
            (2.into(), "urn:iicp:intent:llm:chat:v1".into()),
            (3.into(), Value::Array(vec![])),
            (4.into(), "".into()),
        ]);
        let got = RelayBind::decode(&python).unwrap();
        assert_eq!(got.worker_id.as_deref(), Some("w-2"));
        assert!(got.bind_ticket.is_none());
        assert!(got.models.is_empty());
    }

    #[test]
    fn hostile_binds_are_refused_with_the_field_named() {
        let long = "x".repeat(MAX_RELAY_TEXT + 1);
        let cases = [
            cbor(vec![(1.into(), long.as_str().into())]),
            cbor(vec![(1.into(), Value::Array(vec![]))]),
            cbor(vec![(
                3.into(),
                Value::Array(vec!["m".into(); MAX_RELAY_MODELS + 1]),
            )]),
            cbor(vec![(3.into(), Value::Array(vec![1.into()]))]),
            cbor(vec![(4.into(), "t".repeat(MAX_BIND_TICKET + 1).into())]),
        ];
        for case in cases {
            assert!(RelayBind::decode(&case).is_err(), "{case:?}");
        }
    }

    #[test]
    fn acks_round_trip_in_both_forms() {
        for ack in [RelayAck::ok("w", 8080), RelayAck::error("w", "capacity")] {
            assert_eq!(RelayAck::decode(&ack.encode()).unwrap(), ack);
        }
        assert!(RelayAck::ok("w", 1).is_ok());
        assert!(!RelayAck::error("w", "x").is_ok());
        let bad_port = cbor(vec![(1.into(), "ok".into()), (4.into(), 70_000.into())]);
        assert!(RelayAck::decode(&bad_port).is_err());
    }
}
