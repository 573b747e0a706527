//! An engine's JSON answer as the node relays it; see
//! `src/targets/engine_answer.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::engine_answer::run(data));
