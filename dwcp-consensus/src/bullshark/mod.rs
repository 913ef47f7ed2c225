//! Bullshark (Spiegelman et al., CCS '22) on a Narwhal-style certified DAG
//! (Danezis et al., EuroSys '22).
//!
//! Each round every node proposes a [`Header`] naming batches and at least `2f+1`
//! certificates of the previous round; other nodes answer with a [`HeaderVote`];
//! `2f+1` votes make a [`Certificate`], a vertex of the [`Dag`]. A [`CommitRule`]
//! ([`Bullshark`] here) reads the DAG as it grows and outputs an identical sequence
//! of [`CommittedSubDag`]s on every honest node, with no extra messages.
//!
//! [`BullsharkEngine`] puts it all behind the sans-IO [`dwcp_core::Engine`]
//! contract: a worker sealing [`Batch`]es, a primary proposing and voting,
//! synchronisation of missing certificates and batches, persistence, and
//! [`transfer`] of the committed order to a node behind garbage collection.
//!
//! Everything a node vouches for is durable: like Narwhal's worker, it stores a
//! batch (its own or a peer's) before acknowledging it or voting for a header that
//! names it, and it stores every certificate of its DAG, its own headers and votes,
//! and the commit rule's state. Garbage collection prunes these records with the
//! DAG. A committee that loses power all at once restarts from its stores and
//! continues the same order without losing an acknowledged batch.

mod batch;
mod certificate;
mod commit;
mod config;
mod dag;
mod engine;
mod header;
mod leader;
mod messages;
#[cfg(test)]
pub(crate) mod notation;
mod ordering;
pub mod transfer;
mod vote;

pub use batch::{Batch, BatchError, BatchMaker};
pub use config::BullsharkConfig;
pub use engine::{BullsharkEngine, BullsharkError, BullsharkStats};
pub use messages::{BullsharkMessage, MAX_REQUEST};

pub use certificate::{check_header, Certificate, CertificateError};
pub use commit::{CommitRule, CommittedSubDag, RuleState};
pub use dag::{Dag, DagError, Inserted};
pub use header::Header;
pub use leader::{LeaderSchedule, RoundRobin};
pub use ordering::Bullshark;
pub use vote::HeaderVote;
