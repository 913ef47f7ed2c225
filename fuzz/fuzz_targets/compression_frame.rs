//! Fuzzes the compression frame decoder: arbitrary bytes must never panic or
//! allocate past the decoder's bound. The body is shared with the unit tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_ml::compression::frame::fuzz_decode(data);
});
