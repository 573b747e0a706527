//! The native transport's decoders, compiled from the main crate's own source
//! files (`../src/transport/`, `../src/secret.rs`) without the rest of
//! iicp-client.
//!
//! Why not `iicp-client = { path = ".." }`: every module but `transport` is
//! compiled unconditionally there, and its dependencies (axum, hyper,
//! reqwest + rustls, rusqlite with bundled SQLite, clap, …) are not optional,
//! so even `default-features = false` builds the whole stack under
//! AddressSanitizer and coverage instrumentation. The decoders need only
//! bytes, tokio-util's codec traits, ciborium and serde_json, so this crate
//! mounts the same files with `#[path]`: the fuzzed code is the shipped code,
//! byte for byte, and the instrumented build is a fraction of the size.
//!
//! Left out: `transport/client.rs` (the consumer's connection, which needs
//! the error type, the wire types and tokio's network stack) and the
//! module's `#[cfg(test)]` blocks (never compiled here). The module layout
//! below mirrors `src/transport/mod.rs`, whose files refer to each other as
//! `crate::transport::…`; a new module there that the decoders use shows up
//! here as a compile error, which the CI fuzz step catches.

#![allow(dead_code, unused_imports)]

#[path = "../../src/secret.rs"]
mod secret;

pub use secret::Secret;

/// `iicp_client::transport` without the client.
pub mod transport;
