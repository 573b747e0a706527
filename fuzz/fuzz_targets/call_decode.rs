//! CALL payload decoding on arbitrary bytes: a typed result, never a panic;
//! whatever decodes re-encodes to a CALL that decodes again.

#![no_main]

use iicp_client_fuzz::transport::Call;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = Call::decode(data) {
        let encoded = call.encode();
        Call::decode(&encoded).expect("a re-encoded CALL decodes");
    }
});
