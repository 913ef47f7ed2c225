//! ProBFT (D. Avelãs, H. Heydari, E. Alchieri, T. Distler, A. Bessani,
//! "Probabilistic Byzantine Fault Tolerance", PODC 2024, pp. 170–181): leader-based
//! BFT whose PREPARE and COMMIT votes go to VRF-chosen samples of `s = ⌈o·q⌉`
//! replicas instead of to everyone, and whose quorums are `q = ⌈l·√n⌉` matching
//! votes, for O(n√n) messages with safety and liveness holding with high
//! probability.
//!
//! Only the paper's abstract was available; the choices below follow
//! `notes/probft.md` and issue 19 and say where they are made.
//!
//! The replica is [`Probft`]. Its parts:
//!
//! - [`params`]: the configuration (`n`, `f_max`, `l`, `o`, `ε_safe`, `π_live`) and
//!   the start-up check [`ProbftParams::check`], which refuses a configuration
//!   whose safety risk `P[Bin(2·f_max, p) ≥ q]` exceeds `ε_safe` or whose
//!   liveness `P[Bin(n − f_max − 1, p) ≥ q]` falls below `π_live`, with
//!   `p = s/(n − 1)` exact; the counting rule (a replica's own vote never counts
//!   towards `q`); the cost model against PBFT; the parameter [`table`] and the
//!   [`cheapest`] accepted setting. `f_max = ⌊(n − 1)/3⌋` never passes, on
//!   purpose (the "view-change wall"). [`ProbftConfig`] takes `f_max = ⌊n/5⌋` and
//!   the cheapest accepted `l`, `o` unless told otherwise.
//! - [`mod@sample`]: the VRF input [`alpha`] (tag, instance, epoch seed, view, phase;
//!   no value, no sequence number) and the [`sample()`] of recipients that a VRF
//!   output selects, by partial Fisher–Yates over ChaCha20, with fixed test vectors.
//! - [`binomial`]: the one routine behind every probability, [`Binomial`] tails
//!   accurate to many digits far into the tail.
//! - [`messages`] and [`verify`]: what replicas send, and the checks a receiver
//!   makes (leader-signed headers, each vote's signature and the VRF proof that
//!   the receiver is in its sender's sample, certificates), with each sender's
//!   sample verified once per view and phase and cached.
//!
//! # The protocol as built (design note, "recommended design")
//!
//! - **One slot at a time.** The leader of view `v` (`v mod n`) proposes batch `B`
//!   for sequence number `s` to every replica with a signed header `(v, s,
//!   digest(B))`; once prepared on it, it proposes `s + 1`, which replicas hold until
//!   they decided `s`. A view change therefore concerns one slot.
//! - **Votes to samples.** Each replica sends its PREPARE, and once prepared its
//!   COMMIT, to its VRF sample for `(view, phase)`: one VRF proof per view and
//!   phase covers every slot of the view (the sample depends on neither the value
//!   nor the slot, and is fixed before the leader proposes), so VRF work is two
//!   proofs per view per replica and one verification per sender, view and phase.
//!   The flip side: a replica whose samples bring it too few votes in a view misses
//!   every decision of that view on its own, and catches up from a peer's
//!   decision certificate instead (its per-view decide rate is the quantity the
//!   start-up check bounds).
//! - **Prepared** = the proposal and `q` matching PREPAREs from other replicas;
//!   **decided** = prepared, `q` matching COMMITs, and no evidence. Every vote
//!   carries the leader-signed header, so two headers for one view and slot are
//!   proof of equivocation: a replica holding one stops voting in that view,
//!   passes the proof on and moves to the next view (the split-vote hazard; the
//!   positive control `a_split_vote_forks_without_the_evidence_rule_and_not_with_it`
//!   shows counting alone forks).
//! - **View change** (`engine/view_change.rs`): VIEW-CHANGE with the sender's last
//!   decision certificate, its strongest certificate for the next slot and any
//!   evidence, to the new leader only; NEW-VIEW with `n − f_max` of them, from which
//!   every replica recomputes the value the leader must propose.
//! - **Catch-up** (`engine/catch_up.rs`): decision certificates prove themselves
//!   (the holder was in each voter's sample); older slots come from peers' stores
//!   and are taken once `f_max + 1` replicas sent the same hash chain.
//! - **Restarts** (`engine/restart.rs`): votes, proposals, the prepared certificate
//!   and the view change are written before the message they back leaves.
//!
//! Safety holds with the probability the start-up check bounds, per replica and
//! view, against `f_max` Byzantine replicas; beyond it (a scheduling adversary at
//! `f` near `n/3`) the design note shows no setting is safe.

pub mod binomial;
mod config;
mod engine;
pub mod messages;
pub mod params;
pub mod sample;
pub mod verify;

pub use binomial::Binomial;
pub use config::ProbftConfig;
pub use engine::{Probft, ProbftError};
pub use messages::ProbftMessage;
pub use params::{
    cheapest, pbft_messages_per_decision, table, Checked, Figures, ParamsError, ProbftParams,
    Rejection, DEFAULT_EPS_SAFE, DEFAULT_PI_LIVE,
};
pub use sample::{alpha, sample, Phase, Sample, SampleError, ALPHA_LEN, ALPHA_TAG};
