//! The value of a payload that is one map of plain items, built without
//! serde: a typical message (integer keys; text, byte strings, numbers,
//! booleans and null as values) is read header by header with ciborium-ll
//! instead of through ciborium's generic deserializer, which costs three
//! times as much for it (callgrind, a CALL).
//!
//! It gives up (`None`) at the first item it does not build (a container, a
//! tag, an indefinite-length string, a negative integer, another simple
//! value, text that is not UTF-8) and on bytes after the map, so the caller
//! then decodes the payload the general way (the scan, then ciborium): a
//! value built here is the value ciborium builds, and every refusal stays
//! the general way's. What it builds is one level deep and counts its
//! items, which is all the scan would have checked.

use ciborium::Value;
use ciborium_ll::{Decoder, Header, simple};

/// The payload as a `Value::Map`, when it is one definite-length map whose
/// keys and values are all plain items, and the number of CBOR items in it
/// (the map and its keys and values, as the scan counts them).
pub(super) fn map(bytes: &[u8]) -> Option<(Value, usize)> {
    let mut at = 0;
    let Header::Map(Some(len)) = header(bytes, &mut at)? else {
        return None;
    };
    // The declared length is the peer's word: each entry takes two bytes at
    // least, so no more room than the payload could fill.
    let mut entries = Vec::with_capacity(len.min(bytes.len() / 2));
    for _ in 0..len {
        let key = plain(bytes, &mut at)?;
        let value = plain(bytes, &mut at)?;
        entries.push((key, value));
    }
    (at == bytes.len()).then(|| (Value::Map(entries), len.saturating_mul(2).saturating_add(1)))
}

/// The header at `at`, which moves past it.
fn header(bytes: &[u8], at: &mut usize) -> Option<Header> {
    let mut decoder = Decoder::from(bytes.get(*at..)?);
    let header = decoder.pull().ok()?;
    *at += decoder.offset();
    Some(header)
}

/// A plain item at `at`, which moves past it.
fn plain(bytes: &[u8], at: &mut usize) -> Option<Value> {
    Some(match header(bytes, at)? {
        Header::Positive(n) => Value::from(n),
        Header::Float(f) => Value::Float(f),
        Header::Simple(simple::NULL) => Value::Null,
        Header::Simple(simple::FALSE) => Value::Bool(false),
        Header::Simple(simple::TRUE) => Value::Bool(true),
        Header::Text(Some(len)) => {
            let text = std::str::from_utf8(content(bytes, at, len)?).ok()?;
            Value::Text(text.to_owned())
        }
        Header::Bytes(Some(len)) => Value::Bytes(content(bytes, at, len)?.to_vec()),
        _ => return None,
    })
}

/// The `len` bytes of a string's content at `at`, which moves past them.
fn content<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(len)?;
    let content = bytes.get(*at..end)?;
    *at = end;
    Some(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ciborium(bytes: &[u8]) -> Value {
        ciborium::from_reader(bytes).unwrap()
    }

    use crate::transport::cbor::writer::to_bytes as encoded;

    #[test]
    fn a_map_of_plain_items_is_the_value_ciborium_builds() {
        let plain = Value::Map(vec![
            (Value::from(1u64), Value::from(1u64)),
            (Value::from(2u64), Value::Text("sess-1".into())),
            (
                Value::from(3u64),
                Value::Text("urn:iicp:intent:llm:chat:v1".into()),
            ),
            (
                Value::from(5u64),
                Value::Bytes(br#"{"messages":[]}"#.to_vec()),
            ),
            (Value::from(6u64), Value::Float(2.5)),
            (Value::from(6u64), Value::Float(0.1)),
            (Value::from(7u64), Value::Null),
            (Value::from(8u64), Value::Bool(true)),
            (Value::from(9u64), Value::Bool(false)),
            (Value::from(u64::MAX), Value::Text("ż".repeat(40))),
            (Value::Text("text key".into()), Value::Bytes(vec![0; 300])),
            (Value::from(10u64), Value::Text(String::new())),
        ]);
        let bytes = encoded(&plain);
        assert_eq!(map(&bytes), Some((ciborium(&bytes), 25)));
        assert_eq!(map(&bytes).unwrap().0, plain);
        // Half-precision and single-precision floats as well.
        for bytes in [
            &[0xa1, 0x01, 0xf9, 0x3c, 0x00][..],
            &[0xa1, 0x01, 0xfa, 0x47, 0xc3, 0x50, 0x00],
        ] {
            assert_eq!(map(bytes), Some((ciborium(bytes), 3)));
        }
    }

    #[test]
    fn anything_else_is_left_to_ciborium() {
        let nested = Value::Map(vec![(
            Value::from(5u64),
            Value::Map(vec![(Value::Text("a".into()), Value::from(1u64))]),
        )]);
        let negative = Value::Map(vec![(Value::from(1u64), Value::from(-3i64))]);
        let tagged = Value::Map(vec![(
            Value::from(1u64),
            Value::Tag(1, Box::new(Value::from(5u64))),
        )]);
        let array = Value::Array(vec![Value::from(1u64)]);
        for value in [nested, negative, tagged, array] {
            assert_eq!(map(&encoded(&value)), None, "{value:?}");
        }
        // Indefinite-length map and text, undefined, a map cut short,
        // bytes after the map, maps declaring 2^32 and 2^63 entries.
        for bytes in [
            &[0xba, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02][..],
            &[
                0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02,
            ],
            &[0xbf, 0x01, 0x02, 0xff],
            &[0xa1, 0x01, 0x7f, 0x61, b'a', 0xff],
            &[0xa1, 0x01, 0xf7],
            &[0xa2, 0x01, 0x02],
            &[0xa1, 0x01, 0x63, b'a'],
            &[0xa1, 0x01, 0x02, 0x00],
        ] {
            assert_eq!(map(bytes), None, "{bytes:02x?}");
        }
    }
}
