//! The relay's bind messages (RELAY_BIND, the long-poll bind body) and the
//! worker's RELAY_ACK; see `src/targets/relay_bind.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::relay_bind::run(data));
