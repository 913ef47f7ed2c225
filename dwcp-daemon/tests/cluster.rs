//! Four real `dwcpd` processes on loopback: transactions submitted over HTTP commit
//! in the same order everywhere; a node killed with SIGKILL and restarted from its
//! store catches up without diverging. Also: the HTTP API's answers to malformed,
//! oversized and unauthenticated requests.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn four_processes_agree_survive_sigkill_and_catch_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Below Linux's ephemeral range (32768+), so the nodes' own outgoing connections
    // cannot take a port before a later node binds it.
    let base = 10_000 + (std::process::id() % 10_000) as u16;
    keygen(dir.path(), 4, base, base + 10);
    let token = token(dir.path());
    let mut nodes: Vec<Node> = (0..4)
        .map(|i| Node {
            child: None,
            config: dir.path().join(format!("node-{i}.toml")),
            http: base + 10 + i as u16,
        })
        .collect();
    for n in &mut nodes {
        n.start();
    }
    for n in &nodes {
        wait_until("health", Duration::from_secs(20), || {
            http(n.http, "GET", "/health", &[], b"").is_some_and(|(c, _)| c == 200)
        });
    }

    // HTTP API: unauthenticated, malformed and oversized requests change nothing.
    let p = nodes[1].http;
    assert_eq!(
        http(
            p,
            "POST",
            "/v1/transactions",
            &[],
            b"{\"transactions\":[\"00\"]}"
        )
        .map(|x| x.0),
        Some(401)
    );
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    assert_eq!(
        http(
            p,
            "POST",
            "/v1/transactions",
            &[("Authorization", "Bearer wrong-token-123456")],
            b"{}"
        )
        .map(|x| x.0),
        Some(401)
    );
    assert_eq!(
        http(p, "POST", "/v1/transactions", &h, b"{not json").map(|x| x.0),
        Some(400)
    );
    assert_eq!(
        http(
            p,
            "POST",
            "/v1/transactions",
            &h,
            b"{\"transactions\":[\"zz\"]}"
        )
        .map(|x| x.0),
        Some(400)
    );
    assert_eq!(
        http(p, "POST", "/v1/transactions", &h, b"{\"transactions\":[]}").map(|x| x.0),
        Some(400)
    );
    // The binary form: unauthenticated, an empty transaction, a length past the end.
    assert_eq!(submit_binary(p, None, 0, 1), 401);
    assert_eq!(binary_post(p, Some(&token), &[0, 0, 0, 0]), 400);
    assert_eq!(binary_post(p, Some(&token), &[0, 0, 0, 9, 1, 2]), 400);
    assert_eq!(binary_post(p, Some(&token), b""), 400);
    let huge = vec![b'a'; 5 << 20];
    assert_eq!(
        http(p, "POST", "/v1/transactions", &h, &huge).map(|x| x.0),
        Some(413)
    );
    assert_eq!(
        http(p, "GET", "/v1/committed/abc", &[], b"").map(|x| x.0),
        Some(400)
    );
    assert_eq!(
        http(p, "GET", "/v1/committed/999999", &[], b"").map(|x| x.0),
        Some(404)
    );
    assert_eq!(
        last(p).map(|x| x.0),
        Some(0),
        "rejected requests must not commit anything"
    );
    check_ml_endpoints(p, &token);

    // 300 transactions submitted to different nodes, as JSON or in the binary form,
    // commit in one order everywhere.
    for (k, n) in nodes.iter().enumerate() {
        let code = if k % 2 == 0 {
            submit(n.http, &token, k as u32 * 75, 75)
        } else {
            submit_binary(n.http, Some(&token), k as u32 * 75, 75)
        };
        assert_eq!(code, 202);
    }
    wait_until(
        "all 300 committed on node 0",
        Duration::from_secs(30),
        || last(nodes[0].http).is_some_and(|(s, _)| committed_count(nodes[0].http, s) == 300),
    );
    let (height, digest) = last(nodes[0].http).expect("status");
    for n in &nodes[1..] {
        wait_until(
            "the others reach the same height",
            Duration::from_secs(20),
            || last(n.http).is_some_and(|(s, _)| s >= height),
        );
        assert_eq!(digest_at(n.http, height), Some(digest.clone()), "diverged");
    }

    // A committed batch with only the transactions that start with a prefix.
    let full = json(nodes[0].http, &format!("/v1/committed/{height}")).expect("batch");
    let prefix = hex::encode("transfer-0002");
    let some = json(
        nodes[0].http,
        &format!("/v1/committed/{height}?prefix={prefix}"),
    )
    .expect("filtered batch");
    let all_txs = full["transactions"].as_array().expect("transactions");
    let kept = some["transactions"].as_array().expect("transactions");
    assert_eq!(
        kept.len(),
        all_txs
            .iter()
            .filter(|t| t.as_str().is_some_and(|t| t.starts_with(&prefix)))
            .count()
    );
    assert_eq!(some["transaction_count"], all_txs.len());
    assert_eq!(some["digest"], full["digest"]);
    assert!(some["committed_unix_us"].as_u64().is_some_and(|t| t > 0));
    for bad in ["?prefix=zz", "?other=1"] {
        assert_eq!(
            http(p, "GET", &format!("/v1/committed/1{bad}"), &[], b"").map(|x| x.0),
            Some(400),
            "{bad}"
        );
    }

    // SIGKILL node 3; the others keep committing.
    nodes[3].kill9();
    assert_eq!(submit(nodes[0].http, &token, 1000, 100), 202);
    wait_until("commits without node 3", Duration::from_secs(30), || {
        last(nodes[0].http).is_some_and(|(s, _)| committed_count(nodes[0].http, s) == 400)
    });
    let (height2, digest2) = last(nodes[0].http).expect("status");
    let (code, metrics) = http(nodes[0].http, "GET", "/metrics", &[], b"").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics
            .contains(r#"dwcp_consensus_committed_transactions_total{engine="pbft",node="0"} 400"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"dwcp_transport_peer_connected{engine="pbft",node="0",peer="3"} 0"#),
        "{metrics}"
    );
    for series in [
        r#"dwcp_consensus_commit_latency_seconds_count{engine="pbft",node="0"} "#,
        r#"dwcp_messages_sent_total{engine="pbft",node="0",type="pre_prepare"} "#,
        r#"dwcp_message_bytes_received_total{engine="pbft",node="0",type="commit"} "#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    assert!(height2 > height);

    // Restart it from its store: it catches up and agrees.
    nodes[3].start();
    wait_until("node 3 catches up", Duration::from_secs(30), || {
        last(nodes[3].http).is_some_and(|(s, _)| s >= height2)
    });
    assert_eq!(
        digest_at(nodes[3].http, height2),
        Some(digest2),
        "restarted node diverged"
    );
    assert_eq!(
        digest_at(nodes[3].http, height),
        Some(digest),
        "restarted node rewrote history"
    );
}

