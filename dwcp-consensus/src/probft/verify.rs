//! Checking what ProBFT replicas send: leader-signed headers, sampled votes
//! (signature, and the VRF proof that the receiver is in the sender's sample) and
//! certificates. VRF work is the costly part (about 0.2–0.6 ms per proof on our
//! machines), so each sender's sample for a `(view, phase)` is proved once and
//! verified once per receiver, then cached.

use super::messages::{Certificate, Equivocation, Header, SampledVote, Vote};
use super::sample::{alpha, sample, Phase, Sample};
use crate::pbft::batch_digest;
use dwcp_core::crypto::VrfProof;
use dwcp_core::{Committee, Digest, NodeId, NodeKeys, Signed, View};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Verified samples kept per sender, view and phase before old views are dropped.
const MAX_CACHED: usize = 1 << 16;

/// The instance and epoch seed of the VRF input ([`alpha`]) for `committee`.
fn alpha_context(committee: &Committee) -> (Digest, Digest) {
    let keys: Vec<&[u8]> = committee
        .members()
        .iter()
        .flat_map(|m| [&m.key.0[..], &m.vrf_key.0[..]])
        .collect();
    (
        Digest::of(b"dwcp probft instance v1"),
        Digest::of_parts("dwcp probft committee v1", &keys),
    )
}

/// Replica `keys.id`'s sample of `s` recipients for its votes of `phase` in
/// `view`, with the VRF proof of it: what every replica computes for itself, and
/// what a scripted adversary computes for the keys it holds.
pub fn vote_sample(
    committee: &Committee,
    keys: &NodeKeys,
    s: usize,
    view: View,
    phase: Phase,
) -> Option<(VrfProof, Sample)> {
    let (instance, seed) = alpha_context(committee);
    let (out, proof) = committee.vrf_prove(keys, &alpha(&instance, &seed, view, phase));
    let sample = sample(&out, keys.id.index(), committee.size(), s).ok()?;
    Some((proof, sample))
}

/// Checks statements against the committee, with its quorum and sample sizes.
pub struct Checker {
    committee: Committee,
    /// Matching votes from other replicas that make a quorum.
    pub q: usize,
    /// Recipients of each vote.
    pub s: usize,
    instance: Digest,
    seed: Digest,
    samples: HashMap<(NodeId, View, Phase), (VrfProof, Sample)>,
    headers: HashSet<Digest>,
    /// VRF proofs made and verified, and the time that took (for the status).
    pub vrf_work: (u64, u64),
}

impl Checker {
    /// A checker for `committee` with quorum `q` and sample size `s`. The VRF
    /// input names the deployment by the committee's keys: the `instance` and the
    /// `epoch seed` of the design note are both that digest, fixed before any key
    /// could be ground against it.
    pub fn new(committee: Committee, q: usize, s: usize) -> Checker {
        let (instance, seed) = alpha_context(&committee);
        Checker {
            committee,
            q,
            s,
            instance,
            seed,
            samples: HashMap::new(),
            headers: HashSet::new(),
            vrf_work: (0, 0),
        }
    }

    /// The committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// Replicas.
    pub fn n(&self) -> usize {
        self.committee.size()
    }

    fn alpha(&self, view: View, phase: Phase) -> [u8; super::sample::ALPHA_LEN] {
        alpha(&self.instance, &self.seed, view, phase)
    }

    /// This replica's own sample for `(view, phase)` and the proof of it.
    pub fn own_sample(&mut self, keys: &NodeKeys, view: View, phase: Phase) -> (VrfProof, Sample) {
        if let Some(hit) = self.samples.get(&(keys.id, view, phase)) {
            return hit.clone();
        }
        let (out, proof) = self.committee.vrf_prove(keys, &self.alpha(view, phase));
        self.vrf_work.0 += 1;
        let sample = sample(&out, keys.id.index(), self.n(), self.s)
            .expect("a member's index and s ≤ n − 1 were checked at start-up");
        self.remember(keys.id, view, phase, proof, sample.clone());
        (proof, sample)
    }

