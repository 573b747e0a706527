//! What the decoders use of the main crate's `server` module: the JSON
//! decoding rules of request bodies, and the JSON error answer.

/// Stands in for `src/server/api_error.rs` (its `IntoResponse` needs axum).
pub(crate) mod api_error;

/// `server::request` without the axum extractors: `decode_json`, the 400/422
/// rules every JSON body goes through, and `BodyError`.
pub(crate) mod request;
