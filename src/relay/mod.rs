//! The relay, tier 3 of the reachability ladder (PROTOCOL.md §7.2): a node
//! that cannot be reached directly dials out to a relay-capable node, binds
//! there, and consumers reach it through the relay's HTTP port.
//!
//! - [`RelayLimits`]: the bounds of a relay (sessions, bind rate, calls in
//!   flight, liveness), part of `NodeConfig`.
//! - `server` (feature `iicp-tcp`): the relay side, run by a node with
//!   `NodeConfig::relay_capable`.
//! - `worker` (feature `iicp-tcp`): the worker side, a node nobody can dial
//!   that holds a session open to a relay and serves its tasks there.

mod limits;
#[cfg(feature = "iicp-tcp")]
pub(crate) mod server;
#[cfg(feature = "iicp-tcp")]
pub(crate) mod worker;

pub use limits::{
    DEFAULT_RELAY_BIND_RATE, DEFAULT_RELAY_MAX_SESSIONS, MAX_RELAY_SESSIONS, RelayLimits,
};
