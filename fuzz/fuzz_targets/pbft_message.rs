//! Fuzzes the PBFT message decoder and a replica's handling of what decodes; the
//! body is `dwcp_consensus::fuzzing::pbft_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_consensus::fuzzing::pbft_message(data);
});
