//! `dwcpd sim` end to end: the JSON summary has the promised fields and values.

use std::process::Command;

fn dwcpd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dwcpd"))
        .args(args)
        .output()
        .expect("run dwcpd")
}

#[test]
fn sim_json_summary() {
    let out = dwcpd(&[
        "sim",
        "--nodes",
        "4",
        "--behaviour",
        "crash",
        "--seeds",
        "3",
        "--fast-crypto",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let last = stdout.lines().last().expect("a line");
    let v: serde_json::Value = serde_json::from_str(last).expect("JSON last line");
    for key in [
        "engine",
        "nodes",
        "faulty",
        "behaviour",
        "seeds",
        "safety_violations",
        "liveness_failures",
        "decisions",
        "msgs_per_decision",
        "bytes_per_decision",
        "p50_latency_ms",
        "p99_latency_ms",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {last}");
    }
    assert_eq!(v["engine"], "pbft");
    assert_eq!(v["nodes"], 4);
    assert_eq!(v["faulty"], 1);
    assert_eq!(v["seeds"], 3);
    assert_eq!(v["safety_violations"], 0);
    assert_eq!(v["liveness_failures"], 0);
    assert!(v["decisions"].as_u64().expect("decisions") > 0);
}

#[test]
fn sim_prints_the_committed_log_by_default() {
    let out = dwcpd(&["sim", "--fast-crypto"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout.contains("committed log of the first honest node"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 safety violations, 0 liveness failures"),
        "{stdout}"
    );
}

#[test]
fn sim_rejects_bad_arguments() {
    for args in [
        &["sim", "--engine", "raft"][..],
        &["sim", "--behaviour", "sneaky"][..],
        &["sim", "--nodes", "0"][..],
        &["sim", "--seeds", "0"][..],
        &["sim", "--param", "no_such_field=1"][..],
        // ProBFT's start-up check refuses f_max near n/3, and says why.
        &[
            "sim", "--engine", "probft", "--nodes", "100", "--param", "f_max=33",
        ][..],
    ] {
        let out = dwcpd(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!out.stderr.is_empty(), "{args:?} should say why");
    }
}

#[test]
fn sim_sets_engine_parameters() {
    let out = dwcpd(&[
        "sim",
        "--engine",
        "probft",
        "--nodes",
        "16",
        "--faulty",
        "1",
        "--behaviour",
        "silent",
        "--param",
        "f_max=1",
        "--fast-crypto",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON");
    assert_eq!(json["safety_violations"], 0);
    assert_eq!(json["liveness_failures"], 0);
}
