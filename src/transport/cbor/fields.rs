//! `Fields`: typed, lenient reading of a CBOR map with integer keys.
//!
//! Keys may come in any order; entries whose key is not an unsigned integer
//! are ignored, as are keys nobody asks for. A key present twice reads as its
//! last occurrence (what a dictionary-based peer would have kept). A `null`
//! value reads as absent. A value of the wrong CBOR type is an error naming
//! the key.

use ciborium::Value;

use super::{CborLimits, decode, to_json, type_name};
use crate::transport::message::MessageError;

/// The integer-keyed entries of one CBOR map.
#[derive(Debug)]
pub(crate) struct Fields {
    entries: Vec<(u64, Value)>,
    limits: CborLimits,
}

impl Fields {
    /// Decodes a payload that must be a CBOR map. An empty payload reads as
    /// an empty map (peers send CLOSE and PING with no payload at all).
    pub(crate) fn decode(payload: &[u8], limits: &CborLimits) -> Result<Self, MessageError> {
        if payload.is_empty() {
            return Ok(Self {
                entries: Vec::new(),
                limits: *limits,
            });
        }
        match decode(payload, limits)? {
            Value::Map(entries) => Ok(Self::from_entries(entries, limits)),
            other => Err(MessageError::NotAMap {
                found: type_name(&other),
            }),
        }
    }

    fn from_entries(entries: Vec<(Value, Value)>, limits: &CborLimits) -> Self {
        let entries = entries
            .into_iter()
            .filter_map(|(key, value)| match key {
                Value::Integer(i) => u64::try_from(i).ok().map(|k| (k, value)),
                _ => None,
            })
            .collect();
        Self {
            entries,
            limits: *limits,
        }
    }

    /// True when the map has `key` (with any value, `null` included).
    pub(crate) fn has(&self, key: u64) -> bool {
        self.entries.iter().any(|(k, _)| *k == key)
    }

    /// The CBOR value at `key`, removed from the map; `None` when absent or
    /// `null`.
    pub(crate) fn take(&mut self, key: u64) -> Option<Value> {
        let at = self.entries.iter().rposition(|(k, _)| *k == key)?;
        match self.entries.swap_remove(at).1 {
            Value::Null => None,
            value => Some(value),
        }
    }

    /// The value at `key` without removing it.
    pub(crate) fn peek(&self, key: u64) -> Option<&Value> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    pub(crate) fn text(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<String>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Text(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(key, name, "text string", &other)),
        }
    }

    /// An identifier: text, or an unsigned integer read as its decimal text.
    pub(crate) fn id(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<String>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Text(s)) => Ok(Some(s)),
            Some(Value::Integer(i)) if i128::from(i) >= 0 => Ok(Some(i128::from(i).to_string())),
            Some(other) => Err(wrong(key, name, "text string or unsigned integer", &other)),
        }
    }

    pub(crate) fn uint(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<u64>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => u64::try_from(i).map(Some).map_err(|_| {
                invalid(
                    key,
                    name,
                    format!("{} is not an unsigned integer", i128::from(i)),
                )
            }),
            Some(other) => Err(wrong(key, name, "unsigned integer", &other)),
        }
    }

    pub(crate) fn int(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<i64>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => i64::try_from(i).map(Some).map_err(|_| {
                invalid(
                    key,
                    name,
                    format!("{} does not fit in 64 bits", i128::from(i)),
                )
            }),
            Some(other) => Err(wrong(key, name, "integer", &other)),
        }
    }

    /// A number: float or integer.
    pub(crate) fn number(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<f64>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Float(f)) => Ok(Some(f)),
            Some(Value::Integer(i)) => Ok(Some(i128::from(i) as f64)),
            Some(other) => Err(wrong(key, name, "number", &other)),
        }
    }

    pub(crate) fn boolean(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<bool>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(wrong(key, name, "bool", &other)),
        }
    }

    pub(crate) fn bytes(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<Vec<u8>>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b)),
            Some(other) => Err(wrong(key, name, "byte string", &other)),
        }
    }

    /// A nested integer-keyed map.
    pub(crate) fn map(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<Fields>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Map(entries)) => Ok(Some(Self::from_entries(entries, &self.limits))),
            Some(other) => Err(wrong(key, name, "map", &other)),
        }
    }

    /// A list of text strings; a single text string reads as a list of one.
    pub(crate) fn text_list(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<Vec<String>>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Text(s)) => Ok(Some(vec![s])),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::Text(s) => Ok(s),
                    other => Err(wrong(key, name, "array of text strings", &other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong(key, name, "array of text strings", &other)),
        }
    }

    /// Any value converted to JSON (bounded by the decode limits).
    pub(crate) fn json(
        &mut self,
        key: u64,
        name: &'static str,
    ) -> Result<Option<serde_json::Value>, MessageError> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => self.to_json(key, name, value).map(Some),
        }
    }

    /// Converts a value taken from key `key` to JSON.
    pub(crate) fn to_json(
        &self,
        key: u64,
        name: &'static str,
        value: Value,
    ) -> Result<serde_json::Value, MessageError> {
        to_json(value, self.limits.max_depth).map_err(|problem| invalid(key, name, problem))
    }

    /// Decodes a byte string holding CBOR, within the same limits.
    pub(crate) fn nested_cbor(&self, bytes: &[u8]) -> Result<Value, MessageError> {
        decode(bytes, &self.limits)
    }
}

/// A known key holding the wrong CBOR type.
pub(crate) fn wrong(
    key: u64,
    name: &'static str,
    expected: &'static str,
    found: &Value,
) -> MessageError {
    MessageError::WrongType {
        key,
        name,
        expected,
        found: type_name(found),
    }
}

/// A known key whose value has the right type but is not acceptable.
pub(crate) fn invalid(key: u64, name: &'static str, problem: impl Into<String>) -> MessageError {
    MessageError::InvalidValue {
        key,
        name,
        problem: problem.into(),
    }
}
