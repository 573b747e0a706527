//! `relay::server` with only its admission rules: the two bind decoders,
//! the refusals and their answers.

#[path = "../../../src/relay/server/admission.rs"]
pub(crate) mod admission;
