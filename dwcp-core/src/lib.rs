//! The shared vocabulary of DWCP: ids, BLAKE3 digests, ed25519 signatures and the
//! VRF, the [`Committee`], the `postcard` wire codec with size bounds, signed
//! envelopes, the sans-IO [`Engine`] contract, and [`storage`].

pub mod application;
pub mod codec;
pub mod committee;
pub mod crypto;
mod digest;
pub mod engine;
pub mod fuzzing;
mod ids;
pub mod millis;
pub mod signed;
pub mod storage;
pub mod transactions;

pub use application::{AcceptAll, Refused, SharedValidator, Validator};
pub use committee::{Committee, Member, NodeKeys};
pub use digest::Digest;
pub use engine::{
    Checkpoint, Committed, CommitteeRole, CommitteeStatus, Effect, Effects, Engine, EngineStatus,
    Input, MessageKind, ProposalCommitted, Record, Recovered, TimerId, WalKey,
};
pub use ids::{NodeId, Round, Seq, Time, View};
pub use signed::{Signable, Signed};
