//! Conversion between CBOR values and `serde_json::Value`, for task payloads
//! and results that travel as CBOR maps with text keys.
//!
//! CBOR → JSON is lenient but total: tags are dropped (their content kept),
//! integer map keys become their decimal text, non-finite floats become
//! `null` (as serde_json does). What JSON cannot hold (byte strings,
//! integers beyond 64 bits, other map keys) is an error. Nesting is bounded.
//!
//! JSON → CBOR sorts text map keys the deterministic way (shorter first, then
//! bytewise: RFC 8949 §4.2.1 applied to text keys).

use ciborium::Value;
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
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Value::Text(k.clone()), from_json(v)))
                    .collect(),
            )
        }
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
    fn depth_is_bounded() {
        let mut v = Value::Null;
        for _ in 0..10 {
            v = Value::Array(vec![v]);
        }
        assert!(to_json(v.clone(), 10).is_ok());
        assert_eq!(to_json(v, 9).unwrap_err(), "nested too deeply");
    }
}
