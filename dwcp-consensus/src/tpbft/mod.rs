//! T-PBFT (S. Gao, T. Yu, J. Zhu, W. Cai, "T-PBFT: An EigenTrust-Based Practical
//! Byzantine Fault Tolerance Consensus Algorithm", *China Communications* 16(12),
//! 2019): PBFT run by a consensus group of high-trust nodes, where trust is
//! EigenTrust global trust (Kamvar, Schlosser, Garcia-Molina, WWW 2003) computed
//! from the transactions between nodes, and a *primary group* replaces PBFT's single
//! primary so that view changes become less likely.
//!
//! Only the paper's abstract was available; what it leaves open (group sizes, how
//! the primary group is drawn, which evidence feeds trust) is decided here and
//! documented where it is decided.
//!
//! This module holds the foundation so far: deterministic fixed-point EigenTrust
//! ([`eigentrust`]) and the per-epoch choice of committee and primary group
//! ([`selection`]), both pure functions every node evaluates to the same result.
//! The engine follows.

pub mod eigentrust;
pub mod selection;

pub use eigentrust::{
    reference_global_trust, Interactions, LocalTrust, Normalised, Trust, TrustError, TrustParams,
};
pub use selection::{
    committee, committee_digest, committee_size_for, primary_group, DEFAULT_COMMITTEE_SIZE,
    DEFAULT_PRIMARY_GROUP_SIZE,
};

#[cfg(test)]
mod tests;