/// The compression selector and allocator over HTTP: valid, malformed and
/// unauthenticated requests.
fn check_ml_endpoints(port: u16, token: &str) {
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    let health = json(port, "/health").expect("health");
    assert_eq!(health["model_loaded"], true);
    let model = json(port, "/v1/compression/model").expect("model");
    assert!(
        model["candidates"].as_array().is_some_and(|c| c.len() >= 5),
        "{model}"
    );

    let text: Vec<u8> = "the quick brown fox jumps over the lazy dog "
        .repeat(400)
        .into_bytes();
    let body = serde_json::json!({ "data": text, "link": { "bandwidth_bps": 1e6 } }).to_string();
    let (code, out) =
        http(port, "POST", "/v1/compression/select", &h, body.as_bytes()).expect("select");
    assert_eq!(code, 200, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_ne!(
        v["choice"]["codec"], "none",
        "repetitive text on a slow link must be compressed: {out}"
    );
    assert_eq!(
        http(port, "POST", "/v1/compression/select", &[], body.as_bytes()).map(|x| x.0),
        Some(401)
    );
    let bad_link =
        serde_json::json!({ "data": [1, 2, 3], "link": { "bandwidth_bps": -5.0 } }).to_string();
    assert_eq!(
        http(
            port,
            "POST",
            "/v1/compression/select",
            &h,
            bad_link.as_bytes()
        )
        .map(|x| x.0),
        Some(400)
    );
    assert_eq!(
        http(port, "POST", "/v1/compression/select", &h, b"[").map(|x| x.0),
        Some(400)
    );
    let batch =
        serde_json::json!({ "chunks": [text, vec![0u8; 1000]], "link": { "bandwidth_bps": 1e10 } })
            .to_string();
    let (code, out) =
        http(port, "POST", "/v1/compression/batch", &h, batch.as_bytes()).expect("batch");
    assert_eq!(code, 200, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["choices"].as_array().map(|c| c.len()), Some(2));

    let res = |cpu: f32, mem: f32, io: f32| serde_json::json!({ "cpu": cpu, "mem": mem, "net": io, "disk": io });
    let node = |cpu: f32| serde_json::json!({ "capacity": res(cpu, 4.0 * cpu, 10.0), "allocated": res(0.0, 0.0, 0.0), "speed": 1.0, "running": 0 });
    let work = |id: u64| serde_json::json!({ "id": id, "demand": res(4.0, 8.0, 1.0), "work": 2.0, "priority": 1, "tenant": 0, "arrival": 0, "deadline": 10 });
    for allocator in ["maddpg", "best-fit-decreasing"] {
        let req = serde_json::json!({ "state": { "time": 0, "nodes": [node(16.0), node(32.0)] }, "pending": [work(1), work(2), work(3)], "allocator": allocator }).to_string();
        let (code, out) = http(port, "POST", "/v1/allocate", &h, req.as_bytes()).expect("allocate");
        assert_eq!(code, 200, "{allocator}: {out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let placements = v["placements"].as_array().expect("placements").clone();
        // A policy may defer work (MADDPG waits when no node bids); whatever it places
        // must name a real node and each workload at most once.
        let mut seen = std::collections::HashSet::new();
        for p in &placements {
            assert!(
                p["node"].as_u64().is_some_and(|n| n < 2),
                "{allocator}: {out}"
            );
            assert!(
                seen.insert(p["workload"].as_u64()),
                "{allocator} placed a workload twice: {out}"
            );
        }
        if allocator == "best-fit-decreasing" {
            assert_eq!(placements.len(), 3, "everything fits: {out}");
        }
    }
    let unknown = serde_json::json!({ "state": { "time": 0, "nodes": [node(16.0)] }, "pending": [], "allocator": "magic" }).to_string();
    assert_eq!(
        http(port, "POST", "/v1/allocate", &h, unknown.as_bytes()).map(|x| x.0),
        Some(400)
    );
    let nan = serde_json::json!({ "state": { "time": 0, "nodes": [] }, "pending": [] }).to_string();
    assert_eq!(
        http(port, "POST", "/v1/allocate", &h, nan.as_bytes()).map(|x| x.0),
        Some(400)
    );
    let dup = serde_json::json!({ "state": { "time": 0, "nodes": [node(16.0)] }, "pending": [work(1), work(1)] }).to_string();
    assert_eq!(
        http(port, "POST", "/v1/allocate", &h, dup.as_bytes()).map(|x| x.0),
        Some(400)
    );
    assert_eq!(
        http(port, "POST", "/v1/allocate", &[], dup.as_bytes()).map(|x| x.0),
        Some(401)
    );
}

#[test]
fn per_client_rate_limit_answers_429_and_spares_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = 21_000 + (std::process::id() % 10_000) as u16;
    keygen(dir.path(), 1, base, base + 1);
    let path = dir.path().join("node-0.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text
        .replace("http_rate_per_second = 200", "http_rate_per_second = 1")
        .replace("http_rate_burst = 400", "http_rate_burst = 3");
    std::fs::write(&path, text).expect("write config");
    let mut node = Node {
        child: None,
        config: path,
        http: base + 1,
    };
    node.start();
    wait_until("health", Duration::from_secs(20), || {
        http(node.http, "GET", "/health", &[], b"").is_some_and(|(c, _)| c == 200)
    });
    let codes: Vec<u16> = (0..8)
        .filter_map(|_| http(node.http, "GET", "/v1/status", &[], b"").map(|x| x.0))
        .collect();
    assert!(
        codes.iter().filter(|c| **c == 200).count() <= 4,
        "{codes:?}"
    );
    assert!(codes.contains(&429), "{codes:?}");
    for _ in 0..5 {
        assert_eq!(
            http(node.http, "GET", "/health", &[], b"").map(|x| x.0),
            Some(200),
            "health is never throttled"
        );
    }
}
