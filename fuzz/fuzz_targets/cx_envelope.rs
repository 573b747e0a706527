//! IICP-CX envelopes (`iicp_conf`, sealed answers) on the node and the
//! client; see `src/targets/cx_envelope.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::cx_envelope::run(data));
