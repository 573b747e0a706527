//! Peer-exchange bodies (`POST /v1/peers` and its answer) as a node reads
//! them; see `src/targets/gossip.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::gossip::run(data));
