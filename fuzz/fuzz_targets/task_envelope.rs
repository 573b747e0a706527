//! The task envelope JSON a node decodes (`POST /v1/task`); see
//! `src/targets/task_envelope.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::task_envelope::run(data));
