//! JSON from the network, read as text: the bytes are checked for UTF-8
//! once, then read as a `str`, which spares serde_json its check of every
//! string it reads (~3 k instructions of a node's task; issue 17). Bytes
//! that are not UTF-8 are read as bytes, so the error and its position are
//! serde_json's own, as before.

use serde::de::DeserializeOwned;

/// `T` from JSON bytes, as `serde_json::from_slice` reads it.
pub(crate) fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}
