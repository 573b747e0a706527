//! The consumer's decoders: the endpoint guard's form rules, sealing for a
//! discovered node and the judging of its answer, candidate order.

/// `client::guard` without the resolver and the redirect policy (which
/// need reqwest): the rules every discovered endpoint passes.
#[path = "../../src/client/guard/rules.rs"]
pub(crate) mod guard;

#[path = "../../src/client/judge.rs"]
pub(crate) mod judge;

/// `Verdict`, the backoff, and `Retry-After` (read through the reqwest
/// shim's `http` header types).
#[path = "../../src/client/retry.rs"]
pub(crate) mod retry;

#[path = "../../src/client/seal.rs"]
pub(crate) mod seal;

#[path = "../../src/client/selection.rs"]
pub(crate) mod selection;
