//! The mesh's gossip decoding: exchange bodies, the judging of each entry,
//! `last_seen` times, signatures, and the peer cache entries go into.

#[path = "../../src/mesh/cache.rs"]
pub(crate) mod cache;

#[path = "../../src/mesh/peer.rs"]
mod peer;
pub use peer::Peer;

#[path = "../../src/mesh/sign.rs"]
pub(crate) mod sign;

#[path = "../../src/mesh/time.rs"]
pub(crate) mod time;

#[path = "../../src/mesh/wire.rs"]
pub(crate) mod wire;
