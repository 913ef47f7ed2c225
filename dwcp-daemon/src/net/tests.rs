//! Tests of the links: frames across Noise message boundaries, handshakes that
//! refuse outsiders, malformed and oversized frames, full queues, and breakers.

use super::breaker::BreakerState;
use super::frames::{write_noise, FrameReader, FrameWriter, LinkError, CHUNK, NOISE_MAX};
use super::handshake::{handshake, Role, NOISE_PARAMS};
use super::transport::{start, TransportConfig};
use crate::driver::inbox::{DriverInput, Transport};
use bytes::Bytes;
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{Committee, NodeId};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
    let mut ls = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(l.local_addr().expect("addr"));
        ls.push(l);
    }
    (ls, addrs)
}

fn recv(rx: &Receiver<DriverInput>) -> (NodeId, Bytes) {
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(DriverInput::Frame { from, frame } | DriverInput::Bulk { from, frame, .. }) => {
            (from, frame)
        }
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// A Noise transport pair, handshaken in memory.
fn noise_pair() -> (snow::TransportState, snow::TransportState) {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().expect("params");
    let state = |initiator: bool| {
        let b = snow::Builder::new(params.clone());
        let key = b.generate_keypair().expect("keypair").private;
        let b = b.local_private_key(&key).expect("key");
        if initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        }
        .expect("handshake state")
    };
    let (mut i, mut r) = (state(true), state(false));
    let (mut msg, mut out) = (vec![0u8; NOISE_MAX], vec![0u8; NOISE_MAX]);
    for step in 0..3 {
        let (w, rd) = if step % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = w.write_message(&[], &mut msg).expect("write");
        rd.read_message(&msg[..n], &mut out).expect("read");
    }
    (
        i.into_transport_mode().expect("transport"),
        r.into_transport_mode().expect("transport"),
    )
}

/// Frames of every size around the Noise message boundaries, written with one
/// reused writer and read back with one reused reader.
fn round_trip(sizes: &[usize]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut tx, mut rx) = noise_pair();
        let frames: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| (0..n).map(|i| (i * 31 + k * 7) as u8).collect())
            .collect();
        let mut wire: Vec<u8> = Vec::new();
        let mut writer = FrameWriter::new();
        for f in &frames {
            writer.write(&mut wire, &mut tx, f).await.expect("write");
        }
        let mut input = &wire[..];
        let mut reader = FrameReader::new();
        for f in &frames {
            let got = reader
                .read(&mut input, &mut rx, 1 << 20)
                .await
                .expect("read");
            assert_eq!(&got[..], &f[..]);
        }
        assert!(input.is_empty(), "nothing left over");
    });
}

