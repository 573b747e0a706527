//! `server::request` without the axum extractors: `decode_json`, the 400/422
//! rules every JSON body goes through (`src/server/request/json.rs`), and
//! `BodyError` (`src/server/request/body_error.rs`), which the node's
//! `Answer` names.

#[path = "../../../../src/server/request/json.rs"]
mod json;
pub(crate) use json::decode_json;

#[path = "../../../../src/server/request/body_error.rs"]
mod body_error;
pub(crate) use body_error::BodyError;
