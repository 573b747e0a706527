//! `axum::http` as the mounted files name it: axum re-exports the `http`
//! crate there, so the types are the very ones axum uses.

/// The `http` crate, as `axum::http` re-exports it.
pub mod http {
    pub use http::StatusCode;
}