#[test]
fn frames_round_trip_across_message_boundaries_with_reused_buffers() {
    round_trip(&[
        0,
        1,
        CHUNK - 5,
        CHUNK - 4,
        CHUNK - 3,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK - 4,
        3 * CHUNK + 7,
        300_000,
        5,
    ]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    #[test]
    fn any_sequence_of_frames_round_trips(
        sizes in proptest::collection::vec(0usize..200_000, 1..6),
    ) {
        round_trip(&sizes);
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_before_it_is_read() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut tx, mut rx) = noise_pair();
        let mut wire: Vec<u8> = Vec::new();
        FrameWriter::new()
            .write(&mut wire, &mut tx, &[1u8; 1000])
            .await
            .expect("write");
        let mut input = &wire[..];
        let err = FrameReader::new().read(&mut input, &mut rx, 999).await;
        assert!(matches!(err, Err(LinkError::Oversized(1000))), "{err:?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_exchange_frames_of_any_size() {
    let (committee, keys) = Committee::deterministic(3, SignatureScheme::Ed25519, 1);
    let (ls, addrs) = listeners(3).await;
    let mut nets = Vec::new();
    let mut inboxes = Vec::new();
    for (l, k) in ls.into_iter().zip(&keys) {
        let (tx, rx) = sync_channel(100);
        inboxes.push(rx);
        nets.push(
            start(
                l,
                addrs.clone(),
                k.clone(),
                committee.clone(),
                TransportConfig::default(),
                tx,
            )
            .expect("start"),
        );
    }
    let big = Bytes::from((0..300_000u32).map(|i| i as u8).collect::<Vec<_>>());
    nets[0].send(NodeId(2), Bytes::from_static(b"hello"));
    nets[0].send(NodeId(2), big.clone());
    nets[1].send(NodeId(2), Bytes::new());
    let mut got = [recv(&inboxes[2]), recv(&inboxes[2]), recv(&inboxes[2])];
    got.sort_by_key(|(from, f)| (*from, f.len()));
    assert_eq!(got[0], (NodeId(0), Bytes::from_static(b"hello")));
    assert_eq!(got[1], (NodeId(0), big));
    assert_eq!(got[2], (NodeId(1), Bytes::new()));
    assert!(nets[0].is_connected(NodeId(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_without_a_committee_key_is_refused() {
    let (committee, keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 2);
    // An outsider with the same committee file but its own key claims to be node 1.
    let (_, outsider_keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 99);
    let (ls, addrs) = listeners(2).await;
    let mut ls = ls.into_iter();
    let (tx0, rx0) = sync_channel(100);
    let net0 = start(
        ls.next().expect("l"),
        addrs.clone(),
        keys[0].clone(),
        committee.clone(),
        TransportConfig::default(),
        tx0,
    )
    .expect("start");
    let (tx1, _rx1) = sync_channel(100);
    let outsider = start(
        ls.next().expect("l"),
        addrs.clone(),
        outsider_keys[1].clone(),
        committee.clone(),
        TransportConfig::default(),
        tx1,
    )
    .expect("start");
    outsider.send(NodeId(0), Bytes::from_static(b"forged"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        rx0.try_recv().is_err(),
        "a frame from a non-member got through"
    );
    assert!(net0.stats().refused.load(Ordering::Relaxed) >= 1);
    assert!(!outsider.is_connected(NodeId(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_malformed_frame_closes_only_that_connection() {
    let (committee, keys) = Committee::deterministic(3, SignatureScheme::Ed25519, 3);
    let (ls, addrs) = listeners(3).await;
    let mut ls = ls.into_iter();
    let cfg = TransportConfig {
        max_frame: 1024,
        ..TransportConfig::default()
    };
    let (tx0, rx0) = sync_channel(100);
    let net0 = start(
        ls.next().expect("l"),
        addrs.clone(),
        keys[0].clone(),
        committee.clone(),
        cfg.clone(),
        tx0,
    )
    .expect("start");
    let (tx2, _rx2) = sync_channel(100);
    let net2 = start(
        ls.nth(1).expect("l"),
        addrs.clone(),
        keys[2].clone(),
        committee.clone(),
        cfg.clone(),
        tx2,
    )
    .expect("start");

    // Member 1, by hand: authenticate, then claim a 1 MiB frame.
    let mut s = TcpStream::connect(addrs[0]).await.expect("connect");
    let (mut noise, _) = handshake(
        &mut s,
        &keys[1],
        &committee,
        Role::Initiator { expect: NodeId(0) },
    )
    .await
    .expect("handshake");
    let mut out = vec![0u8; NOISE_MAX];
    let n = noise
        .write_message(&(1u32 << 20).to_be_bytes(), &mut out)
        .expect("encrypt");
    write_noise(&mut s, &out[..n]).await.expect("write");
    let mut rest = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest))
        .await
        .expect("closed in time");
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "connection should be closed"
    );
    assert_eq!(net0.stats().bad_frames.load(Ordering::Relaxed), 1);

    // Garbage after a good handshake: same fate.
    let mut s = TcpStream::connect(addrs[0]).await.expect("connect");
    let _ = handshake(
        &mut s,
        &keys[1],
        &committee,
        Role::Initiator { expect: NodeId(0) },
    )
    .await
    .expect("handshake");
    write_noise(&mut s, &[7u8; 100]).await.expect("write");
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest))
        .await
        .expect("closed in time");
    assert!(matches!(closed, Ok(0) | Err(_)));
    assert_eq!(net0.stats().bad_frames.load(Ordering::Relaxed), 2);

    // Member 2's link is unaffected.
    net2.send(NodeId(0), Bytes::from_static(b"still here"));
    assert_eq!(recv(&rx0), (NodeId(2), Bytes::from_static(b"still here")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_growing() {
    let (committee, keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 4);
    let (ls, mut addrs) = listeners(1).await;
    // Peer 1's address refuses connections: nothing drains the queue.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    addrs.push(dead.local_addr().expect("addr"));
    drop(dead);
    let cfg = TransportConfig {
        queue_capacity: 8,
        ..TransportConfig::default()
    };
    let (tx, _rx) = sync_channel(10);
    let net = start(
        ls.into_iter().next().expect("l"),
        addrs,
        keys[0].clone(),
        committee,
        cfg,
        tx,
    )
    .expect("start");
    for _ in 0..100 {
        net.send(NodeId(1), Bytes::from_static(b"x"));
    }
    assert!(net.stats().frames_dropped.load(Ordering::Relaxed) >= 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_opens_its_breaker() {
    let (committee, keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 5);
    let (ls, mut addrs) = listeners(1).await;
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    addrs.push(dead.local_addr().expect("addr"));
    drop(dead);
    let cfg = TransportConfig {
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(10),
        breaker_threshold: 3,
        breaker_open_for: Duration::from_secs(60),
        ..TransportConfig::default()
    };
    let (tx, _rx) = sync_channel(10);
    let net = start(
        ls.into_iter().next().expect("l"),
        addrs,
        keys[0].clone(),
        committee,
        cfg,
        tx,
    )
    .expect("start");
    let deadline = Instant::now() + Duration::from_secs(10);
    while net.breaker_state(NodeId(1)) != BreakerState::Open {
        assert!(Instant::now() < deadline, "breaker never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While open it stops dialling.
    let failures = net.stats().dial_failures.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(net.stats().dial_failures.load(Ordering::Relaxed), failures);
    assert_eq!(net.breaker_state(NodeId(0)), BreakerState::Closed);
}
