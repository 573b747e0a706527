//! The reference code's buffered RESPONSE layouts (success and `{100, 101}`
//! error) and the DISCOVER answer, plus the reading of a result in key 5.

use ciborium::Value;
use serde_json::Value as Json;

use crate::transport::cbor::{Fields, MapWriter, from_json, invalid, json_to_bytes, wrong};
use crate::transport::message::MessageError;

use super::spec::SpecError;

/// How a result travels in key 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultEncoding {
    /// A byte string holding CBOR: the direct native answer.
    #[default]
    CborBytes,
    /// A byte string holding UTF-8 JSON: the relay's answer (PROTOCOL.md §7.2).
    JsonBytes,
    /// The value itself, not wrapped in a byte string.
    Inline,
}

/// Buffered success: `{2 session_id, 15 call_id, 5 result}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BufferedResponse {
    /// Key 2.
    pub session_id: Option<String>,
    /// Key 15: the CALL's call id.
    pub call_id: Option<String>,
    /// Key 5: the task result; `None` when absent or an empty byte string.
    pub result: Option<Json>,
    /// How key 5 was (or is to be) encoded.
    pub encoding: ResultEncoding,
}

impl BufferedResponse {
    pub(super) fn read(f: &mut Fields) -> Result<Self, MessageError> {
        let (result, encoding) = match read_result(f)? {
            Some((json, encoding)) => (Some(json), encoding),
            None => (None, ResultEncoding::default()),
        };
        Ok(Self {
            session_id: f.id(2, "session_id")?,
            call_id: f.id(15, "call_id")?,
            result,
            encoding,
        })
    }

    pub(super) fn write(&self, w: &mut MapWriter) {
        w.opt(2, self.session_id.clone())
            .opt(15, self.call_id.clone());
        if let Some(result) = &self.result {
            w.put(5, write_result(result, self.encoding));
        }
    }
}

/// Reads key 5 as a result: a byte string is CBOR if it decodes as CBOR,
/// else JSON (PROTOCOL.md §7.2: "trying CBOR first, then JSON"); any other
/// value is taken inline.
pub(super) fn read_result(f: &mut Fields) -> Result<Option<(Json, ResultEncoding)>, MessageError> {
    const KEY: u64 = 5;
    const NAME: &str = "result";
    match f.take(KEY) {
        None => Ok(None),
        Some(Value::Bytes(bytes)) if bytes.is_empty() => Ok(None),
        Some(Value::Bytes(bytes)) => match f.nested_cbor(&bytes) {
            Ok(value) => Ok(Some((
                f.to_json(KEY, NAME, value)?,
                ResultEncoding::CborBytes,
            ))),
            // A limit hit inside well-formed CBOR stays an error.
            Err(e @ (MessageError::TooDeep { .. } | MessageError::TooManyItems { .. })) => Err(e),
            Err(_) => serde_json::from_slice(&bytes)
                .map(|json| Some((json, ResultEncoding::JsonBytes)))
                .map_err(|_| invalid(KEY, NAME, "byte string is neither CBOR nor JSON")),
        },
        Some(value) => Ok(Some((f.to_json(KEY, NAME, value)?, ResultEncoding::Inline))),
    }
}

fn write_result(result: &Json, encoding: ResultEncoding) -> Value {
    match encoding {
        ResultEncoding::CborBytes => Value::Bytes(json_to_bytes(result)),
        // Serialising a Value to a Vec cannot fail.
        ResultEncoding::JsonBytes => Value::Bytes(serde_json::to_vec(result).unwrap_or_default()),
        ResultEncoding::Inline => from_json(result),
    }
}

/// Buffered error: `{100 code, 101 message}`, with 2 and 15 when known,
/// and the spec's structured error `6 {1 code, 2 message}` beside them (our
/// node sends all three; the reference peers read 100/101 and ignore 6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BufferedError {
    /// Key 100: an HTTP-like status (429, 503, 500, …).
    pub code: i64,
    /// Key 101.
    pub message: Option<String>,
    /// Key 6: the machine-readable code (`IICP-E021`, `unauthorized`, …)
    /// and the message, as in the spec layout.
    pub error: Option<SpecError>,
    /// Key 2 (an addition of ours; peers ignore it).
    pub session_id: Option<String>,
    /// Key 15 (an addition of ours, so a multiplexing client can match it).
    pub call_id: Option<String>,
}

impl BufferedError {
    pub(super) fn read(f: &mut Fields) -> Result<Self, MessageError> {
        Ok(Self {
            code: f.int(100, "error_code")?.ok_or(MessageError::Missing {
                key: 100,
                name: "error_code",
            })?,
            message: f.text(101, "error_message")?,
            error: SpecError::read(f, 6)?,
            session_id: f.id(2, "session_id")?,
            call_id: f.id(15, "call_id")?,
        })
    }

    pub(super) fn write(&self, w: &mut MapWriter) {
        w.put(100, self.code)
            .opt(101, self.message.clone())
            .opt(6, self.error.as_ref().map(SpecError::to_value))
            .opt(2, self.session_id.clone())
            .opt(15, self.call_id.clone());
    }
}

/// The answer to DISCOVER: `{2 session_id, 3 intent, 20 [nodes]}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiscoverReply {
    /// Key 2.
    pub session_id: Option<String>,
    /// Key 3: the intent asked for.
    pub intent: Option<String>,
    /// Key 20: node descriptions (maps with text keys), as JSON.
    pub nodes: Vec<Json>,
}

impl DiscoverReply {
    pub(super) fn read(f: &mut Fields) -> Result<Self, MessageError> {
        let nodes = match f.take(20) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|node| f.to_json(20, "nodes", node))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(wrong(20, "nodes", "array", &other)),
        };
        Ok(Self {
            session_id: f.id(2, "session_id")?,
            intent: f.text(3, "intent")?,
            nodes,
        })
    }

    pub(super) fn write(&self, w: &mut MapWriter) {
        w.opt(2, self.session_id.clone())
            .opt(3, self.intent.clone())
            .put(20, Value::Array(self.nodes.iter().map(from_json).collect()));
    }
}
