//! `dwcpd bench` end to end, in process and over real processes: short, low-rate
//! runs that must print Narwhal's four summary lines with positive figures.

use std::process::Command;
use std::time::{Duration, Instant};

/// The number on the summary line that starts with `label`, such as
/// ` Consensus TPS: 1,234 tx/s`.
fn figure(summary: &str, label: &str, unit: &str) -> f64 {
    let line = summary
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no line {label:?} in\n{summary}"));
    let value = line
        .strip_prefix(label)
        .and_then(|rest| rest.strip_suffix(unit))
        .unwrap_or_else(|| panic!("{line:?} is not {label:?} <n> {unit:?}"));
    value
        .trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn bench(extra: &[&str]) -> String {
    bench_of("pbft", 4, extra)
}

fn bench_of(engine: &str, nodes: usize, extra: &[&str]) -> String {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_dwcpd"))
        .args(["bench", "--engine", engine, "--nodes", &nodes.to_string()])
        .args(["--tx-size", "512"])
        .args(["--rate", "400", "--duration", "3"])
        .args(extra)
        .output()
        .expect("run dwcpd bench");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    for (label, unit) in [
        (" Consensus TPS: ", " tx/s"),
        (" Consensus latency: ", " ms"),
        (" End-to-end TPS: ", " tx/s"),
        (" End-to-end latency: ", " ms"),
    ] {
        let v = figure(&stdout, label, unit);
        assert!(v > 0.0, "{label}{v} in\n{stdout}");
    }
    // 400 tx/s for 3 s: most of the 1,200 transactions commit within the run.
    let committed = figure(&stdout, " Committed transactions: ", " (node 0)");
    assert!(committed >= 600.0, "{stdout}");
    let tps = figure(&stdout, " End-to-end TPS: ", " tx/s");
    assert!(tps <= 600.0, "more than offered: {stdout}");
    stdout
}

#[test]
fn in_process_bench_prints_the_four_figures() {
    let out = bench(&[
        "--in-process",
        "--header-size",
        "1000",
        "--max-header-delay",
        "200ms",
    ]);
    assert!(out.contains(" Mode: in-process"), "{out}");
    assert!(
        out.contains(" Unused by pbft: header_size = 1,000 B, max_header_delay = 200 ms"),
        "{out}"
    );
    assert!(out.contains(" Peak RSS: "), "{out}");
}

#[test]
fn multi_process_bench_prints_the_four_figures() {
    let out = bench(&["--batch-size", "51200"]);
    assert!(out.contains("dwcpd processes on loopback"), "{out}");
    assert!(
        out.contains(" Batch size: 100 transactions per pre-prepare"),
        "{out}"
    );
    assert!(out.contains(" Consensus latency source: "), "{out}");
}

/// T-PBFT in process, and over seven processes with a committee of four (three
/// observers, whose clients' transactions go to the committee).
#[test]
fn tpbft_bench_runs_in_process_and_over_seven_processes() {
    let out = bench_of("tpbft", 4, &["--in-process"]);
    assert!(out.contains(" Mode: in-process"), "{out}");
    let out = bench_of("tpbft", 7, &["--param", "committee_size=4"]);
    assert!(out.contains("7 dwcpd processes on loopback"), "{out}");
    assert!(out.contains(" Committee: up to 4 members"), "{out}");
}
