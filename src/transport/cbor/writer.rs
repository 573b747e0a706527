//! `MapWriter`: builds a CBOR map with integer keys and writes it
//! deterministically: keys ascending (for unsigned integers, numeric order is
//! the RFC 8949 §4.2.1 bytewise order of their encodings), definite lengths,
//! and ciborium-ll's shortest forms for integers, lengths and floats.

use bytes::Bytes;
use ciborium::Value;

/// An integer-keyed map under construction.
#[derive(Debug, Default)]
pub(crate) struct MapWriter {
    entries: Vec<(u64, Value)>,
}

impl MapWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (a later call for the same key replaces the earlier one).
    pub(crate) fn put(&mut self, key: u64, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    /// Sets `key` when `value` is `Some`.
    pub(crate) fn opt<T: Into<Value>>(&mut self, key: u64, value: Option<T>) -> &mut Self {
        if let Some(value) = value {
            self.put(key, value);
        }
        self
    }

    /// The map as a CBOR value, keys ascending.
    pub(crate) fn into_value(mut self) -> Value {
        self.entries.sort_unstable_by_key(|(k, _)| *k);
        Value::Map(
            self.entries
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    }

    /// The map's CBOR bytes.
    pub(crate) fn finish(self) -> Bytes {
        Bytes::from(to_bytes(&self.into_value()))
    }
}

/// Encodes a value. Maps are written in the order they hold, so callers
/// build them sorted ([`MapWriter`], `from_json`).
pub(crate) fn to_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and a Value has no custom serialisation
    // that could report an error; this is not reachable from any input.
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into a Vec is infallible");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_ascending_with_shortest_integers() {
        let mut w = MapWriter::new();
        w.put(24, "t").put(1, 1u64).put(300, true).put(1, 2u64);
        w.opt::<u64>(7, None);
        // {1: 2, 24: "t", 300: true}
        assert_eq!(hex::encode(w.finish()), "a301021818617419012cf5");
    }
}
