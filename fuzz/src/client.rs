//! The consumer's decoders: the endpoint guard's form rules, sealing for a
//! discovered node, the judging of its answer and the replies built from
//! it, candidate order.

/// `chat()`'s payload and reply.
#[path = "../../src/client/chat.rs"]
pub(crate) mod chat;

/// `complete()`'s payload and reply.
#[path = "../../src/client/complete.rs"]
pub(crate) mod complete;

/// `embed()`'s payload and reply.
#[path = "../../src/client/embed.rs"]
pub(crate) mod embed;

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
