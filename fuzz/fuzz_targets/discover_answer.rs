//! A directory's discover answer as the client reads it; see
//! `src/targets/discover_answer.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::discover_answer::run(data));
