//! CBOR for native payloads: bounded decoding ([`CborLimits`]), typed reading
//! of integer-keyed maps, conversion to and from `serde_json::Value`, and the
//! deterministic writer.
//!
//! Decoding is two passes over the payload: [`scan`] walks the item headers
//! with ciborium-ll and refuses too-deep nesting, too many items and trailing
//! bytes without allocating, then ciborium builds the value tree. The scan is
//! what bounds memory: ciborium never pre-allocates from a declared length,
//! but a tree of a million one-byte items still costs tens of bytes each.

mod fields;
mod json;
mod scan;
mod writer;

pub(crate) use fields::{Fields, invalid, wrong};
pub(crate) use json::{from_json, to_json};
pub(crate) use writer::{MapWriter, to_bytes};

use ciborium::Value;

use super::message::MessageError;

/// Default bound on nesting (arrays, maps and tags inside each other).
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Default bound on the number of CBOR items in one payload.
pub const DEFAULT_MAX_ITEMS: usize = 1 << 20;

/// Bounds applied while decoding a CBOR payload. Exceeding one is a decode
/// error, never a panic or a large allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CborLimits {
    /// Deepest nesting of arrays, maps and tags (also bounds the conversion
    /// to JSON).
    pub max_depth: usize,
    /// Most items (every header counts: scalars, strings, containers).
    pub max_items: usize,
}

impl Default for CborLimits {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
            max_items: DEFAULT_MAX_ITEMS,
        }
    }
}

/// Decodes one CBOR item that must fill `bytes` exactly, within `limits`.
pub(crate) fn decode(bytes: &[u8], limits: &CborLimits) -> Result<Value, MessageError> {
    scan::check(bytes, limits)?;
    // The scan is the authoritative bound on nesting. ciborium counts some
    // levels twice (a tag and its content), so its own guard gets headroom.
    let recursion = limits.max_depth.saturating_mul(2).saturating_add(1);
    ciborium::de::from_reader_with_recursion_limit::<Value, _>(bytes, recursion)
        .map_err(|e| MessageError::Malformed(e.to_string()))
}

/// The CBOR type of a value, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "integer",
        Value::Bytes(_) => "byte string",
        Value::Float(_) => "float",
        Value::Text(_) => "text string",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Tag(..) => "tag",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        _ => "unknown item",
    }
}
