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
