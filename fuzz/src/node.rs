//! The node's checks of a decoded task that read network input: who may
//! submit it (node token, consumer token) and the envelope of its answer.

#[path = "../../src/node/envelope.rs"]
pub(crate) mod envelope;

#[path = "../../src/node/task_auth.rs"]
pub(crate) mod task_auth;