    /// `sender`'s sample for `(view, phase)`, if `proof` proves it.
    pub fn sample_of(
        &mut self,
        sender: NodeId,
        view: View,
        phase: Phase,
        proof: &VrfProof,
    ) -> Option<Sample> {
        if let Some((p, s)) = self.samples.get(&(sender, view, phase)) {
            return (p == proof).then(|| s.clone());
        }
        let out = self
            .committee
            .vrf_verify(sender, &self.alpha(view, phase), proof)
            .ok()?;
        self.vrf_work.1 += 1;
        let s = sample(&out, sender.index(), self.n(), self.s).ok()?;
        self.remember(sender, view, phase, *proof, s.clone());
        Some(s)
    }

    fn remember(&mut self, who: NodeId, view: View, phase: Phase, proof: VrfProof, s: Sample) {
        if self.samples.len() >= MAX_CACHED {
            let newest = self.samples.keys().map(|k| k.1).max().unwrap_or(0);
            self.samples.retain(|k, _| k.1 + 2 >= newest);
        }
        self.samples.insert((who, view, phase), (proof, s));
    }

    /// Whether `h` is signed by its view's leader.
    pub fn header(&mut self, h: &Signed<Header>) -> bool {
        if h.author() != self.committee.leader(h.value().view) {
            return false;
        }
        if self.headers.contains(h.digest()) {
            return true;
        }
        if h.verify(&self.committee).is_err() {
            return false;
        }
        if self.headers.len() >= MAX_CACHED {
            self.headers.clear();
        }
        self.headers.insert(*h.digest());
        true
    }

    /// Whether `v` is a well-formed vote of its author for its header, sent to a
    /// sample that holds `receiver`.
    pub fn vote(&mut self, v: &SampledVote, receiver: NodeId) -> bool {
        let (h, x) = (v.header.value(), v.vote.value());
        if x.view != h.view || x.seq != h.seq || x.digest != h.digest || !self.header(&v.header) {
            return false;
        }
        self.counted(&v.vote, &v.proof, receiver)
    }

    /// Whether `vote` verifies and `receiver` (not its author) is in its author's
    /// sample for its view and phase.
    fn counted(&mut self, vote: &Signed<Vote>, proof: &VrfProof, receiver: NodeId) -> bool {
        let x = vote.value();
        if vote.author() == receiver || vote.verify(&self.committee).is_err() {
            return false;
        }
        self.sample_of(vote.author(), x.view, x.phase, proof)
            .is_some_and(|s| s.contains(receiver.index()))
    }

    /// Whether `c` proves what it claims: a leader-signed header whose digest is
    /// its batch's, and at least `q` distinct replicas other than the holder voting
    /// for it in one phase, each with the holder in its sample.
    pub fn certificate(&mut self, c: &Certificate) -> bool {
        let h = *c.header();
        let Some(phase) = c.phase() else {
            return false;
        };
        if !self.header(&c.proposal.header) || batch_digest(&c.proposal.batch) != h.digest {
            return false;
        }
        let mut voters = BTreeSet::new();
        for (v, proof) in &c.votes {
            let x = v.value();
            if x.phase != phase
                || x.view != h.view
                || x.seq != h.seq
                || x.digest != h.digest
                || !voters.insert(v.author())
                || !self.counted(v, proof, c.holder)
            {
                return false;
            }
        }
        voters.len() >= self.q
    }

    /// Whether `e` shows one leader's two headers for one view and sequence number
    /// with different digests.
    pub fn equivocation(&mut self, e: &Equivocation) -> bool {
        let (a, b) = (e.a.value(), e.b.value());
        a.view == b.view
            && a.seq == b.seq
            && a.digest != b.digest
            && self.header(&e.a)
            && self.header(&e.b)
    }
}
