//! `dwcpd demo` end to end: real processes come up, commit, agree and stop.

use std::process::Command;

#[test]
fn demo_runs_a_cluster_that_agrees_and_stops() {
    let out = Command::new(env!("CARGO_BIN_EXE_dwcpd"))
        .args(["demo", "--nodes", "4", "--duration", "2", "--rate", "400"])
        .output()
        .expect("run dwcpd demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("4 of 4 nodes hold the same log digest"),
        "{stdout}"
    );
    assert!(stdout.contains("stopped all nodes"), "{stdout}");
    assert!(
        !stdout.contains("at seq 0;"),
        "nothing was committed: {stdout}"
    );
}

/// T-PBFT among seven processes with a committee of four: all seven agree, and
/// the demo shows three observers and four members.
#[test]
fn demo_runs_tpbft_with_a_committee_of_four_among_seven() {
    let out = Command::new(env!("CARGO_BIN_EXE_dwcpd"))
        .args(["demo", "--engine", "tpbft", "--nodes", "7"])
        .args([
            "--duration",
            "2",
            "--rate",
            "400",
            "--param",
            "committee_size=4",
        ])
        .output()
        .expect("run dwcpd demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("7 of 7 nodes hold the same log digest"),
        "{stdout}"
    );
    assert!(!stdout.contains("at seq 0;"), "nothing committed: {stdout}");
    let tail = stdout
        .split("nodes hold the same log digest")
        .nth(1)
        .unwrap_or("");
    assert_eq!(tail.matches(": observer in epoch").count(), 3, "{stdout}");
    assert_eq!(tail.matches(": member in epoch").count(), 4, "{stdout}");
}
