//! Fuzzes the ProBFT message decoder and a replica's handling of what decodes; the
//! body is `dwcp_consensus::fuzzing::probft_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_consensus::fuzzing::probft_message(data);
});
