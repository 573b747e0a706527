//! REGISTER, HEARTBEAT and DEREGISTER bodies at the directory, applied to a
//! registry, and its discover answers; see
//! `src/targets/directory_lifecycle.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    iicp_client_fuzz::targets::directory_lifecycle::run(data)
});
