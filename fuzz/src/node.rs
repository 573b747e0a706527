//! The node's checks of a decoded task that read network input: who may
//! submit it (node token, consumer token), the envelope of its answer, and
//! an engine's JSON answer relayed into it as text.

#[path = "../../src/node/answer.rs"]
pub(crate) mod answer;

#[path = "../../src/node/envelope.rs"]
pub(crate) mod envelope;

#[path = "../../src/node/task_auth.rs"]
pub(crate) mod task_auth;

#[path = "../../src/node/relayed.rs"]
pub(crate) mod relayed;
