//! The decoders of iicp-client that take network input, compiled from the
//! main crate's own source files (`../src/…`, mounted with `#[path]`)
//! without the rest of iicp-client, and the fuzz targets' harnesses
//! ([`targets`]).
//!
//! Why not `iicp-client = { path = ".." }`: every module is compiled there,
//! and the crate's dependencies (axum, hyper, reqwest + rustls, rusqlite
//! with bundled SQLite, clap, …) are not optional, so even
//! `default-features = false` builds the whole stack under
//! AddressSanitizer and coverage instrumentation (23 min cold, README.md).
//! The decoders need serde_json, ciborium, url, regex, aho-corasick and the
//! RustCrypto/dalek crates, so this crate mounts the same files: the fuzzed
//! code is the shipped code, byte for byte.
//!
//! The module tree mirrors the main crate's (`crate::wire`,
//! `crate::directory::registry`, …), because the mounted files refer to each
//! other by those paths; a module holds only the files its decoders need.
//! What stands in for the rest, and why, is in the modules below:
//! `server::api_error` (the JSON error answer, without axum's response
//! types), `directory::store` (SQLite and PostgreSQL persistence, never
//! opened here) and
//! the `axum`/`reqwest` shims of `shims/` (the `http` types those crates
//! re-export). A mounted file that starts to use something else shows up as
//! a compile error, which the CI fuzz step reports.
//!
//! `#[cfg(test)]` blocks of the mounted files are never compiled here.

#![allow(dead_code, unused_imports)]

#[path = "../../src/secret.rs"]
mod secret;
pub use secret::Secret;

#[path = "../../src/error.rs"]
mod error;
pub use error::{IicpError, Result};

#[path = "../../src/key_file.rs"]
mod key_file;

/// Random UUIDs (the directory's registry names nodes with them).
#[path = "../../src/ids.rs"]
mod ids;

/// The one lock-poisoning policy (the registry, the peer cache and task
/// auth take their locks through it).
#[path = "../../src/sync.rs"]
mod sync;

/// `iicp_client::cx`: IICP-CX sealing and opening.
#[path = "../../src/cx/mod.rs"]
pub mod cx;

/// `iicp_client::token`: consumer tokens and relay bind tickets.
#[path = "../../src/token.rs"]
pub mod token;

/// `iicp_client::wire`: every message's serde types, intent URNs, the policy
/// guard, error bodies and endpoint rules.
#[path = "../../src/wire/mod.rs"]
pub mod wire;

/// `iicp_client::transport` without the client: frame codec and typed CBOR
/// messages.
pub mod transport;

mod client;
mod directory;
mod mesh;
mod node;
mod relay;
mod server;

pub mod targets;
