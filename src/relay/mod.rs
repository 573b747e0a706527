//! The relay (PROTOCOL.md §7.2, tier 3): the worker side, a node nobody can
//! dial that holds a session open to a relay and serves its tasks there.

pub(crate) mod worker;
