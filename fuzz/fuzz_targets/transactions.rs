//! Fuzzes the binary transaction-list decoder; the body is `dwcp_core::fuzzing::transactions`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_core::fuzzing::transactions(data);
});
