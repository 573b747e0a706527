//! Consumer tokens, relay bind tickets and the directory key as a node
//! reads them; see `src/targets/consumer_token.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::consumer_token::run(data));
