//! Conversion between CBOR values and `serde_json::Value`, for task payloads
//! and results that travel as CBOR maps with text keys.
//!
//! CBOR → JSON is lenient but total: tags are dropped (their content kept),
//! integer map keys become their decimal text, non-finite floats become
//! `null` (as serde_json does). What JSON cannot hold (byte strings,
//! integers beyond 64 bits, other map keys) is an error. Nesting is bounded.
//!
//! JSON → CBOR sorts text map keys the deterministic way (shorter first, then
//! bytewise: RFC 8949 §4.2.1 applied to text keys). [`json_to_bytes`] writes
//! those bytes straight from the JSON, without a CBOR value tree between.

use std::cmp::Ordering;

use ciborium::Value;
use ciborium_ll::{Encoder, Header, simple};
use serde_json::{Map, Number, Value as Json};

/// Converts a decoded CBOR value to JSON, refusing nesting deeper than
/// `depth_left`. The error says what could not be converted.
pub(crate) fn to_json(value: Value, depth_left: usize) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Text(s) => Json::String(s),
        Value::Float(f) => Number::from_f64(f).map_or(Json::Null, Json::Number),
        Value::Integer(i) => {
            let wide = i128::from(i);
            if let Ok(u) = u64::try_from(wide) {
                Json::from(u)
            } else if let Ok(s) = i64::try_from(wide) {
                Json::from(s)
            } else {
                return Err(format!("integer {wide} does not fit in 64 bits"));
            }
        }
        Value::Bytes(_) => return Err("a byte string has no JSON form".into()),
        Value::Tag(_, inner) => to_json(*inner, depth_left)?,
        Value::Array(items) => {
            let depth = deeper(depth_left)?;
            Json::Array(
                items
                    .into_iter()
                    .map(|v| to_json(v, depth))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let depth = deeper(depth_left)?;
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Value::Text(s) => s,
                    Value::Integer(i) => i128::from(i).to_string(),
                    other => {
                        return Err(format!(
                            "a map key of type {} has no JSON form",
                            super::type_name(&other)
                        ));
                    }
                };
                map.insert(key, to_json(value, depth)?);
            }
            Json::Object(map)
        }
        other => return Err(format!("{} has no JSON form", super::type_name(&other))),
    })
}

fn deeper(depth_left: usize) -> Result<usize, String> {
    depth_left
        .checked_sub(1)
        .ok_or_else(|| "nested too deeply".to_owned())
}

/// Converts JSON to a CBOR value with deterministically ordered map keys.
pub(crate) fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::Text(s.clone()),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        Json::Object(map) => Value::Map(
            sorted(map)
                .into_iter()
                .map(|(k, v)| (Value::Text(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}

/// An object's entries in deterministic key order.
fn sorted(map: &Map<String, Json>) -> Vec<(&String, &Json)> {
    let mut entries: Vec<(&String, &Json)> = map.iter().collect();
    entries.sort_unstable_by(|(a, _), (b, _)| deterministic(a, b));
    entries
}

/// Shorter first, then bytewise (keys are unique, so the order is total).
fn deterministic(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The CBOR encoding of `json`: the same bytes as encoding
/// [`from_json`]'s value, written directly (no value tree, no copies of
/// the strings).
pub(crate) fn json_to_bytes(json: &Json) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    // Writing into a Vec cannot fail; this is not reachable from any input.
    write_json(&mut Encoder::from(&mut out), json).expect("CBOR encoding into a Vec is infallible");
    out
}

type VecEncoder<'a> = Encoder<&'a mut Vec<u8>>;

fn write_json(e: &mut VecEncoder<'_>, json: &Json) -> std::io::Result<()> {
    match json {
        Json::Null => e.push(Header::Simple(simple::NULL)),
        Json::Bool(b) => e.push(Header::Simple(if *b {
            simple::TRUE
        } else {
            simple::FALSE
        })),
        // One segment, as ciborium writes a text string.
        Json::String(s) => e.text(s, None),
        Json::Number(n) => e.push(number(n)),
        Json::Array(items) => {
            e.push(Header::Array(Some(items.len())))?;
            items.iter().try_for_each(|item| write_json(e, item))
        }
        Json::Object(map) => {
            e.push(Header::Map(Some(map.len())))?;
            for (key, value) in sorted(map) {
                e.text(key, None)?;
                write_json(e, value)?;
            }
            Ok(())
        }
    }
}

/// The header of a number: an integer when it is one, else a float (which
/// the encoder writes in its shortest lossless width).
fn number(n: &Number) -> Header {
    if let Some(u) = n.as_u64() {
        Header::Positive(u)
    } else if let Some(i) = n.as_i64() {
        // CBOR's negative integers hold -1 - i.
        Header::Negative(!(i as u64))
    } else {
        Header::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_both_ways_and_orders_keys_shortest_first() {
        let original =
            json!({"bb": [1, -2, 2.5, null, true], "a": {"zz": "x", "c": 18446744073709551615u64}});
        let cbor = from_json(&original);
        let Value::Map(entries) = &cbor else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0, Value::Text("a".into()));
        let Value::Map(inner) = &entries[0].1 else {
            panic!("not a map")
        };
        assert_eq!(inner[0].0, Value::Text("c".into()));
        assert_eq!(to_json(cbor, 8).unwrap(), original);
    }

    #[test]
    fn lenient_forms_and_refusals() {
        let tagged = Value::Tag(1, Box::new(Value::from(5u64)));
        assert_eq!(to_json(tagged, 4).unwrap(), json!(5));
        let int_keys = Value::Map(vec![(Value::from(3u64), Value::Float(f64::INFINITY))]);
        assert_eq!(to_json(int_keys, 4).unwrap(), json!({"3": null}));
        assert!(to_json(Value::Bytes(vec![1]), 4).is_err());
        let bytes_key = Value::Map(vec![(Value::Bytes(vec![1]), Value::Null)]);
        assert!(to_json(bytes_key, 4).is_err());
        let huge = Value::Integer(ciborium::value::Integer::try_from(-(1i128 << 64)).unwrap());
        assert!(to_json(huge, 4).unwrap_err().contains("64 bits"));
    }

    #[test]
    fn written_directly_the_bytes_are_those_of_the_value_tree() {
        let cases = [
            json!(null),
            json!(true),
            json!(""),
            json!("żółw ✓"),
            json!("x".repeat(300)),
            json!(0),
            json!(23),
            json!(24),
            json!(65536),
            json!(u64::MAX),
            json!(-1),
            json!(-25),
            json!(i64::MIN),
            json!(1.5),
            json!(0.1),
            json!(1e300),
            json!(-0.0),
            json!(100000.0),
            json!([]),
            json!({}),
            json!({"bb": [1, -2, 2.5, null, true], "a": {"zz": "x", "c": 1}, "b": {}}),
            json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}),
        ];
        for json in cases {
            assert_eq!(
                hex::encode(json_to_bytes(&json)),
                hex::encode(super::super::writer::to_bytes(&from_json(&json))),
                "{json}"
            );
        }
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = Value::Null;
        for _ in 0..10 {
            v = Value::Array(vec![v]);
        }
        assert!(to_json(v.clone(), 10).is_ok());
        assert_eq!(to_json(v, 9).unwrap_err(), "nested too deeply");
    }
}
