//! Fuzzes the Bullshark message decoder and a node's handling of what decodes; the
//! body is `dwcp_consensus::fuzzing::bullshark_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dwcp_consensus::fuzzing::bullshark_message(data);
});
