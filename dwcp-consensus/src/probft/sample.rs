//! The VRF input of a vote and the sample of recipients its output selects.
//!
//! A replica proves its VRF on [`alpha`] once per `(view, phase)` and sends each
//! PREPARE (COMMIT) of that view to the [`sample`] drawn from the output `β`. A
//! receiver recomputes the sample from the verified `β` and counts the vote only if
//! it is a member.
//!
//! **Input.** `α = "dwcp/probft/v1" ‖ instance ‖ epoch seed ‖ view ‖ phase`, every
//! field fixed-width ([`ALPHA_LEN`] bytes in all), so distinct fields never give
//! the same bytes. The tag and instance keep a proof from being reused by another protocol or
//! deployment; the epoch seed (fixed after the VRF keys are registered) stops a
//! replica from choosing its key to get a convenient sample. The proposed value is
//! never in `α`: a replica cannot try values until one gives it a sample it likes.
//!
//! **No sequence number.** One proof per `(view, phase)` covers every sequence
//! number of the view, which amortises VRF work (0.2–0.6 ms per prove or verify)
//! over the window of slots in flight: a sender uses one sample for all slots of a
//! view. That gives the adversary nothing: the value is not in `α`, and the sample
//! is fixed by `(view, phase)` before the leader proposes anything in the view, so
//! no choice of value or slot moves it. What the analysis needs is independence
//! across senders, which distinct VRF keys give. Slots of one view do share their
//! luck (a replica short of votes in one slot is short in all of them), which is
//! why [`super::params`] states its figures per view, not per slot.
//!
//! **Sampler.** ChaCha20 seeded with `BLAKE3-derive_key("dwcp probft sample v1", β)`
//! drives a partial Fisher–Yates shuffle of the `n − 1` replicas other than the
//! sender, giving `s` distinct recipients, each replica with probability exactly
//! `s/(n − 1)` ([`super::params`] relies on that). Indices come from our own
//! rejection sampling on `next_u64`, not `rand`'s `gen_range` or `shuffle`, whose
//! output may change between releases; the fixed vectors in the tests catch any
//! change of the algorithm.

use dwcp_core::crypto::VrfOutput;
use dwcp_core::{Digest, View};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::HashMap;

/// The protocol tag that starts every VRF input.
pub const ALPHA_TAG: &[u8; 14] = b"dwcp/probft/v1";

/// Length of a VRF input: tag, instance, epoch seed, view, phase.
pub const ALPHA_LEN: usize = ALPHA_TAG.len() + 32 + 32 + 8 + 1;

/// The BLAKE3 key-derivation context that turns a VRF output into a ChaCha20 seed.
const SEED_CONTEXT: &str = "dwcp probft sample v1";

/// The sampled voting phases, each with its own VRF input and sample.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Phase {
    /// PREPARE votes.
    Prepare,
    /// COMMIT votes.
    Commit,
}

impl Phase {
    /// The byte that stands for the phase in [`alpha`].
    fn tag(self) -> u8 {
        match self {
            Phase::Prepare => 1,
            Phase::Commit => 2,
        }
    }
}

/// The VRF input of a replica's votes of one `phase` in `view`:
/// `"dwcp/probft/v1" ‖ instance ‖ epoch_seed ‖ view (u64 little-endian) ‖ phase`.
///
/// `instance` names the deployment (the engine instance); `epoch_seed` is the
/// digest of the block that fixed the committee and its VRF keys.
pub fn alpha(instance: &Digest, epoch_seed: &Digest, view: View, phase: Phase) -> [u8; ALPHA_LEN] {
    let mut out = [0u8; ALPHA_LEN];
    let fields: [&[u8]; 5] = [
        ALPHA_TAG,
        &instance.0,
        &epoch_seed.0,
        &view.to_le_bytes(),
        &[phase.tag()],
    ];
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    out
}

/// Why a sample cannot be drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// The sender is not one of the `n` replicas.
    #[error("sender {sender} is not a replica of a committee of {n}")]
    SenderOutOfRange {
        /// The sender's index.
        sender: usize,
        /// Replicas.
        n: usize,
    },
    /// More recipients than replicas other than the sender.
    #[error("a sample of {s} exceeds the {} replicas other than the sender", n.saturating_sub(1))]
    TooLarge {
        /// The sample size asked for.
        s: usize,
        /// Replicas.
        n: usize,
    },
}

/// The recipients of a sender's votes of one `(view, phase)`: distinct replica
/// indices, never the sender, in ascending order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sample {
    members: Vec<usize>,
}

impl Sample {
    /// The recipients, ascending.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// Whether `replica` is a recipient: a receiver counts the vote only if so.
    pub fn contains(&self, replica: usize) -> bool {
        self.members.binary_search(&replica).is_ok()
    }

    /// Number of recipients, `s`.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no recipients (only when `s = 0`).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// The `s` recipients that VRF output `beta` selects for `sender` among `n`
/// replicas: a partial Fisher–Yates shuffle of the other `n − 1` indices driven by
/// ChaCha20 seeded from `beta`.
pub fn sample(beta: &VrfOutput, sender: usize, n: usize, s: usize) -> Result<Sample, SampleError> {
    if sender >= n {
        return Err(SampleError::SenderOutOfRange { sender, n });
    }
    let others = n - 1;
    if s > others {
        return Err(SampleError::TooLarge { s, n });
    }
    let mut rng = ChaCha20Rng::from_seed(blake3::derive_key(SEED_CONTEXT, &beta.0));
    // Position i of the virtual array 0..others holds i unless a swap moved
    // something else there; only the swapped positions are stored, so drawing costs
    // O(s), not O(n). Position i is final once drawn and never read again.
    let mut moved: HashMap<usize, usize> = HashMap::with_capacity(s);
    let mut members = Vec::with_capacity(s);
    for i in 0..s {
        let j = i + draw_below(&mut rng, (others - i) as u64) as usize;
        let at_i = moved.get(&i).copied().unwrap_or(i);
        let at_j = moved.get(&j).copied().unwrap_or(j);
        moved.insert(j, at_i);
        members.push(at_j);
    }
    // Positions skip the sender: position k is replica k below it, k + 1 from it on.
    for m in &mut members {
        if *m >= sender {
            *m += 1;
        }
    }
    members.sort_unstable();
    Ok(Sample { members })
}

/// A uniform integer in `0..bound` (`bound ≥ 1`): draws `x` from `next_u64` until
/// `x ≥ 2^64 mod bound`, so the accepted range is a whole number of copies of
/// `0..bound`, and returns `x mod bound`.
fn draw_below(rng: &mut impl RngCore, bound: u64) -> u64 {
    let reject_below = bound.wrapping_neg() % bound;
    loop {
        let x = rng.next_u64();
        if x >= reject_below {
            return x % bound;
        }
    }
}

#[cfg(test)]
mod tests;
