//! Bullshark (Spiegelman et al., CCS '22) on a Narwhal-style certified DAG
//! (Danezis et al., EuroSys '22).
//!
//! Each round every node proposes a [`Header`] naming batches and at least `2f+1`
//! certificates of the previous round; other nodes answer with a [`HeaderVote`];
//! `2f+1` votes make a [`Certificate`], a vertex of the [`Dag`]. A [`CommitRule`]
//! ([`Bullshark`] here) reads the DAG as it grows and outputs an identical sequence
//! of [`CommittedSubDag`]s on every honest node, with no extra messages.
//!
//! This module holds the data types, the DAG store and the commit rule. The engine
//! (workers, proposer, synchronisation, persistence) builds on them.

mod certificate;
mod commit;
mod dag;
mod header;
mod leader;
#[cfg(test)]
pub(crate) mod notation;
mod ordering;
mod vote;

pub use certificate::{check_header, Certificate, CertificateError};
pub use commit::{CommitRule, CommittedSubDag};
pub use dag::{Dag, DagError, Inserted};
pub use header::Header;
pub use leader::{LeaderSchedule, RoundRobin};
pub use ordering::Bullshark;
pub use vote::HeaderVote;
