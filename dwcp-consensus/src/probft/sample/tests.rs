use super::*;
use dwcp_core::crypto::{R255Vrf, Vrf, VrfSecretKey};
use proptest::prelude::*;
use rand::RngCore;

/// A 64-byte output from a counter, standing in for VRF outputs in bulk.
fn beta(i: u64) -> VrfOutput {
    let mut out = [0u8; 64];
    blake3::Hasher::new()
        .update(&i.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    VrfOutput(out)
}

fn draw(beta: &VrfOutput, sender: usize, n: usize, s: usize) -> Vec<usize> {
    sample(beta, sender, n, s)
        .expect("valid")
        .members()
        .to_vec()
}

/// Fixed vectors: computed once with this code. A change here changes which
/// replicas count whose votes, so it must be a new protocol version (a new
/// [`ALPHA_TAG`] and seed context), never a silent edit.
#[test]
fn fixed_vectors() {
    assert_eq!(draw(&VrfOutput([0; 64]), 0, 10, 4), [1, 2, 3, 6]);
    assert_eq!(draw(&beta(1), 3, 16, 6), [0, 1, 4, 9, 10, 13]);
    assert_eq!(
        draw(&beta(2), 99, 100, 20),
        [4, 6, 7, 12, 14, 19, 20, 24, 31, 33, 47, 51, 52, 54, 59, 63, 72, 74, 78, 79]
    );
}

#[test]
fn alpha_layout_is_fixed_width_and_domain_separated() {
    let instance = Digest([0xAA; 32]);
    let seed = Digest([0xBB; 32]);
    let a = alpha(&instance, &seed, 0x0102_0304_0506_0708, Phase::Commit);
    assert_eq!(a.len(), 87);
    assert_eq!(&a[..14], b"dwcp/probft/v1");
    assert_eq!(&a[14..46], &[0xAA; 32]);
    assert_eq!(&a[46..78], &[0xBB; 32]);
    assert_eq!(&a[78..86], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(a[86], 2);
    // Every field changes the input.
    let base = alpha(&instance, &seed, 7, Phase::Prepare);
    for other in [
        alpha(&Digest([0xAB; 32]), &seed, 7, Phase::Prepare),
        alpha(&instance, &Digest([0xBC; 32]), 7, Phase::Prepare),
        alpha(&instance, &seed, 8, Phase::Prepare),
        alpha(&instance, &seed, 7, Phase::Commit),
    ] {
        assert_ne!(base, other);
    }
}

/// The whole chain with the real VRF: prove on `alpha`, verify, sample from the
/// verified output; the prover and the verifier draw the same sample.
#[test]
fn sample_from_a_verified_r255_output() {
    let sk = VrfSecretKey::from_seed([7; 32]);
    let input = alpha(
        &Digest::of(b"instance"),
        &Digest::of(b"epoch 0"),
        3,
        Phase::Prepare,
    );
    let (out, proof) = R255Vrf::prove(&sk, &input);
    let verified = R255Vrf::verify(&sk.public(), &input, &proof).expect("verifies");
    assert_eq!(verified, out);
    let sender = 5;
    let drawn = sample(&verified, sender, 64, 24).expect("valid");
    assert_eq!(drawn, sample(&out, sender, 64, 24).expect("valid"));
    assert_eq!(drawn.len(), 24);
    assert!(!drawn.contains(sender));
    // Pins alpha's layout, the VRF and the sampler together.
    assert_eq!(
        drawn.members(),
        [
            0, 2, 7, 9, 12, 14, 18, 19, 23, 24, 27, 28, 29, 31, 35, 38, 40, 41, 47, 55, 57, 59, 60,
            61
        ]
    );
    // Another phase is another input, hence another sample.
    let commit = alpha(
        &Digest::of(b"instance"),
        &Digest::of(b"epoch 0"),
        3,
        Phase::Commit,
    );
    let (other, _) = R255Vrf::prove(&sk, &commit);
    assert_ne!(sample(&other, sender, 64, 24).expect("valid"), drawn);
}

#[test]
fn edge_sizes_and_errors() {
    let b = beta(9);
    assert!(sample(&b, 2, 10, 0).expect("valid").is_empty());
    let all = draw(&b, 2, 10, 9);
    assert_eq!(all, vec![0, 1, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(draw(&b, 0, 2, 1), vec![1]);
    assert_eq!(
        sample(&b, 10, 10, 3),
        Err(SampleError::SenderOutOfRange { sender: 10, n: 10 })
    );
    assert_eq!(
        sample(&b, 0, 10, 10),
        Err(SampleError::TooLarge { s: 10, n: 10 })
    );
    assert_eq!(
        sample(&b, 0, 0, 0),
        Err(SampleError::SenderOutOfRange { sender: 0, n: 0 })
    );
}

/// A generator that replays fixed words, to drive `draw_below` into its rejection.
struct Replay(Vec<u64>);

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.remove(0)
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        unreachable!("draw_below only calls next_u64")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand::Error> {
        unreachable!("draw_below only calls next_u64")
    }
}

#[test]
fn draw_below_rejects_the_biased_bottom() {
    // 2^64 mod 3 = 1: the word 0 is rejected, 5 gives 5 mod 3.
    assert_eq!(draw_below(&mut Replay(vec![0, 5]), 3), 2);
    // 2^64 mod 10 = 6: words 0..6 are rejected.
    assert_eq!(draw_below(&mut Replay(vec![3, 5, 6]), 10), 6);
    // A power of two rejects nothing.
    assert_eq!(draw_below(&mut Replay(vec![0]), 8), 0);
    assert_eq!(draw_below(&mut Replay(vec![u64::MAX]), 1), 0);
}

/// Each replica other than the sender is picked with frequency `s/(n − 1)`: a
/// chi-square statistic over many outputs, each count scaled by its binomial
/// variance `T·p·(1 − p)`. With 18 degrees of freedom, 42.3 is the 0.1% point.
#[test]
fn each_replica_is_chosen_with_frequency_s_over_n_minus_1() {
    let (n, s, sender, trials) = (20usize, 6usize, 3usize, 40_000u64);
    let mut counts = vec![0u64; n];
    for i in 0..trials {
        for m in draw(&beta(i), sender, n, s) {
            counts[m] += 1;
        }
    }
    assert_eq!(counts[sender], 0);
    let p = s as f64 / (n - 1) as f64;
    let expected = trials as f64 * p;
    let chi2: f64 = (0..n)
        .filter(|&r| r != sender)
        .map(|r| (counts[r] as f64 - expected).powi(2) / (expected * (1.0 - p)))
        .sum();
    assert!(chi2 < 42.3, "chi-square {chi2}, counts {counts:?}");
}

proptest! {
    #[test]
    fn samples_are_distinct_in_range_and_exclude_the_sender(
        seed in any::<u64>(),
        n in 1usize..300,
        sender_frac in 0.0f64..1.0,
        s_frac in 0.0f64..=1.0,
    ) {
        let sender = ((n as f64 * sender_frac) as usize).min(n - 1);
        let s = ((n - 1) as f64 * s_frac) as usize;
        let drawn = sample(&beta(seed), sender, n, s).expect("valid");
        let members = drawn.members();
        prop_assert_eq!(members.len(), s);
        prop_assert!(members.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        prop_assert!(members.iter().all(|&m| m < n && m != sender));
        prop_assert!(!drawn.contains(sender));
        prop_assert!(members.iter().all(|&m| drawn.contains(m)));
    }
}
