//! DWCP consensus engines, each a deterministic sans-IO state machine behind
//! [`dwcp_core::Engine`], and the deterministic simulator that tests them.

pub mod bullshark;
pub mod dedup;
pub mod fuzzing;
pub mod pbft;
pub mod probft;
pub mod registry;
pub mod sim;
pub mod statement;
pub mod tpbft;
