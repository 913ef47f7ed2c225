//! Fuzzes the T-PBFT evidence decoder and verification; the body is
//! `dwcp_consensus::fuzzing::tpbft_evidence`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_consensus::fuzzing::tpbft_evidence(data);
});
