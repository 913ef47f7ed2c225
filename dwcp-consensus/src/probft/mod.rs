//! ProBFT (D. Avelãs, H. Heydari, E. Alchieri, T. Distler, A. Bessani,
//! "Probabilistic Byzantine Fault Tolerance", PODC 2024, pp. 170–181): leader-based
//! BFT whose PREPARE and COMMIT votes go to VRF-chosen samples of `s = ⌈o·q⌉`
//! replicas instead of to everyone, and whose quorums are `q = ⌈l·√n⌉` matching
//! votes, for O(n√n) messages with safety and liveness holding with high
//! probability.
//!
//! Only the paper's abstract was available; the choices below follow
//! `notes/probft.md` and issue 19 and say where they are made. The engine is not
//! written yet. What exists:
//!
//! - [`binomial`]: the one routine behind every probability, [`Binomial`] tails
//!   accurate to many digits far into the tail.

pub mod binomial;

pub use binomial::Binomial;
