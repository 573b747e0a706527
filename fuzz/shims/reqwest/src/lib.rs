//! `reqwest::header` as the mounted files name it: reqwest re-exports the
//! `http` crate's header module there, so the types are reqwest's own.

/// The `http` crate's header types, as `reqwest::header` re-exports them.
pub mod header {
    pub use http::header::*;
}
