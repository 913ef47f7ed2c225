//! Fuzzes the signed-envelope decoder; the body is `dwcp_core::fuzzing::envelope`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_core::fuzzing::envelope(data);
});
