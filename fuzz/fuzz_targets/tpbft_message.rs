//! Fuzzes the T-PBFT message decoder and a node's handling of what decodes; the
//! body is `dwcp_consensus::fuzzing::tpbft_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_consensus::fuzzing::tpbft_message(data);
});
