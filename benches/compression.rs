//! Compression selector benches: decision latency (features + model) for a 64 KiB
//! chunk, and compress/decompress throughput of every codec through the frame.
//!
//! `cargo bench --bench compression`. Before the criterion groups it prints the
//! p50/p99 of single `select` calls timed one by one (criterion reports means and
//! medians of batches, not tail latency).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use dwcp_ml::compression::calibrate::reference_payloads;
use dwcp_ml::compression::frame::{self, DecodeLimits};
use dwcp_ml::compression::{ChunkFeatures, CodecId, CompressionSelector, Link};

const CHUNK: usize = 64 << 10;
const KINDS: [&str; 4] = ["text", "records", "sparse", "random"];

fn selector() -> CompressionSelector {
    match CompressionSelector::embedded() {
        Ok(s) => s,
        Err(e) => panic!("embedded selector: {e}"),
    }
}

/// Times `calls` single decisions over the payloads and links; prints p50/p99/max.
fn decision_tail_latency() {
    // `cargo test --all-targets` runs benches once without `--bench` in a debug
    // build: keep that smoke run short.
    let calls = if std::env::args().any(|a| a == "--bench") {
        60_000
    } else {
        600
    };
    let s = selector();
    let payloads = reference_payloads(CHUNK);
    let links = [1.0, 100.0, 10_000.0].map(Link::mbps);
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls {
        let p = &payloads[i % payloads.len()];
        let l = &links[(i / payloads.len()) % links.len()];
        let t = Instant::now();
        black_box(s.select(black_box(p), l));
        times.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "decision latency, 64 KiB chunk, {} single calls: p50 {:.2} us, p99 {:.2} us, max {:.2} us",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn decision(c: &mut Criterion) {
    let s = selector();
    let payloads = reference_payloads(CHUNK);
    let link = Link::mbps(100.0);
    let mut g = c.benchmark_group("decision_64KiB");
    for (kind, p) in KINDS.iter().zip(&payloads) {
        g.bench_with_input(BenchmarkId::new("select", kind), p, |b, p| {
            b.iter(|| s.select(black_box(p), &link))
        });
    }
    let p = &payloads[0];
    g.bench_function("features_only/text", |b| {
        b.iter(|| ChunkFeatures::of(black_box(p)))
    });
    let f = ChunkFeatures::of(p);
    g.bench_function("model_only/text", |b| {
        b.iter(|| s.select_features(black_box(&f), &link))
    });
    g.finish();
}

fn codecs(c: &mut Criterion) {
    let payloads = reference_payloads(CHUNK);
    let limits = DecodeLimits::default();
    for (kind, p) in KINDS.iter().zip(&payloads).take(2) {
        let mut g = c.benchmark_group(format!("codec_64KiB_{kind}"));
        g.throughput(Throughput::Bytes(CHUNK as u64));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(2));
        for codec in CodecId::ALL {
            let mut out = Vec::with_capacity(2 * CHUNK);
            g.bench_function(BenchmarkId::new("compress", codec.name()), |b| {
                b.iter(|| {
                    out.clear();
                    frame::encode_into(codec, black_box(p), &mut out)
                })
            });
            let framed = match frame::encode(codec, p) {
                Ok(f) => f,
                Err(e) => panic!("{codec}: {e}"),
            };
            let mut plain = Vec::with_capacity(CHUNK);
            g.bench_function(BenchmarkId::new("decompress", codec.name()), |b| {
                b.iter(|| {
                    plain.clear();
                    frame::decode_into(black_box(&framed), &limits, &mut plain)
                })
            });
        }
        g.finish();
    }
}

fn main() {
    decision_tail_latency();
    let mut c = Criterion::default().configure_from_args();
    decision(&mut c);
    codecs(&mut c);
    c.final_summary();
}
