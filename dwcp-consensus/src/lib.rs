//! Consensus engines and the deterministic simulator.
