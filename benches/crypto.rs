//! Criterion benches of the cryptographic and wire-format hot paths, through the
//! public API of `dwcp-core`: signing, single and batch verification, the insecure
//! stand-in scheme, the VRF, BLAKE3, and signed-envelope encode/decode/verify.
//!
//! Run: `cargo bench --bench crypto` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick pass).

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dwcp::core::codec::{decode, encode, DEFAULT_MAX_FRAME};
use dwcp::core::crypto::{R255Vrf, SignatureScheme, Vrf};
use dwcp::core::{Committee, Digest, NodeId, Seq, Signable, Signed, View};
use serde::{Deserialize, Serialize};

/// A consensus-vote-like payload (what PBFT prepares and commits carry).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Vote {
    view: View,
    seq: Seq,
    digest: Digest,
}

impl Signable for Vote {
    const DOMAIN: &'static str = "dwcp bench vote v1";
}

/// A batch of client transactions as it travels in a proposal.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Batch {
    txs: Vec<Bytes>,
}

impl Signable for Batch {
    const DOMAIN: &'static str = "dwcp bench batch v1";
}

const TX_SIZE: usize = 512;
const BATCH_TXS: usize = 1000;

fn signatures(c: &mut Criterion) {
    for (scheme, name) in [
        (SignatureScheme::Ed25519, "ed25519"),
        (SignatureScheme::InsecureFast, "insecure_fast"),
    ] {
        let (committee, keys) = Committee::deterministic(4, scheme, 1);
        let digest = Digest::of(b"a 32-byte digest is what gets signed");
        let sig = keys[0].signing.sign(&digest);
        assert!(committee.verify(NodeId(0), &digest, &sig).is_ok());

        let mut g = c.benchmark_group(name);
        g.bench_function("sign", |b| {
            b.iter(|| keys[0].signing.sign(black_box(&digest)))
        });
        g.bench_function("verify", |b| {
            b.iter(|| committee.verify(NodeId(0), black_box(&digest), black_box(&sig)))
        });
        g.finish();
    }
}

fn batch_verify(c: &mut Criterion) {
    const SIZES: [usize; 4] = [16, 64, 256, 1024];
    // One committee big enough for the largest batch: distinct signers of one
    // digest, as in a quorum certificate.
    let (committee, keys) = Committee::deterministic(1024, SignatureScheme::Ed25519, 2);
    let digest = Digest::of(b"certified block");
    let items: Vec<(NodeId, Digest, _)> = keys
        .iter()
        .map(|k| (k.id, digest, k.signing.sign(&digest)))
        .collect();

    let mut g = c.benchmark_group("ed25519_batch_verify");
    for n in SIZES {
        let batch = &items[..n];
        assert!(committee.verify_batch(batch).is_ok());
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(n.to_string(), |b| {
            b.iter(|| committee.verify_batch(black_box(batch)))
        });
    }
    g.finish();
}

fn vrf(c: &mut Criterion) {
    let (_, keys) = Committee::deterministic(1, SignatureScheme::Ed25519, 3);
    let sk = &keys[0].vrf;
    let pk = sk.public();
    let alpha = b"probft view 42 sample";
    let (out, proof) = R255Vrf::prove(sk, alpha);
    assert_eq!(R255Vrf::verify(&pk, alpha, &proof), Ok(out));

    let mut g = c.benchmark_group("vrf_r255");
    g.bench_function("prove", |b| b.iter(|| R255Vrf::prove(sk, black_box(alpha))));
    g.bench_function("verify", |b| {
        b.iter(|| R255Vrf::verify(&pk, black_box(alpha), black_box(&proof)))
    });
    g.finish();
}

fn blake3(c: &mut Criterion) {
    let mut g = c.benchmark_group("blake3");
    for (len, name) in [(512, "512B"), (1 << 20, "1MiB")] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| b.iter(|| Digest::of(black_box(&data))));
    }
    g.finish();
}

fn envelopes(c: &mut Criterion) {
    let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 4);
    let signer = &keys[1];

    let vote = Signed::new(
        Vote {
            view: 3,
            seq: 1_000_017,
            digest: Digest::of(b"proposal"),
        },
        signer.id,
        &signer.signing,
    );
    let txs = (0..BATCH_TXS)
        .map(|i| {
            let mut tx = vec![0u8; TX_SIZE];
            tx[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Bytes::from(tx)
        })
        .collect();
    let batch = Signed::new(Batch { txs }, signer.id, &signer.signing);

    bench_envelope(c, "envelope_vote", &vote, &committee);
    bench_envelope(c, "envelope_batch_1000x512B", &batch, &committee);
}

fn bench_envelope<T>(c: &mut Criterion, group: &str, signed: &Signed<T>, committee: &Committee)
where
    T: Signable + Clone,
{
    let wire = encode(signed);
    let back: Signed<T> = decode(&wire, DEFAULT_MAX_FRAME).expect("valid envelope");
    assert!(back == *signed && back.verify(committee).is_ok());

    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("encode", |b| b.iter(|| encode(black_box(signed))));
    g.bench_function("decode", |b| {
        b.iter(|| decode::<Signed<T>>(black_box(&wire), DEFAULT_MAX_FRAME))
    });
    g.bench_function("decode_verify", |b| {
        b.iter(|| {
            let s: Signed<T> = decode(black_box(&wire), DEFAULT_MAX_FRAME).expect("valid");
            s.verify(committee)
        })
    });
    g.finish();
}

criterion_group!(benches, signatures, batch_verify, vrf, blake3, envelopes);
criterion_main!(benches);
