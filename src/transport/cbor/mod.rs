//! CBOR for native payloads: bounded decoding ([`CborLimits`]), typed reading
//! of integer-keyed maps, conversion to and from `serde_json::Value`, and the
//! deterministic writer.
//!
//! Decoding is two passes over the payload: [`scan`] walks the item headers
//! with ciborium-ll and refuses too-deep nesting, too many items and trailing
//! bytes without allocating, then ciborium builds the value tree. The scan is
//! what bounds memory: ciborium never pre-allocates from a declared length,
//! but a tree of a million one-byte items still costs tens of bytes each. A
//! typical message, one map of plain items, is built by [`flat`] in one pass
//! instead, which checks the same bounds for it.

mod fields;
mod flat;
mod json;
mod scan;
mod writer;

pub(crate) use fields::{Fields, invalid, wrong};
pub(crate) use json::{from_json, json_to_bytes, to_json};
pub(crate) use writer::MapWriter;

use std::cell::RefCell;

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

/// Bytes of the scratch buffer both passes read string segments into.
const SCRATCH_LEN: usize = 4096;

/// ciborium's own recursion guard when it is given a scratch buffer.
const CIBORIUM_RECURSION: usize = 256;

thread_local! {
    /// One scratch buffer per thread: ciborium's and the scan's would
    /// otherwise be a fresh zeroed 4 KiB each per payload (8 k instructions a
    /// CALL, measured with callgrind).
    static SCRATCH: RefCell<[u8; SCRATCH_LEN]> = const { RefCell::new([0; SCRATCH_LEN]) };
}

/// Runs `f` with this thread's scratch buffer (a fresh one if it is in use).
fn with_scratch<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch[..]),
        Err(_) => f(&mut [0; SCRATCH_LEN]),
    })
}

/// Decodes one CBOR item that must fill `bytes` exactly, within `limits`.
pub(crate) fn decode(bytes: &[u8], limits: &CborLimits) -> Result<Value, MessageError> {
    // A one-level map of plain items within the limits: all the scan would
    // check (one level when it has entries, its items counted).
    if let Some((map, items)) = flat::map(bytes)
        && items <= limits.max_items
        && (items == 1 || limits.max_depth >= 1)
    {
        return Ok(map);
    }
    // The scan is the authoritative bound on nesting. ciborium counts some
    // levels twice (a tag and its content), so its own guard gets headroom.
    let recursion = limits.max_depth.saturating_mul(2).saturating_add(1);
    let malformed = |e: ciborium::de::Error<std::io::Error>| MessageError::Malformed(e.to_string());
    with_scratch(|scratch| {
        scan::check(bytes, limits, scratch)?;
        if recursion <= CIBORIUM_RECURSION {
            // The scan passed, so ciborium's fixed guard cannot be reached.
            ciborium::de::from_reader_with_buffer::<Value, _>(bytes, scratch).map_err(malformed)
        } else {
            ciborium::de::from_reader_with_recursion_limit::<Value, _>(bytes, recursion)
                .map_err(malformed)
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use writer::to_bytes as encoded;

    #[test]
    fn decodes_the_same_with_the_thread_scratch_in_use_or_not() {
        // Strings shorter than, as long as and longer than the scratch
        // buffer, multi-byte characters across its edge.
        let long = "ż".repeat(SCRATCH_LEN);
        let value = Value::Map(vec![
            (Value::from(1u64), Value::Text("short".into())),
            (Value::from(2u64), Value::Text(long)),
            (Value::from(3u64), Value::Bytes(vec![7; SCRATCH_LEN])),
            (Value::from(4u64), Value::Bytes(vec![9; SCRATCH_LEN + 1])),
        ]);
        let bytes = encoded(&value);
        let limits = CborLimits::default();
        assert_eq!(decode(&bytes, &limits).unwrap(), value);
        // A decode while this thread's buffer is borrowed gets a fresh one.
        let nested = with_scratch(|_| decode(&bytes, &limits).unwrap());
        assert_eq!(nested, value);
    }

    #[test]
    fn a_flat_map_is_held_to_the_same_limits_as_any_payload() {
        let map = Value::Map(vec![
            (Value::from(1u64), Value::Text("a".into())),
            (Value::from(2u64), Value::from(7u64)),
        ]);
        let bytes = encoded(&map);
        let limits = |max_depth, max_items| CborLimits {
            max_depth,
            max_items,
        };
        assert_eq!(decode(&bytes, &limits(1, 5)).unwrap(), map);
        assert!(matches!(
            decode(&bytes, &limits(1, 4)),
            Err(MessageError::TooManyItems { max: 4 })
        ));
        assert!(matches!(
            decode(&bytes, &limits(0, 5)),
            Err(MessageError::TooDeep { max: 0 })
        ));
        // An empty map is one item at no depth.
        assert_eq!(decode(&[0xa0], &limits(0, 1)).unwrap(), Value::Map(vec![]));
        // Bytes after the map are the scan's refusal, as for any payload.
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode(&trailing, &CborLimits::default()),
            Err(MessageError::TrailingBytes(1))
        ));
    }

    #[test]
    fn nesting_beyond_ciborium_s_own_guard_decodes_when_the_limits_allow_it() {
        let mut value = Value::Null;
        for _ in 0..200 {
            value = Value::Array(vec![value]);
        }
        let bytes = encoded(&value);
        let deep = CborLimits {
            max_depth: 200,
            ..CborLimits::default()
        };
        assert_eq!(decode(&bytes, &deep).unwrap(), value);
        assert!(matches!(
            decode(&bytes, &CborLimits::default()),
            Err(MessageError::TooDeep {
                max: DEFAULT_MAX_DEPTH
            })
        ));
    }
}
